//! Whose turn it is: task priorities with aging, and fair shares of a claim between
//! institutions. Adapters store a task's turn ([`Priority::turn`]) and split each claim with
//! [`fair_shares`]; the daemon caps what one institution runs at once.
//!
//! - **Priority with aging.** A task's turn is its `run_at` plus its priority's level times
//!   the lag: with the default 10 s lag, an `interactive` task due now goes before `normal`
//!   tasks due up to 10 s earlier and `bulk` tasks due up to 20 s earlier, and a `bulk` task
//!   is never passed by work that became due more than 20 s after it (no starvation).
//! - **Fairness.** Each claim is split between the institutions that have due work (tasks of
//!   no institution form one more group): an equal share each, the remainder to the groups
//!   whose next task has waited longest; inside a group, by turn. One institution's backlog
//!   therefore takes its share of the workers, and another institution's task starts with the
//!   next claim.

use crate::time::Timestamp;
use std::fmt;
use std::time::Duration;

/// How urgent a task type's tasks are. Claims take earlier turns first (see the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    /// Someone is waiting for it (a password-reset e-mail).
    Interactive,
    /// The default.
    #[default]
    Normal,
    /// Large batches nobody waits for (demo data, bulk reprocessing).
    Bulk,
}

/// The default lag of one priority level.
pub const DEFAULT_PRIORITY_LAG: Duration = Duration::from_secs(10);

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Interactive, Priority::Normal, Priority::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Interactive => "interactive",
            Priority::Normal => "normal",
            Priority::Bulk => "bulk",
        }
    }

    pub fn parse(raw: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == raw)
    }

    /// 0 for interactive, 1 for normal, 2 for bulk (as stored).
    pub fn level(self) -> i16 {
        match self {
            Priority::Interactive => 0,
            Priority::Normal => 1,
            Priority::Bulk => 2,
        }
    }

    pub fn from_level(level: i16) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.level() == level)
    }

    /// How long after its `run_at` a task of this priority gets its turn.
    pub fn delay(self, lag: Duration) -> Duration {
        lag * u32::from(self.level().unsigned_abs())
    }

    /// The turn of a task of this priority due at `run_at`: claims take the earliest turn
    /// first within an institution.
    pub fn turn(self, run_at: Timestamp, lag: Duration) -> Timestamp {
        let delay = i64::try_from(self.delay(lag).as_millis()).unwrap_or(i64::MAX);
        Timestamp(run_at.0.saturating_add(delay))
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group of due tasks competing for one claim: the earliest turn among its due tasks, and
/// how many more of its tasks may run (the per-institution cap minus what runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contender {
    pub head: Timestamp,
    pub room: u32,
}

/// How many tasks each group may take of a claim of `limit`: `limit / n` each, one more for
/// the `limit % n` groups whose head came first, never more than a group's room (groups
/// without room take no share). Their sum never exceeds `limit`.
pub fn fair_shares(limit: u32, groups: &[Contender]) -> Vec<u32> {
    // The groups with room, oldest head first.
    let mut open: Vec<usize> = (0..groups.len()).filter(|&i| groups[i].room > 0).collect();
    open.sort_by_key(|&i| (groups[i].head, i));
    let mut shares = vec![0; groups.len()];
    let Ok(n) = u32::try_from(open.len()) else {
        return shares;
    };
    if n == 0 {
        return shares;
    }
    for (rank, &i) in open.iter().enumerate() {
        let extra = u32::from(u32::try_from(rank).unwrap_or(u32::MAX) < limit % n);
        shares[i] = (limit / n + extra).min(groups[i].room);
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_and_levels_round_trip() {
        for p in Priority::ALL {
            assert_eq!(Priority::parse(p.as_str()), Some(p));
            assert_eq!(Priority::from_level(p.level()), Some(p));
        }
        assert_eq!(Priority::parse("urgent"), None);
        assert_eq!(Priority::default(), Priority::Normal);
    }

    #[test]
    fn a_lower_priority_waits_one_lag_per_level() {
        let lag = Duration::from_secs(10);
        let at = Timestamp(1_000_000);
        assert_eq!(Priority::Interactive.turn(at, lag), at);
        assert_eq!(Priority::Normal.turn(at, lag), Timestamp(1_010_000));
        assert_eq!(Priority::Bulk.turn(at, lag), Timestamp(1_020_000));
        // An interactive task due 15 s later still goes before a bulk one...
        assert!(
            Priority::Interactive.turn(Timestamp(1_015_000), lag) < Priority::Bulk.turn(at, lag)
        );
        // ...but not 25 s later: the bulk task has aged past it.
        assert!(
            Priority::Interactive.turn(Timestamp(1_025_000), lag) > Priority::Bulk.turn(at, lag)
        );
    }

    #[test]
    fn shares_split_evenly_and_give_the_remainder_to_the_oldest_heads() {
        let g = |head, room| Contender {
            head: Timestamp(head),
            room,
        };
        assert_eq!(
            fair_shares(10, &[g(5, 100), g(1, 100), g(3, 100)]),
            vec![3, 4, 3]
        );
        // A group without room takes nothing; a small room caps its share.
        assert_eq!(
            fair_shares(10, &[g(1, 0), g(2, 2), g(3, 100)]),
            vec![0, 2, 5]
        );
        // More groups than the claim: the oldest heads get one each.
        assert_eq!(fair_shares(2, &[g(9, 5), g(1, 5), g(4, 5)]), vec![0, 1, 1]);
        assert_eq!(fair_shares(7, &[]), Vec::<u32>::new());
    }

    proptest! {
        #[test]
        fn shares_never_exceed_the_claim_or_a_room_and_differ_by_at_most_one(
            limit in 0u32..600,
            groups in proptest::collection::vec((0i64..50, 0u32..300), 0..40),
        ) {
            let groups: Vec<Contender> = groups
                .into_iter()
                .map(|(head, room)| Contender { head: Timestamp(head), room })
                .collect();
            let shares = fair_shares(limit, &groups);
            prop_assert!(shares.iter().sum::<u32>() <= limit);
            for (s, g) in shares.iter().zip(&groups) {
                prop_assert!(*s <= g.room);
            }
            // Groups with room more than their share differ by at most one.
            let full: Vec<u32> = shares.iter().zip(&groups)
                .filter(|(s, g)| **s < g.room).map(|(s, _)| *s).collect();
            if let (Some(lo), Some(hi)) = (full.iter().min(), full.iter().max()) {
                prop_assert!(hi - lo <= 1);
            }
        }
    }
}
