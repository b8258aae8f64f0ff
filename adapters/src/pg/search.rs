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

/// A search reads at most this many of the newest indexed rows whose text matches; a text
/// matching more is searched among those (newer than the last of them) first.
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

/// The newest indexed rows whose text matches a pattern (see [`indexed_matches`]).
pub(super) struct IndexedMatches {
    /// Their ids, newest first.
    pub ids: Vec<uuid::Uuid>,
    /// When more rows match than [`INDEXED_MATCHES_MAX`]: the oldest of `ids`. Every indexed
    /// row that matches and is not older is in `ids`.
    pub floor: Option<uuid::Uuid>,
}

/// The newest [`INDEXED_MATCHES_MAX`] indexed rows whose text contains `pattern` (a LIKE
/// pattern, matched as ILIKE would: the texts are stored lowercased, migration 0021).
/// Planned afresh for each pattern (not a prepared statement's generic plan): whether the
/// trigram index or a walk of the newest texts is faster depends on the pattern.
pub(super) async fn indexed_matches<'c>(
    db: impl sqlx::PgExecutor<'c>,
    s: Searchable,
    pattern: &str,
) -> Result<IndexedMatches, PortError> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
        "SELECT id FROM {} WHERE body LIKE lower($1) ORDER BY id DESC LIMIT $2",
        s.texts
    ))
    .bind(pattern)
    .bind(INDEXED_MATCHES_MAX)
    .persistent(false)
    .fetch_all(db)
    .await
    .map_err(db_err)?;
    // The statement's limit: a last id there means more may match.
    let floor = ids.get(INDEXED_MATCHES_MAX as usize - 1).copied();
    Ok(IndexedMatches { ids, floor })
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
                 SELECT t.id, lower(t.payload::text) FROM {table} t WHERE t.id = ANY (ARRAY(SELECT id FROM batch))
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

    /// Refreshes the statistics of the indexed texts after a bulk load: a search's plan (walk
    /// the newest texts or read every match) follows them, and without them PostgreSQL reads
    /// every match of a common text. Autovacuum does the same later, where it runs.
    pub async fn analyze_texts(&self) -> Result<(), PortError> {
        sqlx::query("ANALYZE task_texts, event_texts")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
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

    /// The ids of a task list with `filter`, newest first.
    async fn listed(s: &PgStore, filter: ListFilter, limit: u32) -> Vec<uuid::Uuid> {
        let q = TaskQuery {
            filter,
            limit,
            ..Default::default()
        };
        let views = s.list_tasks(&q, None).await.unwrap();
        views
            .iter()
            .map(|v| uuid::Uuid::from_u128(v.id.0))
            .collect()
    }

    /// The ids of the first 100 tasks, live or archived, containing `text`, sorted.
    async fn found(s: &PgStore, text: &str) -> Vec<uuid::Uuid> {
        let filter = ListFilter {
            text: Some(text.into()),
            archived: Archived::All,
            ..Default::default()
        };
        let mut ids = listed(s, filter, 100).await;
        ids.sort();
        ids
    }

    /// A filter by `text` and `institution`.
    fn of(institution: uuid::Uuid, text: &str) -> ListFilter {
        ListFilter {
            text: Some(text.into()),
            institution_id: Some(campus_core::ids::InstitutionId(institution.as_u128())),
            ..Default::default()
        }
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

    /// Inserts `n` tasks of `institution` whose payload holds `word`, with ids that grow in
    /// insertion order as UUIDv7 ids do (the clock in microseconds, then the row's number).
    async fn insert_in_order(
        pool: &sqlx::PgPool,
        institution: Option<uuid::Uuid>,
        word: &str,
        n: i64,
    ) {
        sqlx::query(
            "INSERT INTO tasks (id, lineage_id, task_type, payload, institution_id)
             SELECT id, id, 'T', jsonb_build_object('word', $3::text, 'n', n), $2
             FROM (SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000000)::bigint), 16, '0')
                           || lpad(to_hex(n), 16, '0'))::uuid AS id, n
                   FROM generate_series(1, $1) n) g",
        )
        .bind(n)
        .bind(institution)
        .bind(word)
        .execute(pool)
        .await
        .unwrap();
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
             VALUES ($1, $1, 'T', '{\"animal\": \"a late BADGER\"}')",
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
            .ids;
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
            .ids;
        assert!(indexed.len() == 2 && indexed.contains(&late), "{indexed:?}");
        assert_eq!(found(&s, "badger").await.len(), 2);
        let indexed = indexed_matches(s.pool(), TASKS, "%Late Badger%")
            .await
            .unwrap();
        assert_eq!(
            indexed.ids,
            [late],
            "the indexed text matches as ILIKE would"
        );
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

    /// A text matching more indexed rows than a search reads is looked for among the newest
    /// of them first; when those leave the page short (another filter), the list walks the
    /// table and still finds the older rows.
    #[tokio::test]
    async fn a_common_text_is_searched_among_its_newest_matches_first() {
        let (url, pool) = fresh_database("campus_search_test").await.unwrap();
        let url = DropOnPanic(url);
        let s = PgStore::new(pool.clone(), Notifier::disabled());
        let few = uuid::Uuid::now_v7();
        insert_in_order(&pool, Some(few), "Common", 3).await;
        insert_in_order(&pool, None, "Common", INDEXED_MATCHES_MAX).await;
        catch_up(&s).await;
        let newest: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM tasks ORDER BY id DESC")
            .fetch_all(&pool)
            .await
            .unwrap();
        let matches = indexed_matches(s.pool(), TASKS, "%common%").await.unwrap();
        assert_eq!(matches.ids, newest[..INDEXED_MATCHES_MAX as usize]);
        assert_eq!(
            matches.floor,
            newest.get(INDEXED_MATCHES_MAX as usize - 1).copied()
        );

        let mut page = newest[..100].to_vec();
        page.sort();
        assert_eq!(found(&s, "common").await, page, "the newest full page");
        let older = listed(&s, of(few, "common"), 100).await;
        assert_eq!(
            older,
            newest[INDEXED_MATCHES_MAX as usize..],
            "below the floor"
        );
        drop_database(&url).await.unwrap();
    }

    /// A search narrowed by another filter first checks the newest rows passing it: a full
    /// page there is the answer, and a short one is not taken for the whole answer.
    #[tokio::test]
    async fn a_narrowed_search_looks_beyond_its_window_when_the_page_is_short() {
        use crate::pg::admin::WINDOW_ROWS;
        let (url, pool) = fresh_database("campus_search_test").await.unwrap();
        let url = DropOnPanic(url);
        let s = PgStore::new(pool.clone(), Notifier::disabled());
        let (x, y) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        insert_in_order(&pool, Some(x), "Needle", 1).await;
        insert_in_order(&pool, Some(x), "hay", WINDOW_ROWS).await;
        insert_in_order(&pool, Some(y), "needle", 2).await;
        let oldest: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM tasks ORDER BY id LIMIT 1")
                .fetch_all(&pool)
                .await
                .unwrap();
        for indexed in [false, true] {
            if indexed {
                catch_up(&s).await;
            }
            let found = listed(&s, of(x, "needle"), 10).await;
            assert_eq!(found, oldest, "the one match of x, older than its window");
        }
        insert_in_order(&pool, Some(x), "needle", 3).await;
        let newest: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM tasks WHERE institution_id = $1 ORDER BY id DESC LIMIT 2",
        )
        .bind(x)
        .fetch_all(&pool)
        .await
        .unwrap();
        let found = listed(&s, of(x, "needle"), 2).await;
        assert_eq!(found, newest, "a full page of the window, newest first");
        drop_database(&url).await.unwrap();
    }
}
