//! Text search in payloads (migration 0019 explains the design): the indexing of new rows'
//! texts into `task_texts` / `event_texts`, in the order of the transactions that inserted
//! them, and the tables a list filtered by text reads.

use super::{db_err, PgStore};
use async_trait::async_trait;
use campus_ports::{IndexedPayloads, PayloadIndex, PortError};

/// A live table with a search index of its payloads.
#[derive(Clone, Copy)]
pub(super) struct Searchable {
    /// The live table (its archive is `{table}_processed`); also its row in
    /// `payload_index_marks`.
    pub table: &'static str,
    /// Its indexed texts, of live and archived rows.
    pub texts: &'static str,
}

pub(super) const TASKS: Searchable = Searchable {
    table: "tasks",
    texts: "task_texts",
};
pub(super) const EVENTS: Searchable = Searchable {
    table: "domain_events",
    texts: "event_texts",
};

impl Searchable {
    /// The live rows not indexed yet, as a condition on the table (under its own name):
    /// inserted at or above the mark (found through the BRIN index of `inserted_txid`), and
    /// not already indexed by a step under way.
    pub(super) fn not_indexed(&self) -> String {
        let Searchable { table, texts } = self;
        format!(
            "{table}.inserted_txid >= (SELECT indexed_below FROM payload_index_marks WHERE source = '{table}')
             AND NOT EXISTS (SELECT 1 FROM {texts} x WHERE x.id = {table}.id)"
        )
    }
}

/// A text matching this many indexed rows or more is searched by walking the newest rows
/// instead of through the index: it is common enough that a page of matches is usually near.
pub(super) const INDEXED_MATCHES_MAX: i64 = 10_000;

/// The widest range of transaction ids one step takes: each batch reads every candidate left
/// in its step (the BRIN index cannot give them in id order), so steps stay short.
const STEP_TXIDS: i64 = 10_000;

/// The ids of the indexed rows whose text contains `pattern` (a LIKE pattern), or `None`
/// when there are [`INDEXED_MATCHES_MAX`] or more.
pub(super) async fn indexed_matches<'c>(
    db: impl sqlx::PgExecutor<'c>,
    s: Searchable,
    pattern: &str,
) -> Result<Option<Vec<uuid::Uuid>>, PortError> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
        "SELECT id FROM {} WHERE body ILIKE $1 LIMIT $2",
        s.texts
    ))
    .bind(pattern)
    .bind(INDEXED_MATCHES_MAX)
    .fetch_all(db)
    .await
    .map_err(db_err)?;
    Ok((ids.len() < INDEXED_MATCHES_MAX as usize).then_some(ids))
}

/// Whether the trigram index can narrow a search for `text`: it needs a word of three
/// letters or digits (`pg_trgm` takes no trigram from a shorter one inside a pattern).
pub(super) fn indexable(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|word| word.chars().count() >= 3)
}

impl PgStore {
    /// One batch of up to `limit` rows of `s` into its texts, in one transaction: the rows of
    /// the step of transactions under way (`indexed_below` up to `step_below`: at most
    /// [`STEP_TXIDS`] wide, and at most the snapshot's xmin when the step began, below which
    /// every transaction has ended), after the last id done. A short batch ends the step and
    /// moves the mark; a step without a row of the table is passed at once.
    async fn index_batch(&self, s: Searchable, limit: u32) -> Result<u64, PortError> {
        let Searchable { table, texts } = s;
        if limit == 0 {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // The row lock makes indexers of one table take turns (the leader's, but leaders may
        // overlap for a moment when the leadership moves, and `campus index-payloads` may run
        // beside them).
        type Mark = (i64, Option<i64>, Option<uuid::Uuid>, i64, i64);
        let (mut below, step, after, xmin, current): Mark = sqlx::query_as(
            "SELECT indexed_below, step_below, after_id,
                    pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
                    pg_current_xact_id()::text::bigint
             FROM payload_index_marks WHERE source = $1 FOR UPDATE",
        )
        .bind(table)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        // A mark ahead of this cluster's transaction ids came with a restored dump (a new
        // cluster counts from low again): start over from 0, so that the rows written since
        // are indexed too (the texts already there stay; entering them again does nothing).
        let (mut step, mut after) = if below > current || step.is_some_and(|s| s > current) {
            tracing::warn!(
                table,
                "the search index's mark is ahead of this cluster's transactions \
                 (a restored dump?): indexing again from the start"
            );
            below = 0;
            (None, None)
        } else {
            (step, after)
        };
        // Steps without a row of this table pass by at once, up to the xmin.
        let done = loop {
            let end = step.unwrap_or_else(|| xmin.min(below.saturating_add(STEP_TXIDS)));
            if end <= below {
                break 0;
            }
            // The candidates' ids first (through the BRIN index: the planner must not walk
            // the primary key in id order instead), then the texts of the first `limit`.
            let (done, last): (i64, Option<uuid::Uuid>) = sqlx::query_as(&format!(
                "WITH candidates AS MATERIALIZED (
                     SELECT id FROM {table}
                     WHERE inserted_txid >= $1 AND inserted_txid < $2 AND ($3::uuid IS NULL OR id > $3)
                 ), batch AS (
                     SELECT id FROM candidates ORDER BY id LIMIT $4
                 ), written AS (
                     INSERT INTO {texts} (id, body)
                     SELECT t.id, t.payload::text FROM {table} t WHERE t.id IN (SELECT id FROM batch)
                     ORDER BY t.id
                     ON CONFLICT (id) DO NOTHING
                 )
                 SELECT count(*), (SELECT id FROM batch ORDER BY id DESC LIMIT 1) FROM batch"
            ))
            .bind(below)
            .bind(end)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if done == i64::from(limit) {
                // The step goes on after the last id done.
                (step, after) = (Some(end), last);
                break done;
            }
            // A short batch ends the step: the mark moves to its end.
            (below, step, after) = (end, None, None);
            if done > 0 {
                break done;
            }
        };
        sqlx::query(
            "UPDATE payload_index_marks SET indexed_below = $2, step_below = $3, after_id = $4
             WHERE source = $1",
        )
        .bind(table)
        .bind(below)
        .bind(step)
        .bind(after)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(u64::try_from(done).unwrap_or(0))
    }
}

#[async_trait]
impl PayloadIndex for PgStore {
    async fn index_payloads(&self, limit: u32) -> Result<IndexedPayloads, PortError> {
        Ok(IndexedPayloads {
            tasks: self.index_batch(TASKS, limit).await?,
            events: self.index_batch(EVENTS, limit).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drop_database, fresh_database, DropOnPanic};
    use super::super::Notifier;
    use super::*;
    use crate::conformance::task;
    use campus_ports::{Archived, EngineLog, ListFilter, NewTask, TaskQuery, TaskQueue};

    async fn found(s: &PgStore, text: &str) -> Vec<uuid::Uuid> {
        let q = TaskQuery {
            filter: ListFilter {
                text: Some(text.into()),
                archived: Archived::All,
                ..Default::default()
            },
            limit: 100,
            ..Default::default()
        };
        let mut ids: Vec<uuid::Uuid> = s
            .list_tasks(&q, None)
            .await
            .unwrap()
            .iter()
            .map(|v| uuid::Uuid::from_u128(v.id.0))
            .collect();
        ids.sort();
        ids
    }

    async fn not_indexed(s: &PgStore) -> i64 {
        let sql = format!("SELECT count(*) FROM tasks WHERE {}", TASKS.not_indexed());
        sqlx::query_scalar(&sql).fetch_one(s.pool()).await.unwrap()
    }

    /// Indexes until no task is left unindexed. Transactions of other tests on the cluster
    /// (the mark waits for every open one) can hold it back for a moment.
    async fn catch_up(s: &PgStore) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            s.index_payloads(1000).await.unwrap();
            if not_indexed(s).await == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "indexing never caught up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The mark never passes a transaction still open: it holds back the rows of the
    /// transactions after it too. Rows not indexed are found all the same, and the pass after
    /// the open transaction ends indexes them.
    #[tokio::test]
    async fn a_row_committed_after_a_pass_is_found_and_indexed_later() {
        let (url, pool) = fresh_database("campus_search_test").await.unwrap();
        let url = DropOnPanic(url);
        let s = PgStore::new(pool.clone(), Notifier::disabled());
        let late = uuid::Uuid::now_v7();
        let mut open = pool.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO tasks (id, lineage_id, task_type, payload)
             VALUES ($1, $1, 'T', '{\"animal\": \"a late badger\"}')",
        )
        .bind(late)
        .execute(&mut *open)
        .await
        .unwrap();
        let early = NewTask {
            payload: r#"{"animal":"an early badger"}"#.into(),
            ..task(None)
        };
        s.enqueue(&[early]).await.unwrap();
        // The early row's transaction began after the open one: the mark waits for both.
        s.index_payloads(1000).await.unwrap();
        assert_eq!(
            indexed_matches(s.pool(), TASKS, "%badger%").await.unwrap(),
            Some(Vec::new())
        );
        assert_eq!(
            found(&s, "badger").await.len(),
            1,
            "the early one, unindexed"
        );
        open.commit().await.unwrap();

        assert_eq!(found(&s, "badger").await.len(), 2, "both, unindexed");
        assert_eq!(not_indexed(&s).await, 2);
        catch_up(&s).await;
        let indexed = indexed_matches(s.pool(), TASKS, "%badger%")
            .await
            .unwrap()
            .unwrap();
        assert!(indexed.len() == 2 && indexed.contains(&late), "{indexed:?}");
        assert_eq!(found(&s, "badger").await.len(), 2);
        drop_database(&url).await.unwrap();
    }

    /// A mark ahead of the cluster's transaction ids (a dump restored into a new cluster)
    /// would hide the rows written since; the next pass starts indexing over.
    #[tokio::test]
    async fn a_mark_ahead_of_the_cluster_starts_indexing_over() {
        let (url, pool) = fresh_database("campus_search_test").await.unwrap();
        let url = DropOnPanic(url);
        let s = PgStore::new(pool.clone(), Notifier::disabled());
        let walrus = NewTask {
            payload: r#"{"animal":"a restored walrus"}"#.into(),
            ..task(None)
        };
        s.enqueue(&[walrus]).await.unwrap();
        sqlx::query("UPDATE payload_index_marks SET indexed_below = indexed_below + 1000000000")
            .execute(&pool)
            .await
            .unwrap();
        assert!(
            found(&s, "walrus").await.is_empty(),
            "hidden below the mark"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while found(&s, "walrus").await.is_empty() {
            assert!(std::time::Instant::now() < deadline, "never indexed again");
            s.index_payloads(1000).await.unwrap();
        }
        let below: i64 = sqlx::query_scalar(
            "SELECT indexed_below FROM payload_index_marks WHERE source = 'tasks'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let current: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(
            below <= current,
            "the mark is back in range: {below} > {current}"
        );
        drop_database(&url).await.unwrap();
    }

    #[test]
    fn only_a_word_of_three_letters_or_digits_can_use_the_index() {
        for text in ["otter", "student-777777", "ab-cde", "été"] {
            assert!(indexable(text), "{text}");
        }
        for text in ["ab", "a-b-c", "\":", "é1", ""] {
            assert!(!indexable(text), "{text}");
        }
    }

    /// A text matching too many indexed rows is searched by walking the newest rows, and
    /// still finds a full page.
    #[tokio::test]
    async fn a_common_text_is_searched_without_the_index() {
        let (url, pool) = fresh_database("campus_search_test").await.unwrap();
        let url = DropOnPanic(url);
        let s = PgStore::new(pool.clone(), Notifier::disabled());
        sqlx::query(
            "INSERT INTO tasks (id, lineage_id, task_type, payload)
             SELECT id, id, 'T', jsonb_build_object('word', 'common', 'n', n)
             FROM (SELECT gen_random_uuid() AS id, n FROM generate_series(1, $1) n) g",
        )
        .bind(INDEXED_MATCHES_MAX)
        .execute(&pool)
        .await
        .unwrap();
        // Passes of 1 000 rows: a step of ten batches, each after the last id of the one before.
        catch_up(&s).await;
        let texts: i64 = sqlx::query_scalar("SELECT count(*) FROM task_texts")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(texts, INDEXED_MATCHES_MAX, "every row indexed once");
        assert_eq!(
            indexed_matches(s.pool(), TASKS, "%common%").await.unwrap(),
            None
        );
        assert_eq!(found(&s, "common").await.len(), 100, "a full page");
        drop_database(&url).await.unwrap();
    }
}
