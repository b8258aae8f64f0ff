//! The task queue: enqueue, claim with a lease (`FOR UPDATE SKIP LOCKED`, only the types the
//! daemon runs, never a paused one), and fenced, batched completion.

use super::reprocess::{lock_original, Reprocessable};
use super::{db_err, Channel, PgStore};
use async_trait::async_trait;
use campus_core::engine::{Priority, RetryPolicy, TaskState, TaskStatus};
use campus_core::ids::*;
use campus_core::Timestamp;
use campus_ports::{
    ClaimTypes, ClaimedTask, Completion, NewTask, PortError, TaskFilter, TaskOutcome, TaskQueue,
};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Final statuses (reprocessable) and the statuses of a task still waiting to run, as SQL lists.
const FINAL: &str = "('succeeded', 'dead', 'cancelled')";
const WAITING: &str = "('pending', 'running', 'retrying')";

const TASK: Reprocessable = Reprocessable {
    table: "tasks",
    noun: "task",
    waiting: WAITING,
    can_reprocess: |s| TaskStatus::parse(s).is_some_and(TaskStatus::can_reprocess),
    refusal: "only succeeded, dead or cancelled tasks can be reprocessed",
    copy_waiting: "a copy of this task is already waiting to run",
};

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// What makes a task of a group claimable now (`$4` the types asked, paused ones removed in
/// `claimable`; `$9` the longest priority delay in ms bounds the walk by turn: a task due now
/// has its turn by then).
macro_rules! claimable_now {
    () => {
        "status IN ('pending', 'retrying') AND run_at <= now()
          AND claim_at <= now() + $9 * interval '1 millisecond'
          AND task_type = ANY((SELECT types FROM claimable)::text[])"
    };
}

/// Whether task `w` (with an ordering key) is next in its order: no task of an earlier event
/// with its key waits, runs or retries, and no earlier event of its aggregate still waits for
/// dispatch (its task may not exist yet). Reads `tasks_in_order` and `domain_events_aggregate`.
macro_rules! next_in_order {
    () => {
        "NOT EXISTS (SELECT 1 FROM tasks p
                       WHERE p.ordering_key = w.ordering_key AND p.event_id < w.event_id
                         AND p.status IN ('pending', 'running', 'retrying'))
              AND NOT EXISTS (SELECT 1 FROM domain_events o JOIN domain_events e
                                ON e.aggregate_id = o.aggregate_id AND e.aggregate_type = o.aggregate_type
                              WHERE o.id = w.event_id AND e.id < o.id
                                AND e.status IN ('pending', 'retrying'))"
    };
}

/// Takes up to `$2` due tasks for worker `$1` with a lease of `$3` ms, fairly
/// (`ClaimTypes`, `campus_core::engine::scheduling`):
/// 1. `groups` finds the institutions with waiting tasks (`waiting_groups!`);
/// 2. `contenders` keeps those with a task claimable now, with its earliest turn and its room
///    (`$5`/`$6`: the institutions the daemon runs tasks of and what is left of their cap;
///    `$10` the room of the others);
/// 3. `shares` splits `$2` between them as `fair_shares` does;
/// 4. `picked` locks each group's share by turn (`FOR UPDATE SKIP LOCKED`), skipping a task
///    kept in order whose predecessor is not finished;
/// 5. `due` drops what exceeds a capped type's quota (`$7`/`$8`); rows dropped there are
///    unlocked when the statement ends.
///
/// With `$11`–`$13` (a group, a turn, an id) a group's tasks are taken only after that
/// position ([`ClaimCursors`]); a group not listed starts at its head.
///
/// The engine's pool prices sorts out (`connect_engine`); the sorts here are of one row per
/// institution or of the claimed rows, so the plan stays the one written (and JIT is off
/// there, so their price never triggers compilation).
pub(super) const CLAIM: &str = concat!(
    "WITH RECURSIVE
     claimable AS (
        SELECT ARRAY(SELECT t FROM UNNEST($4::text[]) AS t
                     WHERE t <> ALL(ARRAY(SELECT task_type FROM task_type_controls WHERE paused))) AS types
     ),
     ", waiting_groups!(), ",
     contenders AS (
        SELECT g.k, h.claim_at AS head, COALESCE(r.room, $10) AS room, a.after_at, a.after_id
        FROM groups g
        LEFT JOIN UNNEST($5::uuid[], $6::bigint[]) AS r(k, room) ON r.k = g.k
        LEFT JOIN UNNEST($11::uuid[], $12::timestamptz[], $13::uuid[]) AS b(k, at, id) ON b.k = g.k
        CROSS JOIN LATERAL (
            SELECT COALESCE(b.at, '-infinity') AS after_at,
                   COALESCE(b.id, '00000000-0000-0000-0000-000000000000') AS after_id) a
        CROSS JOIN LATERAL (
            SELECT claim_at FROM tasks
            WHERE ", group!(), " = g.k AND ", claimable_now!(), " AND (claim_at, id) > (a.after_at, a.after_id)
            ORDER BY claim_at, id LIMIT 1) h
        WHERE g.k IS NOT NULL AND COALESCE(r.room, $10) > 0
     ),
     shares AS (
        SELECT k, after_at, after_id, LEAST(room, $2 / count(*) OVER ()
                     + CASE WHEN row_number() OVER (ORDER BY head, k) <= $2 % count(*) OVER ()
                            THEN 1 ELSE 0 END) AS share
        FROM contenders
     ),
     picked AS (
        SELECT c.id, c.task_type, c.claim_at
        FROM shares s CROSS JOIN LATERAL (
            SELECT id, task_type, claim_at FROM tasks w
            WHERE ", group!(), " = s.k AND ", claimable_now!(), " AND (claim_at, id) > (s.after_at, s.after_id)
              AND (w.ordering_key IS NULL OR ", next_in_order!(), ")
            ORDER BY claim_at, id LIMIT s.share
            FOR UPDATE SKIP LOCKED) c
        WHERE s.share > 0
     ),
     due AS (
        SELECT id FROM (
            SELECT p.id, q.quota,
                   row_number() OVER (PARTITION BY p.task_type ORDER BY p.claim_at, p.id) AS nth
            FROM picked p LEFT JOIN UNNEST($7::text[], $8::bigint[]) AS q(task_type, quota)
                 ON q.task_type = p.task_type) x
        WHERE quota IS NULL OR nth <= quota
     )
     UPDATE tasks t
     SET status = 'running', attempt = t.attempt + 1, locked_by = $1,
         locked_until = now() + $3 * interval '1 millisecond', started_at = now(), finished_at = NULL
     FROM due WHERE t.id = due.id
     RETURNING t.id, t.task_type, t.payload::text AS payload, t.institution_id, t.event_id, t.correlation_id,
               t.lineage_id, t.attempt, t.max_attempts, t.created_at, t.claim_at"
);

/// How long a worker's claims may go on after their positions ([`ClaimCursors`]) before one
/// starts from the head again: the longest a task due before a position waits for it.
const RESUME_FOR: Duration = Duration::from_millis(100);

/// Where a claim starts in a group: after the task of this turn and id.
#[derive(Clone, Copy)]
pub(super) struct Position {
    group: uuid::Uuid,
    turn: DateTime<Utc>,
    id: uuid::Uuid,
}

/// Where each worker's next claim starts in each group: after the last task its previous
/// claim took there. A claim pays for every index entry it passes at the head of
/// `tasks_claim`, and the entries of the tasks claimed before it stay there, dead, until a
/// vacuum; starting after them skips that walk. Positions are kept only after a full claim
/// (a short one took all that was due) and for [`RESUME_FOR`] after the last claim from the
/// head: a task due before a position (one a claim skipped, or a new one with an earlier turn)
/// waits at most that long. A claim after positions that comes back short looks for the rest
/// from the head at once, so a short claim still means nothing more is due.
#[derive(Default)]
pub(super) struct ClaimCursors(Mutex<HashMap<String, Cursor>>);

struct Cursor {
    /// When the worker last claimed from the head.
    from_head_at: Instant,
    /// One position per group its last claim took tasks of.
    after: Vec<Position>,
}

impl ClaimCursors {
    /// The positions `worker`'s next claim starts after, or `None`: from the head.
    fn resume(&self, worker: &str) -> Option<Vec<Position>> {
        let cursors = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cursors
            .get(worker)
            .filter(|c| c.from_head_at.elapsed() < RESUME_FOR)
            .map(|c| c.after.clone())
    }

    /// Records `worker`'s claim of `rows` (in turn order).
    fn record(
        &self,
        worker: &str,
        from_head: bool,
        full: bool,
        rows: &[(DateTime<Utc>, ClaimedTask)],
    ) {
        let mut cursors = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !full {
            cursors.remove(worker);
            return;
        }
        let from_head_at = match cursors.get(worker) {
            Some(c) if !from_head => c.from_head_at,
            _ => Instant::now(),
        };
        let mut after: Vec<Position> = Vec::new();
        for (turn, task) in rows {
            let group = uuid::Uuid::from_u128(task.institution_id.map_or(0, |i| i.0));
            let last = Position {
                group,
                turn: *turn,
                id: uuid::Uuid::from_u128(task.id.0),
            };
            match after.iter_mut().find(|p| p.group == group) {
                Some(p) => *p = last,
                None => after.push(last),
            }
        }
        cursors.insert(
            worker.to_owned(),
            Cursor {
                from_head_at,
                after,
            },
        );
    }
}

/// Takes one task of `task_type` and `institution` out of `room`: false (and nothing taken)
/// when the type is not in it, its cap is used up, or the institution's room is.
pub(super) fn take(
    room: &mut ClaimTypes,
    task_type: &str,
    institution: Option<InstitutionId>,
) -> bool {
    let quota = if room.any.iter().any(|t| t == task_type) {
        None
    } else {
        match room
            .capped
            .iter()
            .position(|(t, q)| t == task_type && *q > 0)
        {
            Some(at) => Some(at),
            None => return false,
        }
    };
    let place = match room.institution_cap {
        None => None,
        Some(cap) => match room
            .institutions
            .iter()
            .position(|(i, _)| *i == institution)
        {
            Some(at) if room.institutions[at].1 == 0 => return false,
            Some(at) => Some(at),
            None if cap == 0 => return false,
            None => {
                room.institutions.push((institution, cap));
                Some(room.institutions.len() - 1)
            }
        },
    };
    if let Some(at) = quota {
        room.capped[at].1 -= 1;
    }
    if let Some(at) = place {
        room.institutions[at].1 -= 1;
    }
    true
}

/// Writes a batch of outcomes, fenced by worker (`$7`) and attempt. `locked_by` is set exactly
/// while a task runs (a CHECK in migration 0004); there is no `status = 'running'` on purpose:
/// it would let the planner walk `tasks_running_lease` once per row of the batch whenever the
/// statistics were taken while nothing ran (measured: 70 ms per completion).
pub(super) const COMPLETE: &str = "UPDATE tasks t SET
        status = u.status,
        run_at = CASE WHEN u.status = 'retrying' THEN now() + u.delay_ms * interval '1 millisecond' ELSE t.run_at END,
        claim_at = CASE WHEN u.status = 'retrying'
                   THEN now() + u.delay_ms * interval '1 millisecond' + (t.claim_at - t.run_at) ELSE t.claim_at END,
        errors = CASE WHEN u.message IS NULL THEN t.errors
                 ELSE t.errors || jsonb_build_array(jsonb_build_object('at', now(), 'attempt', u.attempt, 'message', u.message)) END,
        finished_at = now(),
        duration_ms = u.duration_ms,
        locked_by = NULL,
        locked_until = NULL
     FROM UNNEST($1::uuid[], $2::int[], $3::text[], $4::float8[], $5::text[], $6::float8[])
          AS u(id, attempt, status, delay_ms, message, duration_ms)
     WHERE t.id = u.id AND t.attempt = u.attempt AND t.locked_by = $7";

#[async_trait]
impl TaskQueue for PgStore {
    async fn enqueue(&self, tasks: &[NewTask]) -> Result<usize, PortError> {
        if tasks.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(tasks.len());
        let mut types = Vec::with_capacity(tasks.len());
        let mut payloads = Vec::with_capacity(tasks.len());
        let mut institutions = Vec::with_capacity(tasks.len());
        let mut correlations = Vec::with_capacity(tasks.len());
        let mut max_attempts = Vec::with_capacity(tasks.len());
        let mut keys = Vec::with_capacity(tasks.len());
        let mut run_at = Vec::with_capacity(tasks.len());
        let mut priorities = Vec::with_capacity(tasks.len());
        for t in tasks {
            let payload: serde_json::Value = serde_json::from_str(&t.payload)
                .map_err(|e| PortError::Conflict(format!("task payload is not JSON: {e}")))?;
            ids.push(uuid::Uuid::now_v7());
            types.push(t.task_type.clone());
            payloads.push(payload);
            institutions.push(t.institution_id.map(|i| uuid::Uuid::from_u128(i.0)));
            correlations.push(t.correlation_id.clone());
            max_attempts.push(to_i32(t.max_attempts.max(1)));
            keys.push(t.idempotency_key.clone());
            run_at.push(t.run_at.map(crate::dto::time));
            priorities.push(t.priority.level());
        }
        let r = sqlx::query(
            "INSERT INTO tasks (id, lineage_id, task_type, payload, institution_id, correlation_id, max_attempts,
                                idempotency_key, run_at, priority, claim_at)
             SELECT id, id, task_type, payload, institution_id, correlation_id, max_attempts, key, due, priority,
                    due + priority * $10 * interval '1 millisecond'
             FROM UNNEST($1::uuid[], $2::text[], $3::jsonb[], $4::uuid[], $5::text[], $6::int[], $7::text[],
                         $8::timestamptz[], $9::smallint[])
                  AS t(id, task_type, payload, institution_id, correlation_id, max_attempts, key, run_at, priority)
             CROSS JOIN LATERAL (SELECT COALESCE(t.run_at, now()) AS due) d
             ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
        )
        .bind(&ids)
        .bind(&types)
        .bind(&payloads)
        .bind(&institutions)
        .bind(&correlations)
        .bind(&max_attempts)
        .bind(&keys)
        .bind(&run_at)
        .bind(&priorities)
        .bind(millis(self.priority_lag))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        self.notifier.poke(Channel::Tasks);
        Ok(usize::try_from(r.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn claim(
        &self,
        worker: &str,
        types: &ClaimTypes,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedTask>, PortError> {
        if limit == 0 || types.is_empty() {
            return Ok(Vec::new());
        }
        let after = self.claim_cursors.resume(worker);
        let mut rows = self
            .claim_after(
                worker,
                types,
                limit,
                lease,
                after.as_deref().unwrap_or_default(),
            )
            .await?;
        let want = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut from_head = after.is_none();
        if !from_head && rows.len() < want {
            // Short after a position: tasks may wait before it (a claim skipped them, or they
            // came with an earlier turn). A short claim must mean nothing more is due, so the
            // rest is looked for from the head.
            let mut rest = types.clone();
            for (_, t) in &rows {
                take(&mut rest, &t.task_type, t.institution_id);
            }
            if !rest.is_empty() {
                let more = u32::try_from(want - rows.len()).unwrap_or(u32::MAX);
                rows.extend(self.claim_after(worker, &rest, more, lease, &[]).await?);
            }
            from_head = true;
        }
        // Started in turn order (the statement returns them in no particular one).
        rows.sort_by_key(|(turn, t)| (*turn, t.id));
        self.claim_cursors
            .record(worker, from_head, rows.len() == want, &rows);
        Ok(rows.into_iter().map(|(_, t)| t).collect())
    }

    async fn complete(
        &self,
        worker: &str,
        completions: &[Completion],
        retry: &RetryPolicy,
    ) -> Result<usize, PortError> {
        if completions.is_empty() {
            return Ok(0);
        }
        let n = completions.len();
        let mut ids = Vec::with_capacity(n);
        let mut attempts = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut delays = Vec::with_capacity(n);
        let mut messages: Vec<Option<String>> = Vec::with_capacity(n);
        let mut durations = Vec::with_capacity(n);
        for c in completions {
            // The core's lifecycle rules decide the next state (every end of a running attempt
            // is a valid transition; the fence below skips rows that are not that attempt).
            let (failure, message, retry_in) = match &c.outcome {
                TaskOutcome::Succeeded => (None, None, None),
                TaskOutcome::Failed {
                    message,
                    permanent,
                    retry_in,
                } => (Some(*permanent), Some(message.clone()), *retry_in),
            };
            let next = TaskState::after_attempt(c.attempt, c.max_attempts, failure);
            ids.push(uuid::Uuid::from_u128(c.id.0));
            attempts.push(to_i32(c.attempt));
            statuses.push(next.as_str());
            let delay = retry_in.unwrap_or_else(|| retry.delay(c.attempt, rand::random()));
            delays.push(millis(delay));
            messages.push(message);
            durations.push(millis(c.duration));
        }
        let r = sqlx::query(COMPLETE)
            .bind(&ids)
            .bind(&attempts)
            .bind(&statuses)
            .bind(&delays)
            .bind(&messages)
            .bind(&durations)
            .bind(worker)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        self.notifier.poke(Channel::Changes);
        Ok(usize::try_from(r.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn heartbeat(
        &self,
        worker: &str,
        tasks: &[TaskId],
        lease: Duration,
    ) -> Result<Vec<TaskId>, PortError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<uuid::Uuid> = tasks.iter().map(|t| uuid::Uuid::from_u128(t.0)).collect();
        // A heartbeat never waits for a row lock: it skips the rows a completion of the same
        // daemon is writing (they are finished anyway). Waiting made heartbeat and completion,
        // which lock their rows in different orders, deadlock now and then (each time a
        // second's stall until PostgreSQL's deadlock check aborted one of them).
        let held: Vec<uuid::Uuid> = sqlx::query_scalar(
            "UPDATE tasks SET locked_until = now() + $3 * interval '1 millisecond'
             WHERE id IN (SELECT id FROM tasks WHERE id = ANY($1) AND locked_by = $2
                          FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .bind(&ids)
        .bind(worker)
        .bind(millis(lease))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(held.into_iter().map(|id| TaskId(id.as_u128())).collect())
    }

    async fn rescue_expired(&self, retry: &RetryPolicy, limit: u32) -> Result<usize, PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let rows = sqlx::query(
            "SELECT id, attempt, max_attempts, locked_by FROM tasks
             WHERE status = 'running' AND locked_until < now()
             ORDER BY locked_until LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut statuses = Vec::with_capacity(rows.len());
        let mut delays = Vec::with_capacity(rows.len());
        let mut messages = Vec::with_capacity(rows.len());
        for r in &rows {
            let attempt = u32::try_from(r.get::<i32, _>("attempt")).unwrap_or(0);
            let max_attempts = u32::try_from(r.get::<i32, _>("max_attempts")).unwrap_or(1);
            // An expired lease is a failed (not permanent) attempt of a running task.
            let next = TaskState::after_attempt(attempt, max_attempts, Some(false));
            let holder: Option<String> = r.get("locked_by");
            ids.push(r.get::<uuid::Uuid, _>("id"));
            statuses.push(next.as_str());
            delays.push(millis(retry.delay(attempt, rand::random())));
            messages.push(format!(
                "lease expired: worker {} stopped responding during attempt {attempt}",
                holder.as_deref().unwrap_or("?")
            ));
        }
        sqlx::query(
            "UPDATE tasks t SET
                status = u.status,
                run_at = CASE WHEN u.status = 'retrying' THEN now() + u.delay_ms * interval '1 millisecond' ELSE t.run_at END,
                claim_at = CASE WHEN u.status = 'retrying'
                           THEN now() + u.delay_ms * interval '1 millisecond' + (t.claim_at - t.run_at) ELSE t.claim_at END,
                errors = t.errors || jsonb_build_array(jsonb_build_object('at', now(), 'attempt', t.attempt, 'message', u.message)),
                finished_at = CASE WHEN u.status = 'dead' THEN now() END,
                locked_by = NULL,
                locked_until = NULL
             FROM UNNEST($1::uuid[], $2::text[], $3::float8[], $4::text[]) AS u(id, status, delay_ms, message)
             WHERE t.id = u.id",
        )
        .bind(&ids)
        .bind(&statuses)
        .bind(&delays)
        .bind(&messages)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.notifier.poke(Channel::Tasks);
        Ok(rows.len())
    }

    async fn reprocess_task(
        &self,
        id: TaskId,
        scope: Option<InstitutionId>,
        request_id: Option<String>,
    ) -> Result<TaskId, PortError> {
        let original = uuid::Uuid::from_u128(id.0);
        let tx = self.pool.begin().await.map_err(db_err)?;
        let mut tx = lock_original(tx, &TASK, original, scope).await?;
        let copy = uuid::Uuid::now_v7();
        insert_copies(
            &mut tx,
            &[copy],
            &[original],
            request_id,
            None,
            self.priority_lag,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.notifier.poke(Channel::Tasks);
        Ok(TaskId(copy.as_u128()))
    }

    async fn reprocess_tasks(
        &self,
        filter: &TaskFilter,
        limit: u32,
        request_id: Option<String>,
    ) -> Result<usize, PortError> {
        let status = filter.status.unwrap_or(TaskStatus::Dead);
        if !status.can_reprocess() {
            return Err(PortError::Conflict(format!(
                "{} tasks cannot be reprocessed; choose succeeded, dead or cancelled",
                status.as_str()
            )));
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let originals: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
            "SELECT t.id FROM tasks t
             WHERE t.status = $1
               AND ($2::text IS NULL OR t.task_type = $2)
               AND ($3::uuid IS NULL OR t.institution_id = $3)
               AND ($4::timestamptz IS NULL OR t.created_at >= $4)
               AND ($5::timestamptz IS NULL OR t.created_at < $5)
               AND ($7::uuid IS NULL OR t.event_id = $7)
               AND ($8::text IS NULL OR t.correlation_id = $8 OR t.reprocess_request_id = $8)
               AND ($9::text IS NULL OR t.payload::text ILIKE $9)
               AND NOT EXISTS (SELECT 1 FROM tasks c WHERE c.reprocessed_from = t.id AND c.status IN {WAITING})
               -- A failed or cancelled task that a later copy in its lineage already fixed
               -- (it succeeded) is not copied again.
               AND ($10 OR NOT EXISTS (SELECT 1 FROM tasks c
                        WHERE c.reprocessed_from IS NOT NULL AND c.lineage_id = t.lineage_id
                          AND c.status = 'succeeded' AND c.created_at > t.created_at))
             ORDER BY t.created_at, t.id
             LIMIT $6
             FOR UPDATE OF t SKIP LOCKED"
        ))
        .bind(status.as_str())
        .bind(filter.task_type.as_deref())
        .bind(filter.institution_id.map(|i| uuid::Uuid::from_u128(i.0)))
        .bind(filter.created_from.map(crate::dto::time))
        .bind(filter.created_to.map(crate::dto::time))
        .bind(i64::from(limit))
        .bind(filter.event_id.map(|e| uuid::Uuid::from_u128(e.0)))
        .bind(filter.correlation_id.as_deref())
        .bind(
            filter
                .text
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(super::admin::contains_pattern),
        )
        .bind(status == TaskStatus::Succeeded)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let copies: Vec<uuid::Uuid> = originals.iter().map(|_| uuid::Uuid::now_v7()).collect();
        // Copies made in bulk wait behind the work of people (their priority is `bulk`).
        let bulk = Some(Priority::Bulk);
        let n = insert_copies(
            &mut tx,
            &copies,
            &originals,
            request_id,
            bulk,
            self.priority_lag,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        if n > 0 {
            self.notifier.poke(Channel::Tasks);
        }
        Ok(n)
    }
}

impl PgStore {
    /// One claim statement ([`CLAIM`]), each group's tasks taken after its position in
    /// `after` (or from its head), with each task's turn.
    async fn claim_after(
        &self,
        worker: &str,
        types: &ClaimTypes,
        limit: u32,
        lease: Duration,
        after: &[Position],
    ) -> Result<Vec<(DateTime<Utc>, ClaimedTask)>, PortError> {
        let mut asked: Vec<&str> = types.any.iter().map(String::as_str).collect();
        let (mut capped, mut quotas) = (Vec::new(), Vec::new());
        for (task_type, quota) in types.capped.iter().filter(|(_, q)| *q > 0) {
            asked.push(task_type);
            capped.push(task_type.as_str());
            quotas.push(i64::from(*quota));
        }
        let (institutions, rooms): (Vec<uuid::Uuid>, Vec<i64>) = types
            .institutions
            .iter()
            .map(|(i, room)| {
                (
                    uuid::Uuid::from_u128(i.map_or(0, |i| i.0)),
                    i64::from(*room),
                )
            })
            .unzip();
        let query = sqlx::query(CLAIM)
            .bind(worker)
            .bind(i64::from(limit))
            .bind(millis(lease))
            .bind(asked)
            .bind(institutions)
            .bind(rooms)
            .bind(capped)
            .bind(quotas)
            .bind(millis(Priority::Bulk.delay(self.priority_lag)))
            .bind(i64::from(types.institution_cap.unwrap_or(limit)))
            .bind(after.iter().map(|p| p.group).collect::<Vec<_>>())
            .bind(after.iter().map(|p| p.turn).collect::<Vec<_>>())
            .bind(after.iter().map(|p| p.id).collect::<Vec<_>>());
        let rows = query.fetch_all(&self.pool).await.map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get("claim_at"),
                    ClaimedTask {
                        id: TaskId(r.get::<uuid::Uuid, _>("id").as_u128()),
                        task_type: r.get("task_type"),
                        payload: r.get("payload"),
                        institution_id: r
                            .get::<Option<uuid::Uuid>, _>("institution_id")
                            .map(|i| InstitutionId(i.as_u128())),
                        event_id: r
                            .get::<Option<uuid::Uuid>, _>("event_id")
                            .map(|i| EventId(i.as_u128())),
                        correlation_id: r.get("correlation_id"),
                        lineage_id: TaskId(r.get::<uuid::Uuid, _>("lineage_id").as_u128()),
                        attempt: u32::try_from(r.get::<i32, _>("attempt")).unwrap_or(0),
                        max_attempts: u32::try_from(r.get::<i32, _>("max_attempts")).unwrap_or(1),
                        created_at: Timestamp(
                            r.get::<DateTime<Utc>, _>("created_at").timestamp_millis(),
                        ),
                    },
                )
            })
            .collect())
    }
}

/// What a copy takes from its original (live or archived).
const COPIED: &str =
    "id, lineage_id, task_type, handler, payload, institution_id, event_id, correlation_id, \
                      max_attempts, status, priority";

/// Inserts `copies[i]` as a new pending task copying `originals[i]`: the original's
/// correlation id, and the operator's `request_id` as `reprocess_request_id`. A copy keeps
/// its original's priority unless `priority` says otherwise (bulk reprocessing), and waits
/// that priority's delay (`lag` per level) for its turn.
async fn insert_copies(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    copies: &[uuid::Uuid],
    originals: &[uuid::Uuid],
    request_id: Option<String>,
    priority: Option<Priority>,
    lag: Duration,
) -> Result<usize, PortError> {
    if copies.is_empty() {
        return Ok(0);
    }
    let r = sqlx::query(&format!(
        "INSERT INTO tasks (id, lineage_id, task_type, handler, payload, institution_id, event_id, correlation_id,
                            reprocess_request_id, reprocessed_from, max_attempts, priority, claim_at)
         SELECT c.copy, t.lineage_id, t.task_type, t.handler, t.payload, t.institution_id, t.event_id,
                t.correlation_id, $3, t.id, t.max_attempts, p.priority,
                now() + p.priority * $5 * interval '1 millisecond'
         FROM UNNEST($1::uuid[], $2::uuid[]) AS c(copy, original)
         JOIN (SELECT {COPIED} FROM tasks UNION ALL SELECT {COPIED} FROM tasks_processed) t
           ON t.id = c.original
         CROSS JOIN LATERAL (SELECT COALESCE($4::smallint, t.priority) AS priority) p
         WHERE t.status IN {FINAL}"
    ))
    .bind(copies)
    .bind(originals)
    .bind(request_id)
    .bind(priority.map(Priority::level))
    .bind(millis(lag))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(usize::try_from(r.rows_affected()).unwrap_or(usize::MAX))
}
