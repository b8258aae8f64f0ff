#!/usr/bin/env bash
# Fuzzes the running API from the committed spec with schemathesis and every check it has
# (`--checks all`), as an Adm user, as an Academic user (the routes scoped to an
# institution), as a teacher and as a student, on a fresh database. Fails on any failure.
# tests/contract/schemathesis.toml names the three operations that may refuse schema-valid
# input (a reset token or a webhook host only the server can judge).
#   bash tests/contract/fuzz.sh [EXAMPLES_PER_OPERATION]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/../.."
examples=${1:-100}
port=${CAMPUS_FUZZ_PORT:-18181}
base="http://127.0.0.1:$port"
db=campus_fuzz
work=$(mktemp -d)
app_pid=
cleanup() {
  [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null && wait "$app_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

command -v st >/dev/null || python3 -m pip install --quiet schemathesis
cargo build -q -p campus --bin campus
psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"

echo "== campus serve on $base (database $db)"
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" CAMPUS_ADDR="127.0.0.1:$port" \
  CAMPUS_DATA_DIR="$work/data" CAMPUS_JWT_SECRET="fuzzing-secret-0123456789" \
  CAMPUS_ADMIN_EMAIL=adm@fuzz.test CAMPUS_ADMIN_PASSWORD=adm-fuzz-password \
  CAMPUS_DEMO_PASSWORD=demo-fuzz-password CAMPUS_RATE_LIMITS=off \
  CAMPUS_WEBHOOK_ALLOWED_HOSTS=127.0.0.1 \
  ./target/debug/campus serve >"$work/campus.log" 2>&1 &
app_pid=$!
for _ in $(seq 1 300); do
  curl -sf "$base/health/ready" >/dev/null && break
  kill -0 "$app_pid" 2>/dev/null || { cat "$work/campus.log"; exit 1; }
  sleep 0.1
done
curl -sf "$base/health/ready" >/dev/null || { echo "campus did not become ready"; cat "$work/campus.log"; exit 1; }

# Tokens: the configured Adm user, and an institution's Academic user, a demo teacher and a
# demo student (seeded by the daemon).
read -r adm academic teacher student < <(python3 - "$base" <<'PY'
import json, sys, time, urllib.request
base = sys.argv[1]
def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", **({"authorization": "Bearer " + token} if token else {})})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")
def login(email, password):
    return call("POST", "/auth/login", {"email": email, "password": password})["access_token"]
call("POST", "/institutions", {"name": "Fuzz College", "academic": {
    "name": "Ada Academic", "email": "academic@fuzz.test", "password": "academic-fuzz-password"}})
academic = login("academic@fuzz.test", "academic-fuzz-password")
for _ in range(300):
    teachers = call("GET", "/academic/teachers", token=academic)
    students = call("GET", "/academic/students", token=academic)
    if teachers and students:
        break
    time.sleep(0.1)
print(login("adm@fuzz.test", "adm-fuzz-password"), academic,
      login(teachers[0]["email"], "demo-fuzz-password"), login(students[0]["email"], "demo-fuzz-password"))
PY
)

status=0
fuzz() {
  local who=$1 token=$2; shift 2
  echo "== schemathesis as $who"
  st --config-file tests/contract/schemathesis.toml run openapi/openapi.json --url "$base" --checks all --max-examples "$examples" \
    --header "Authorization: Bearer $token" --no-color --seed 1 \
    --report junit --report-dir "target/schemathesis/$who" "$@" || status=1
}
fuzz adm "$adm" --include-path-regex '^/(adm|audit|institutions|auth|health)'
fuzz academic "$academic" --include-path-regex '^/(academic|audit|adm/(events|tasks|summary))'
fuzz teacher "$teacher" --include-path-regex '^/teacher/'
fuzz student "$student" --include-path-regex '^/student/'
if [ $status -ne 0 ]; then
  echo "schemathesis found failures; the server's log: $work/campus.log" >&2
  tail -n 50 "$work/campus.log" >&2
fi
exit $status
