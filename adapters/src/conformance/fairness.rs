//! Conformance of whose turn it is (`campus_core::engine::scheduling`): a claim shares its
//! limit between the institutions with due work, honours a per-institution cap, and takes
//! higher priorities first with aging.

use super::*;
use campus_core::engine::Priority;
use campus_core::ids::InstitutionId;
use campus_core::Timestamp;
use std::collections::BTreeMap;

const A: InstitutionId = InstitutionId(0xa);
const B: InstitutionId = InstitutionId(0xb);

/// `n` tasks of `institution`, due now, enqueued one statement each (so in order).
async fn backlog(e: &Engine, institution: Option<InstitutionId>, n: usize) {
    for _ in 0..n {
        let t = NewTask {
            institution_id: institution,
            ..task(None)
        };
        e.tasks.enqueue(&[t]).await.unwrap();
    }
}

/// How many tasks of each institution one claim of `limit` took.
async fn claim_by_institution(
    e: &Engine,
    types: &ClaimTypes,
    limit: u32,
) -> BTreeMap<Option<InstitutionId>, usize> {
    let mut counts = BTreeMap::new();
    for t in e.tasks.claim("w", types, limit, LONG_LEASE).await.unwrap() {
        *counts.entry(t.institution_id).or_default() += 1;
    }
    counts
}

pub async fn a_claim_shares_its_limit_between_institutions(e: &Engine) {
    // A's backlog came first; B and the tasks of no institution came after it.
    backlog(e, Some(A), 12).await;
    backlog(e, Some(B), 3).await;
    backlog(e, None, 1).await;
    let got = claim_by_institution(e, &types(), 6).await;
    assert_eq!(
        got,
        BTreeMap::from([(None, 1), (Some(A), 2), (Some(B), 2)]),
        "6 between 3 groups: 2 each, and what the group without institution cannot use is left"
    );
    // The next claim: A's head is older than B's, so A gets the extra one of 5 / 2.
    let got = claim_by_institution(e, &types(), 5).await;
    assert_eq!(got, BTreeMap::from([(Some(A), 3), (Some(B), 1)]));
    // B is done: A alone takes the whole claim.
    let got = claim_by_institution(e, &types(), 4).await;
    assert_eq!(got, BTreeMap::from([(Some(A), 4)]));
    // Fewer slots than groups: the oldest head goes first.
    backlog(e, Some(B), 1).await;
    let got = claim_by_institution(e, &types(), 1).await;
    assert_eq!(got, BTreeMap::from([(Some(A), 1)]));
}

pub async fn a_capped_institution_takes_no_more_than_its_room(e: &Engine) {
    backlog(e, Some(A), 10).await;
    backlog(e, Some(B), 10).await;
    backlog(e, None, 10).await;
    let capped = ClaimTypes {
        institution_cap: Some(3),
        institutions: vec![(Some(A), 2), (None, 10)],
        ..types()
    };
    let got = claim_by_institution(e, &capped, 12).await;
    assert_eq!(
        got,
        BTreeMap::from([(None, 4), (Some(A), 2), (Some(B), 3)]),
        "A has 2 left of its cap, B (not listed) the whole cap of 3"
    );
    let a_is_full = ClaimTypes {
        institutions: vec![(Some(A), 0), (Some(B), 100)],
        ..types()
    };
    let got = claim_by_institution(e, &a_is_full, 20).await;
    assert_eq!(
        got,
        BTreeMap::from([(None, 6), (Some(B), 7)]),
        "the others' rest; A waits"
    );
    let got = claim_by_institution(e, &a_is_full, 10).await;
    assert!(
        got.is_empty(),
        "only A has due work, and it is at its cap: {got:?}"
    );
    let got = claim_by_institution(e, &types(), 10).await;
    assert_eq!(got, BTreeMap::from([(Some(A), 8)]));
}

pub async fn higher_priorities_go_first_and_lower_ones_age(e: &Engine) {
    let now = e.harness.now().await;
    let at = |priority: Priority, run_at: i64, n: u32| NewTask {
        payload: format!(r#"{{"n":{n}}}"#),
        run_at: Some(Timestamp(now.0 + run_at)),
        priority,
        ..task(None)
    };
    // With the default lag (10 s per level): bulk due 5 s ago, normal due 5 s ago,
    // interactive due now, and a bulk task due 25 s ago, which has aged past them all.
    e.tasks
        .enqueue(&[
            at(Priority::Bulk, -5_000, 1),
            at(Priority::Normal, -5_000, 2),
            at(Priority::Interactive, 0, 3),
            at(Priority::Bulk, -25_000, 4),
        ])
        .await
        .unwrap();
    let mut order = Vec::new();
    for _ in 0..4 {
        let t = e.tasks.claim("w", &types(), 1, LONG_LEASE).await.unwrap();
        order.push(t[0].payload.clone());
    }
    let expected: Vec<String> = [4, 3, 2, 1]
        .iter()
        .map(|n| format!(r#"{{"n": {n}}}"#))
        .collect();
    assert_eq!(order, expected, "turns: -5 s, 0, +5 s, +15 s");
}

pub async fn bulk_reprocessing_yields_to_fresh_work(e: &Engine) {
    // A dead task, reprocessed in bulk, waits behind a normal task enqueued after it.
    backlog(e, None, 1).await;
    let t = e.tasks.claim("w", &types(), 1, LONG_LEASE).await.unwrap();
    let dead = completion(&t[0], failed("broken", true));
    e.tasks
        .complete("w", &[dead], &quick_policy())
        .await
        .unwrap();
    let filter = TaskFilter {
        status: Some(campus_core::engine::TaskStatus::Dead),
        ..Default::default()
    };
    assert_eq!(e.tasks.reprocess_tasks(&filter, 10, None).await.unwrap(), 1);
    e.tasks
        .enqueue(&[NewTask {
            payload: r#"{"fresh":true}"#.into(),
            ..task(None)
        }])
        .await
        .unwrap();
    let first = e.tasks.claim("w", &types(), 1, LONG_LEASE).await.unwrap();
    assert_eq!(first[0].payload, r#"{"fresh": true}"#);
    let copy = e.tasks.claim("w", &types(), 1, LONG_LEASE).await.unwrap();
    assert_eq!(copy[0].lineage_id, t[0].id, "then the copy");
}
