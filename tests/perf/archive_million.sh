#!/usr/bin/env bash
# Times `campus archive` on 1 000 000 finished tasks and their 500 000 events (two tasks per
# event, all finished two days ago, so all archivable) in a scratch database (dropped
# afterwards), then a second run that finds nothing. Usage, from the repository root:
#   cargo build --release -p campus && bash tests/perf/archive_million.sh [TASKS] [BATCH]
# Needs psql; PostgreSQL at $PGURL_BASE (default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
tasks=${1:-1000000}
batch=${2:-5000}
events=$((tasks / 2))
base=${PGURL_BASE:-postgres://postgres@127.0.0.1:5432}
db=campus_archive_perf_$$
url="$base/$db"
bin=${BIN:-./target/release/campus}
cleanup() { psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "== scratch database $db, migrations"
psql -q "$base/postgres" -c "CREATE DATABASE $db" >/dev/null
DATABASE_URL=$url $bin migrate >/dev/null

echo "== $events dispatched events and $tasks succeeded tasks, finished two days ago"
psql -q "$url" <<SQL
CREATE FUNCTION pg_temp.uuid7_at(ts timestamptz) RETURNS uuid AS \$\$
  SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 3)
          || '8' || substr(md5(random()::text), 1, 15))::uuid
\$\$ LANGUAGE sql VOLATILE;
CREATE TEMP TABLE ev AS
SELECT g, pg_temp.uuid7_at(t) AS id, t
FROM (SELECT g, now() - interval '3 days' + g * (interval '1 day' / $events) AS t FROM generate_series(1, $events) g) s;
INSERT INTO domain_events (id, event_type, aggregate_type, aggregate_id, payload, correlation_id, status, attempts,
                           occurred_at, dispatched_at, next_attempt_at)
SELECT id, 'ExamGradeNoteAdded', 'Enrollment', gen_random_uuid(), jsonb_build_object('note', g % 10), 'corr-' || g,
       'dispatched', 1, t, t, t FROM ev;
INSERT INTO tasks (id, lineage_id, task_type, handler, payload, event_id, correlation_id, status, attempt, max_attempts,
                   run_at, created_at, started_at, finished_at, duration_ms)
SELECT tid, tid, 'notify_student_of_grade_note', h, jsonb_build_object('note', g % 10), id, 'corr-' || g, 'succeeded', 1, 5,
       t, t, t, t, 3.5
FROM (SELECT ev.*, pg_temp.uuid7_at(t) AS tid, h FROM ev, (VALUES ('first'), ('second')) AS hs(h)) x;
VACUUM ANALYZE domain_events;
VACUUM ANALYZE tasks;
SQL

echo "== campus archive --dry-run"
DATABASE_URL=$url CAMPUS_DATA_DIR=$(mktemp -d) $bin archive --dry-run
echo "== campus archive --batch $batch"
DATABASE_URL=$url CAMPUS_DATA_DIR=$(mktemp -d) $bin archive --batch "$batch"
echo "== again (nothing left)"
DATABASE_URL=$url CAMPUS_DATA_DIR=$(mktemp -d) $bin archive --batch "$batch"
psql -qtA "$url" -c "SELECT 'live: ' || (SELECT count(*) FROM tasks) || ' tasks, ' || (SELECT count(*) FROM domain_events)
  || ' events; archived: ' || (SELECT count(*) FROM tasks_processed) || ' tasks, '
  || (SELECT count(*) FROM domain_events_processed) || ' events'"
