#!/usr/bin/env bash
# The least a drain costs PostgreSQL, with no application around it: the claim and completion
# statements alone, run back to back inside PL/pgSQL (no round trips, no handler), on a
# scratch database migrated by Campus. Usage, from the repository root:
#   cargo build --release -p campus && bash tests/perf/drain_floor.sh [TASKS] [ROUNDS]
# Needs psql; PostgreSQL at $PGURL_BASE (default postgres://postgres@127.0.0.1:5432).
#
# Four storage layouts, each filled with TASKS due no-op tasks (UUIDv7-like ids and
# correlation ids, the bench's payload), half of them of one institution and half of another,
# and drained in claims of 500, each committed, then its completion committed:
# - live:       Campus's `tasks` table as migrated: a claim sets the row running (through
#               `tasks_claim`, FOR UPDATE SKIP LOCKED, resuming after its last row), a
#               completion sets it succeeded. Each is a non-HOT update entering every index
#               whose predicate the row meets. (Campus's own claim statement also shares
#               each claim between institutions and types.)
# - HOT claim:  a copy of `tasks` with fillfactor 40, without `tasks_running_lease` and its
#               CHECK: a claim sets only the lease columns, which no index reads, so it is a HOT
#               update when the page has room (a running task keeps its waiting status and is
#               told apart by `locked_by`). Not Campus's schema: what such a redesign would save.
# - narrow:     a narrow queue table beside `tasks` (id, group, turn, lease): a claim updates the
#               queue row and reads the payload from `tasks`; a completion deletes the queue row
#               and sets the `tasks` row succeeded (the history is kept, as Campus keeps it).
# - queue only: the same queue table with no history: a completion only deletes the queue row.
#               This is graphile_worker's shape (a job is locked, then deleted), without its
#               other columns and indexes.
# Each layout drains once with one connection (one institution, then the other) and once with
# two connections at the same time (one institution each), alternating the layouts in every
# round. It prints µs per task of the claims and of the completions (one connection), and the
# tasks/s of both drains, wall clock (docs/PERFORMANCE.md).
set -euo pipefail
tasks=${1:-200000}
rounds=${2:-3}
base=${PGURL_BASE:-postgres://postgres@127.0.0.1:5432}
bin=./target/release/campus
db=campus_floor_$$
die() { echo "drain_floor: $*" >&2; exit 1; }
[[ $tasks =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] || die "usage: $0 [TASKS] [ROUNDS] (positive integers)"
[ -x "$bin" ] || die "$bin not found: run from the repository root after cargo build --release -p campus"
command -v psql >/dev/null || die "psql is not installed"
cleanup() { psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT
psql -q "$base/postgres" -c "CREATE DATABASE $db" >/dev/null || die "cannot create database $db at $base"
url=$base/$db
DATABASE_URL=$url $bin migrate >/dev/null

psql -q -v ON_ERROR_STOP=1 "$url" <<'SQL'
CREATE TABLE floor_results (layout text, round int, connections int, tasks int, seconds float8,
                            claim_us float8, complete_us float8);
CREATE TABLE floor_queue (id uuid PRIMARY KEY, k uuid NOT NULL, claim_at timestamptz NOT NULL,
                          locked_by text, locked_until timestamptz) WITH (fillfactor = 80);
CREATE INDEX floor_queue_claim ON floor_queue (k, claim_at, id) WHERE locked_by IS NULL;
CREATE INDEX floor_queue_lease ON floor_queue (locked_until) WHERE locked_by IS NOT NULL;
-- The HOT claim layout: `tasks` with room in every page and no index on the lease columns.
CREATE TABLE floor_hot (LIKE tasks INCLUDING DEFAULTS) WITH (fillfactor = 40);
ALTER TABLE floor_hot ADD PRIMARY KEY (id);
CREATE INDEX floor_hot_claim ON floor_hot
    (COALESCE(institution_id, '00000000-0000-0000-0000-000000000000'::uuid), claim_at, id)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX floor_hot_institution ON floor_hot (institution_id, id);
CREATE INDEX floor_hot_settled_correlation ON floor_hot (correlation_id) WHERE status IN ('succeeded', 'dead', 'cancelled');
CREATE INDEX floor_hot_event ON floor_hot (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX floor_hot_idempotency_key ON floor_hot (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX floor_hot_with_errors ON floor_hot (id) WHERE errors <> '[]'::jsonb;
CREATE INDEX floor_hot_finished_unsuccessfully ON floor_hot (id) WHERE status IN ('dead', 'cancelled');
CREATE INDEX floor_hot_in_order ON floor_hot (ordering_key, event_id)
    WHERE ordering_key IS NOT NULL AND status IN ('pending', 'running', 'retrying');
CREATE INDEX floor_hot_reprocessed_from ON floor_hot (reprocessed_from) WHERE reprocessed_from IS NOT NULL;
CREATE INDEX floor_hot_reprocess_request ON floor_hot (reprocess_request_id) WHERE reprocess_request_id IS NOT NULL;
-- The second institution (the first is none: the nil group).
INSERT INTO institutions (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'Floor');

-- A UUIDv7-like value for the n-th task (ids and correlation ids grow with time, as Campus
-- mints them).
CREATE FUNCTION floor_uuid7(n bigint, salt int) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
  SELECT (lpad(to_hex(1700000000000 + n), 12, '0') || '7' || substr(md5((n + salt)::text), 1, 19))::uuid
$$;

CREATE PROCEDURE floor_fill(n int, layout text) LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE tasks, task_texts_pending, floor_queue, floor_hot;
  INSERT INTO tasks (id, task_type, payload, institution_id, correlation_id, lineage_id, claim_at)
  SELECT floor_uuid7(g, 0), 'noop',
         '{"student_id":"0192f2a4-7d1e-7c3b-9a55-3f4e2b1c0d9e","exam":"first","note":7.5,"class":"Mathematics 101"}',
         CASE WHEN g % 2 = 1 THEN '00000000-0000-0000-0000-000000000001'::uuid END,
         floor_uuid7(g, 7)::text, gen_random_uuid(), now() - interval '1 hour' + g * interval '1 microsecond'
  FROM generate_series(1, n) g;
  IF layout IN ('narrow', 'queue only') THEN
    INSERT INTO floor_queue (id, k, claim_at)
    SELECT id, COALESCE(institution_id, '00000000-0000-0000-0000-000000000000'), claim_at FROM tasks;
  ELSIF layout = 'HOT claim' THEN
    INSERT INTO floor_hot SELECT * FROM tasks;
    TRUNCATE tasks, task_texts_pending;
  END IF;
END $$;

-- Claims of 500 of group `grp` then their completion, each committed, until nothing of it is
-- left; records the time spent in each kind of statement.
CREATE PROCEDURE floor_drain(layout text, round int, connections int, grp uuid) LANGUAGE plpgsql AS $$
DECLARE
  ids uuid[]; n int := 0; t timestamptz; claiming interval := '0'; completing interval := '0';
  at timestamptz := '-infinity'; aid uuid := '00000000-0000-0000-0000-000000000000'; payloads text[];
  worker text := 'w' || grp::text;
BEGIN
  LOOP
    t := clock_timestamp();
    IF layout = 'live' THEN
      WITH picked AS (
        SELECT id FROM tasks
        WHERE COALESCE(institution_id, '00000000-0000-0000-0000-000000000000'::uuid) = grp
          AND status IN ('pending', 'retrying') AND (claim_at, id) > (at, aid)
        ORDER BY claim_at, id LIMIT 500 FOR UPDATE SKIP LOCKED),
      claimed AS (
        UPDATE tasks k SET status = 'running', attempt = k.attempt + 1, locked_by = worker,
               locked_until = now() + interval '1 minute', started_at = now(), finished_at = NULL
        FROM picked WHERE k.id = picked.id
        RETURNING k.id, k.claim_at, k.payload::text AS payload)
      SELECT array_agg(id ORDER BY claim_at, id), max(claim_at), array_agg(payload) INTO ids, at, payloads FROM claimed;
    ELSIF layout = 'HOT claim' THEN
      WITH picked AS (
        SELECT id FROM floor_hot
        WHERE COALESCE(institution_id, '00000000-0000-0000-0000-000000000000'::uuid) = grp
          AND status IN ('pending', 'retrying') AND locked_by IS NULL AND (claim_at, id) > (at, aid)
        ORDER BY claim_at, id LIMIT 500 FOR UPDATE SKIP LOCKED),
      claimed AS (
        UPDATE floor_hot k SET attempt = k.attempt + 1, locked_by = worker,
               locked_until = now() + interval '1 minute', started_at = now()
        FROM picked WHERE k.id = picked.id
        RETURNING k.id, k.claim_at, k.payload::text AS payload)
      SELECT array_agg(id ORDER BY claim_at, id), max(claim_at), array_agg(payload) INTO ids, at, payloads FROM claimed;
    ELSE
      WITH picked AS (
        SELECT id FROM floor_queue
        WHERE k = grp AND locked_by IS NULL AND (claim_at, id) > (at, aid)
        ORDER BY claim_at, id LIMIT 500 FOR UPDATE SKIP LOCKED),
      claimed AS (
        UPDATE floor_queue q SET locked_by = worker, locked_until = now() + interval '1 minute'
        FROM picked WHERE q.id = picked.id RETURNING q.id, q.claim_at)
      SELECT array_agg(c.id ORDER BY c.claim_at, c.id), max(c.claim_at), array_agg(k.payload::text)
      INTO ids, at, payloads FROM claimed c JOIN tasks k ON k.id = c.id;
    END IF;
    EXIT WHEN ids IS NULL;
    aid := ids[cardinality(ids)];
    COMMIT;
    claiming := claiming + (clock_timestamp() - t);
    t := clock_timestamp();
    IF layout = 'live' THEN
      UPDATE tasks k SET status = 'succeeded', finished_at = now(), duration_ms = 0.1, locked_by = NULL, locked_until = NULL
      WHERE k.id = ANY(ids) AND k.locked_by = worker;
    ELSIF layout = 'HOT claim' THEN
      UPDATE floor_hot k SET status = 'succeeded', finished_at = now(), duration_ms = 0.1, locked_by = NULL, locked_until = NULL
      WHERE k.id = ANY(ids) AND k.locked_by = worker;
    ELSE
      DELETE FROM floor_queue WHERE id = ANY(ids) AND locked_by = worker;
      IF layout = 'narrow' THEN
        UPDATE tasks k SET status = 'succeeded', attempt = 1, started_at = now(), finished_at = now(), duration_ms = 0.1
        WHERE k.id = ANY(ids);
      END IF;
    END IF;
    COMMIT;
    completing := completing + (clock_timestamp() - t);
    n := n + cardinality(ids);
  END LOOP;
  INSERT INTO floor_results (layout, round, connections, tasks, claim_us, complete_us)
  VALUES (layout, round, connections, n, extract(epoch FROM claiming) * 1e6 / n, extract(epoch FROM completing) * 1e6 / n);
END $$;
SQL

none=00000000-0000-0000-0000-000000000000
other=00000000-0000-0000-0000-000000000001
now() { date +%s.%N; }
# Drains what is queued for `layout` with $1 connections and records the wall-clock time.
drain() {
  local layout=$1 round=$2 connections=$3 started
  started=$(now)
  if [ "$connections" = 1 ]; then
    psql -q -v ON_ERROR_STOP=1 "$url" -c "CALL floor_drain('$layout', $round, 1, '$none')" \
      -c "CALL floor_drain('$layout', $round, 1, '$other')" >/dev/null
  else
    psql -q -v ON_ERROR_STOP=1 "$url" -c "CALL floor_drain('$layout', $round, 2, '$none')" >/dev/null &
    local first=$!
    psql -q -v ON_ERROR_STOP=1 "$url" -c "CALL floor_drain('$layout', $round, 2, '$other')" >/dev/null
    wait "$first"
  fi
  psql -q "$url" -c "UPDATE floor_results SET seconds = $(now) - $started
                     WHERE layout = '$layout' AND round = $round AND connections = $connections"
}

echo "drain floor: $tasks tasks per drain, $rounds rounds, claims of 500"
for round in $(seq "$rounds"); do
  for layout in live "HOT claim" narrow "queue only"; do
    for connections in 1 2; do
      psql -q -v ON_ERROR_STOP=1 "$url" -c "CALL floor_fill($tasks, '$layout')" -c "CHECKPOINT" >/dev/null
      drain "$layout" "$round" "$connections"
    done
    psql -qtA "$url" -c "SELECT format('round %s %-10s  one connection: claim %s µs/task, completion %s µs/task, %s tasks/s;  two: %s tasks/s',
        round, layout, round(avg(claim_us) FILTER (WHERE connections = 1)::numeric, 1),
        round(avg(complete_us) FILTER (WHERE connections = 1)::numeric, 1),
        round(sum(tasks) FILTER (WHERE connections = 1) / max(seconds) FILTER (WHERE connections = 1)),
        round(sum(tasks) FILTER (WHERE connections = 2) / max(seconds) FILTER (WHERE connections = 2)))
      FROM floor_results WHERE round = $round AND layout = '$layout' GROUP BY round, layout"
  done
done
echo
echo "| layout | claim µs/task | completion µs/task | tasks/s, one connection | tasks/s, two connections |"
echo "|---|---|---|---|---|"
psql -qtA "$url" -c "
  WITH runs AS (
    SELECT layout, round, connections, avg(claim_us) AS claim_us, avg(complete_us) AS complete_us,
           sum(tasks) / max(seconds) AS per_s
    FROM floor_results GROUP BY layout, round, connections)
  SELECT format('| %s | %s | %s | %s | %s |', layout,
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY claim_us) FILTER (WHERE connections = 1)::numeric, 1),
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY complete_us) FILTER (WHERE connections = 1)::numeric, 1),
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY per_s) FILTER (WHERE connections = 1)::numeric),
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY per_s) FILTER (WHERE connections = 2)::numeric))
  FROM runs GROUP BY layout ORDER BY min(CASE layout WHEN 'live' THEN 0 WHEN 'HOT claim' THEN 1 WHEN 'narrow' THEN 2 ELSE 3 END)"
echo "(medians of $rounds rounds)"
psql -qtA "$url" -c "SELECT format('HOT claim layout: %s of its %s updates were HOT (claims and completions together)', n_tup_hot_upd, n_tup_upd)
  FROM pg_stat_user_tables WHERE relname = 'floor_hot'"
