#!/usr/bin/env bash
# Times the operators' read API and the admin screen with 1 000 000 events and 1 000 000
# tasks in a scratch database (dropped afterwards). Usage, from the repository root:
#   cargo build --release -p campus && bash tests/perf/admin_million.sh [ROWS]
# Needs psql and curl; PostgreSQL at $PGURL_BASE (default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
rows=${1:-1000000}
base=${PGURL_BASE:-postgres://postgres@127.0.0.1:5432}
db=campus_admin_perf_$$
url="$base/$db"
port=${PORT:-18089}
bin=./target/release/campus
app_pid=
cleanup() {
  [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null && wait "$app_pid" 2>/dev/null || true
  psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== scratch database $db, migrations"
psql -q "$base/postgres" -c "CREATE DATABASE $db" >/dev/null
DATABASE_URL=$url $bin migrate >/dev/null

echo "== $rows events and $rows tasks over 7 days, 100 institutions (takes a minute or two)"
psql -q "$url" <<SQL
CREATE FUNCTION pg_temp.uuid7_at(ts timestamptz) RETURNS uuid AS \$\$
  SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 3)
          || '8' || substr(md5(random()::text), 1, 15))::uuid
\$\$ LANGUAGE sql VOLATILE;
INSERT INTO institutions (id, name) SELECT gen_random_uuid(), 'Institution ' || lpad(i::text, 3, '0') FROM generate_series(1, 100) i;
CREATE TEMP TABLE inst AS SELECT row_number() OVER (ORDER BY name) AS n, id FROM institutions;
-- Events: 0.1 % dead with an error, 0.1 % still pending, the rest dispatched.
INSERT INTO domain_events (id, event_type, aggregate_type, aggregate_id, institution_id, payload, correlation_id,
                           status, attempts, errors, occurred_at, dispatched_at, next_attempt_at)
SELECT pg_temp.uuid7_at(t), (ARRAY['InstitutionCreated','ExamGradeNoteAdded','ResetPasswordTokenCreated','ReportRequested'])[1 + g % 4],
       'Thing', gen_random_uuid(), (SELECT id FROM inst WHERE n = 1 + g % 100),
       jsonb_build_object('student', 'student-' || g, 'note', g % 10), 'corr-' || (g / 3),
       CASE WHEN g % 1000 = 7 THEN 'dead' WHEN g % 1000 = 8 THEN 'pending' ELSE 'dispatched' END,
       CASE WHEN g % 1000 = 8 THEN 0 ELSE 1 END,
       CASE WHEN g % 1000 = 7 THEN '[{"at":"2026-11-20T10:00:00Z","attempt":1,"message":"no handler could plan it"}]'::jsonb ELSE '[]' END,
       t, CASE WHEN g % 1000 IN (7, 8) THEN NULL ELSE t END, t
FROM (SELECT g, now() - (($rows - g) * (interval '7 days' / $rows)) AS t FROM generate_series(1, $rows) g) s;
-- Tasks: 0.2 % dead with errors, 0.5 % succeeded after a failed attempt, 0.1 % retrying, 0.1 % pending.
INSERT INTO tasks (id, lineage_id, task_type, handler, payload, institution_id, correlation_id, status, attempt, max_attempts,
                   errors, run_at, created_at, started_at, finished_at, duration_ms)
SELECT id, id, type, type, payload, inst, corr, status, attempt, 5, errors, t, t, t, CASE WHEN status IN ('succeeded', 'dead') THEN t END, 3.5
FROM (
  SELECT pg_temp.uuid7_at(t) AS id, t, (ARRAY['send_reset_password_email','notify_student_of_grade_note','seed_demo_data','print_report'])[1 + g % 4] AS type,
         jsonb_build_object('student', 'student-' || g, 'note', g % 10) AS payload, (SELECT id FROM inst WHERE n = 1 + g % 100) AS inst,
         'corr-' || (g / 3) AS corr,
         CASE WHEN g % 1000 IN (3, 4) THEN 'dead' WHEN g % 1000 = 5 THEN 'retrying' WHEN g % 1000 = 6 THEN 'pending' ELSE 'succeeded' END AS status,
         CASE WHEN g % 1000 = 6 THEN 0 WHEN g % 1000 IN (3, 4) THEN 5 WHEN g % 200 = 1 THEN 2 ELSE 1 END AS attempt,
         CASE WHEN g % 1000 IN (3, 4, 5) OR g % 200 = 1 THEN '[{"at":"2026-11-20T10:00:00Z","attempt":1,"message":"SMTP 451 try later"}]'::jsonb ELSE '[]' END AS errors
  FROM (SELECT g, now() - (($rows - g) * (interval '7 days' / $rows)) AS t FROM generate_series(1, $rows) g) s
) x;
VACUUM ANALYZE domain_events;
VACUUM ANALYZE tasks;
SQL

echo "== the payload texts into the search index (a running daemon does this when it has room)"
DATABASE_URL=$url $bin index-payloads

echo "== campus api on 127.0.0.1:$port"
CAMPUS_ADMIN_EMAIL=perf@campus.test CAMPUS_ADMIN_PASSWORD=perf-password DATABASE_URL=$url CAMPUS_ADDR=127.0.0.1:$port \
  CAMPUS_DATA_DIR=$(mktemp -d) RUST_LOG=warn $bin api >/dev/null 2>&1 &
app_pid=$!
api=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf "$api/health/ready" >/dev/null && break; sleep 0.1; done
token=$(curl -sf -X POST "$api/auth/login" -H 'content-type: application/json' \
  -d '{"email":"perf@campus.test","password":"perf-password"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
jar=$(mktemp)
csrf=$(curl -sf -c "$jar" "$api/admin/login" | grep -o 'name="csrf" value="[^"]*"' | sed 's/.*value="//;s/"$//')
curl -sf -b "$jar" -c "$jar" -o /dev/null -X POST "$api/admin/login" \
  --data-urlencode "csrf=$csrf" --data-urlencode email=perf@campus.test --data-urlencode password=perf-password
inst=$(psql -qtA "$url" -c "SELECT id FROM institutions ORDER BY name LIMIT 1")
task=$(psql -qtA "$url" -c "SELECT id FROM tasks WHERE status = 'dead' ORDER BY id DESC LIMIT 1")
event=$(psql -qtA "$url" -c "SELECT id FROM domain_events ORDER BY id DESC OFFSET 5000 LIMIT 1")

# Median and worst of 7 timed requests after one warm-up.
time_it() {
  local label=$1; shift
  curl -sf -o /dev/null "$@" || { echo "FAILED: $label"; return; }
  local times=()
  for _ in 1 2 3 4 5 6 7; do times+=("$(curl -sf -o /dev/null -w '%{time_total}' "$@")"); done
  printf '%s\n' "${times[@]}" | sort -n | awk -v l="$label" '{a[NR]=$1*1000} END {printf "| %s | %.1f ms | %.1f ms |\n", l, a[4], a[7]}'
}
auth=(-H "authorization: Bearer $token")
echo
echo "| request (JSON API with a bearer token; /admin pages with a session) | median | worst of 7 |"
echo "|---|---|---|"
time_it "GET /adm/tasks (newest 50)" "${auth[@]}" "$api/adm/tasks"
time_it "GET /adm/tasks?institution_id=… (1 % of rows)" "${auth[@]}" "$api/adm/tasks?institution_id=$inst"
time_it "GET /adm/tasks?status=dead&institution_id=…" "${auth[@]}" "$api/adm/tasks?status=dead&institution_id=$inst"
time_it "GET /adm/tasks?task_type=print_report&has_errors=true" "${auth[@]}" "$api/adm/tasks?task_type=print_report&has_errors=true"
time_it "GET /adm/tasks?status=retrying" "${auth[@]}" "$api/adm/tasks?status=retrying"
time_it "GET /adm/tasks?from=…&to=… (one hour, 3 days ago)" "${auth[@]}" "$api/adm/tasks?from=$(date -u -d '3 days ago' +%Y-%m-%dT%H:00:00Z)&to=$(date -u -d '3 days ago 1 hour' +%Y-%m-%dT%H:00:00Z)"
time_it "GET /adm/tasks?correlation_id=corr-4242" "${auth[@]}" "$api/adm/tasks?correlation_id=corr-4242"
time_it "GET /adm/tasks?q=student-777777 (text in payload)" "${auth[@]}" "$api/adm/tasks?q=student-777777"
time_it "GET /adm/tasks?q=nowhere (no match)" "${auth[@]}" "$api/adm/tasks?q=nowhere"
time_it "GET /adm/tasks?q=student-777777&archived=all" "${auth[@]}" "$api/adm/tasks?q=student-777777&archived=all"
time_it "GET /adm/tasks?q=student-7 (11 % of rows match)" "${auth[@]}" "$api/adm/tasks?q=student-7"
time_it "GET /adm/tasks?q=note (every row matches)" "${auth[@]}" "$api/adm/tasks?q=note"
time_it "GET /adm/tasks?q=student-1 (11 %, none among the newest 800 000)" "${auth[@]}" "$api/adm/tasks?q=student-1"
time_it "GET /adm/tasks?q=student-1&status=dead" "${auth[@]}" "$api/adm/tasks?q=student-1&status=dead"
time_it "GET /adm/tasks?q=student-1&institution_id=…" "${auth[@]}" "$api/adm/tasks?q=student-1&institution_id=$inst"
time_it "GET /adm/tasks/{id}" "${auth[@]}" "$api/adm/tasks/$task"
time_it "GET /adm/events (newest 50)" "${auth[@]}" "$api/adm/events"
time_it "GET /adm/events?status=dead&institution_id=…" "${auth[@]}" "$api/adm/events?status=dead&institution_id=$inst"
time_it "GET /adm/events?correlation_id=corr-4242" "${auth[@]}" "$api/adm/events?correlation_id=corr-4242"
time_it "GET /adm/events?q=student-777777 (text in payload)" "${auth[@]}" "$api/adm/events?q=student-777777"
time_it "GET /adm/events?q=nowhere (no match)" "${auth[@]}" "$api/adm/events?q=nowhere"
time_it "GET /adm/events?q=student-7 (11 % of rows match)" "${auth[@]}" "$api/adm/events?q=student-7"
time_it "GET /adm/events?q=student-1" "${auth[@]}" "$api/adm/events?q=student-1"
time_it "GET /adm/events/{id} (with its tasks)" "${auth[@]}" "$api/adm/events/$event"
time_it "GET /adm/summary" "${auth[@]}" "$api/adm/summary"
time_it "GET /adm/summary?institution_id=…" "${auth[@]}" "$api/adm/summary?institution_id=$inst"
time_it "GET /adm/summary?task_type=print_report" "${auth[@]}" "$api/adm/summary?task_type=print_report"
time_it "GET /admin (overview page)" -b "$jar" "$api/admin"
time_it "GET /admin/tasks?status=dead&institution_id=… (page)" -b "$jar" "$api/admin/tasks?status=dead&institution_id=$inst"
time_it "GET /admin/tasks?q=student-777777 (page)" -b "$jar" "$api/admin/tasks?q=student-777777"
time_it "GET /admin/events?correlation_id=corr-4242 (page)" -b "$jar" "$api/admin/events?correlation_id=corr-4242"
time_it "GET /admin/tasks/{id} (page)" -b "$jar" "$api/admin/tasks/$task"

echo
echo "== the same searches with nothing indexed (as if the daemons had been too busy to index since the load)"
psql -q "$url" -c "TRUNCATE task_texts, event_texts" \
  -c "INSERT INTO task_texts_pending SELECT id FROM tasks ON CONFLICT DO NOTHING" \
  -c "INSERT INTO event_texts_pending SELECT id FROM domain_events ON CONFLICT DO NOTHING"
echo "| request | median | worst of 7 |"
echo "|---|---|---|"
time_it "GET /adm/tasks?q=student-777777 (not indexed)" "${auth[@]}" "$api/adm/tasks?q=student-777777"
time_it "GET /adm/tasks?q=nowhere (not indexed)" "${auth[@]}" "$api/adm/tasks?q=nowhere"
time_it "GET /adm/events?q=student-777777 (not indexed)" "${auth[@]}" "$api/adm/events?q=student-777777"
rm -f "$jar"
