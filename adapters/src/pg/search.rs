//! Text search in payloads (migrations 0019 and 0020 explain the design): the indexing of
//! new rows' texts into `task_texts` / `event_texts`, from the lists of rows still to index,
//! and the tables a list filtered by text reads.

use super::{db_err, PgStore};
use async_trait::async_trait;
use campus_ports::{IndexedPayloads, PayloadIndex, PortError};

/// A live table with a search index of its payloads.
#[derive(Clone, Copy)]
pub(super) struct Searchable {
    /// The live table (its archive is `{table}_processed`).
    pub table: &'static str,
    /// Its indexed texts, of live and archived rows.
    pub texts: &'static str,
    /// The ids of its live rows not indexed yet (a trigger adds every row inserted).
    pub pending: &'static str,
}

pub(super) const TASKS: Searchable = Searchable {
    table: "tasks",
    texts: "task_texts",
    pending: "task_texts_pending",
};
pub(super) const EVENTS: Searchable = Searchable {
    table: "domain_events",
    texts: "event_texts",
    pending: "event_texts_pending",
};

impl Searchable {
    /// The live rows not indexed yet, as a condition on the table (under its own name). With
    /// `few` of them (see [`few_pending`]): the pending ids first, then each row by primary key
    /// (as a semi-join, the planner may hash the whole table instead, trusting statistics of a
    /// list that changes all the time: 0.6 s at 1 000 000 rows with nothing pending). With
    /// many (a bulk load not indexed yet), the semi-join, which then reads the table once
    /// instead of a million times by key (0.5 s against 1.9 s with all of 1 000 000 pending).
    pub(super) fn not_indexed(&self, few: bool) -> String {
        let Searchable { table, pending, .. } = self;
        if few {
            format!("{table}.id = ANY (ARRAY(SELECT id FROM {pending}))")
        } else {
            format!("{table}.id IN (SELECT id FROM {pending})")
        }
    }
}

/// A text matching this many indexed rows or more is searched by walking the newest rows
/// instead of through the index: it is common enough that a page of matches is usually near.
pub(super) const INDEXED_MATCHES_MAX: i64 = 10_000;

/// Below this many pending rows, a search reads them by id (`Searchable::not_indexed`).
const FEW_PENDING: i64 = 100_000;

/// Whether fewer than [`FEW_PENDING`] rows of `s` wait to be indexed.
pub(super) async fn few_pending<'c>(
    db: impl sqlx::PgExecutor<'c>,
    s: Searchable,
) -> Result<bool, PortError> {
    let many: bool = sqlx::query_scalar(&format!(
        "SELECT count(*) >= $1 FROM (SELECT 1 FROM {} LIMIT $1) p",
        s.pending
    ))
    .bind(FEW_PENDING)
    .fetch_one(db)
    .await
    .map_err(db_err)?;
    Ok(!many)
}

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
    /// Moves up to `limit` of the first pending ids of `s` to its texts, leaving the newest
    /// `keep`, in one statement (so a live row is always pending or indexed, never neither).
    /// Ids another indexer or the archive holds are skipped; an id whose row is gone
    /// (deleted, not archived) just leaves the list. Returns how many ids left it. (The rows
    /// are read by key: joined to the batch, the planner scanned the whole table, 3 s.)
    async fn index_batch(&self, s: Searchable, limit: u32, keep: u32) -> Result<u64, PortError> {
        let Searchable {
            table,
            texts,
            pending,
        } = s;
        if limit == 0 {
            return Ok(0);
        }
        let done: i64 = sqlx::query_scalar(&format!(
            "WITH batch AS (
                 DELETE FROM {pending} WHERE id IN (
                     SELECT id FROM {pending} ORDER BY id
                     LIMIT (SELECT GREATEST(count(*) - $2, 0)
                            FROM (SELECT 1 FROM {pending} LIMIT $1 + $2) n)
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id
             ), written AS (
                 INSERT INTO {texts} (id, body)
                 SELECT t.id, t.payload::text FROM {table} t WHERE t.id = ANY (ARRAY(SELECT id FROM batch))
                 ORDER BY t.id
                 ON CONFLICT (id) DO NOTHING
             )
             SELECT count(*) FROM batch"
        ))
        .bind(i64::from(limit))
        .bind(i64::from(keep))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(u64::try_from(done).unwrap_or(0))
    }
}

#[async_trait]
impl PayloadIndex for PgStore {
    async fn index_payloads(&self, limit: u32, keep: u32) -> Result<IndexedPayloads, PortError> {
        Ok(IndexedPayloads {
            tasks: self.index_batch(TASKS, limit, keep).await?,
            events: self.index_batch(EVENTS, limit, keep).await?,
        })
    }

    /// Vacuums the pending lists: each row indexed leaves a dead row there, which every
    /// search's look at them reads until a vacuum (with a million of them, `q=nowhere` at
    /// 1 000 000 rows took 32 ms instead of 3.5 ms).
    async fn compact(&self) -> Result<(), PortError> {
        sqlx::query("VACUUM (ANALYZE) task_texts_pending, event_texts_pending")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
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

    /// The tasks not indexed yet, counted by both conditions a list may use.
    async fn not_indexed(s: &PgStore) -> i64 {
        let mut counts = Vec::new();
        for few in [true, false] {
            let sql = format!(
                "SELECT count(*) FROM tasks WHERE {}",
                TASKS.not_indexed(few)
            );
            counts.push(
                sqlx::query_scalar::<_, i64>(&sql)
                    .fetch_one(s.pool())
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(counts[0], counts[1], "both conditions read the same rows");
        counts[0]
    }

    /// Indexes until no task is left unindexed.
    async fn catch_up(s: &PgStore) {
        while s.index_payloads(1000, 0).await.unwrap().tasks > 0 {}
        assert_eq!(not_indexed(s).await, 0);
    }

    /// A row whose transaction commits after a pass is not lost: it is found unindexed (its
    /// pending id commits with it), and the next pass indexes it.
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
        assert_eq!(s.index_payloads(1000, 0).await.unwrap().tasks, 1);
        let indexed = indexed_matches(s.pool(), TASKS, "%badger%")
            .await
            .unwrap()
            .unwrap();
        assert!(
            indexed.len() == 1 && !indexed.contains(&late),
            "{indexed:?}"
        );
        assert_eq!(found(&s, "badger").await.len(), 1, "the early one");
        open.commit().await.unwrap();

        let mut both = vec![late, indexed[0]];
        both.sort();
        assert_eq!(found(&s, "badger").await, both, "the late one unindexed");
        assert_eq!(not_indexed(&s).await, 1);
        catch_up(&s).await;
        let indexed = indexed_matches(s.pool(), TASKS, "%badger%")
            .await
            .unwrap()
            .unwrap();
        assert!(indexed.len() == 2 && indexed.contains(&late), "{indexed:?}");
        assert_eq!(found(&s, "badger").await.len(), 2);
        drop_database(&url).await.unwrap();
    }

    /// A pass that keeps the newest rows for later indexes only the older ones.
    #[tokio::test]
    async fn a_pass_keeps_the_newest_rows_it_is_asked_to() {
        let (url, pool) = fresh_database("campus_search_test").await.unwrap();
        let url = DropOnPanic(url);
        let s = PgStore::new(pool.clone(), Notifier::disabled());
        for _ in 0..5 {
            s.enqueue(&[task(None)]).await.unwrap();
        }
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM tasks ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        let indexed = || async {
            sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM task_texts ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap()
        };
        assert_eq!(s.index_payloads(10, 3).await.unwrap().tasks, 2);
        assert_eq!(indexed().await, ids[..2], "the two oldest");
        assert_eq!(s.index_payloads(10, 3).await.unwrap().tasks, 0);
        assert_eq!(s.index_payloads(1, 0).await.unwrap().tasks, 1);
        assert_eq!(s.index_payloads(10, 0).await.unwrap().tasks, 2);
        assert_eq!(indexed().await, ids);
        drop_database(&url).await.unwrap();
    }

    /// A row deleted before it was indexed (not archived: `campus bench` deletes its rows)
    /// leaves the pending list at the next pass, which counts it.
    #[tokio::test]
    async fn a_row_deleted_before_its_pass_leaves_the_list() {
        let (url, pool) = fresh_database("campus_search_test").await.unwrap();
        let url = DropOnPanic(url);
        let s = PgStore::new(pool.clone(), Notifier::disabled());
        let gone = NewTask {
            payload: r#"{"animal":"a vanished dodo"}"#.into(),
            ..task(None)
        };
        s.enqueue(&[gone, task(None)]).await.unwrap();
        sqlx::query("DELETE FROM tasks WHERE payload::text LIKE '%dodo%'")
            .execute(&pool)
            .await
            .unwrap();
        let done = s.index_payloads(1000, 0).await.unwrap();
        assert_eq!(done.tasks, 2, "both ids left the list");
        s.compact().await.unwrap();
        let (pending, texts): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM task_texts_pending), (SELECT count(*) FROM task_texts)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            (pending, texts),
            (0, 1),
            "only the row still there has a text"
        );
        assert!(found(&s, "dodo").await.is_empty());
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
        // Passes of 1 000 rows, ten of them.
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
