#!/usr/bin/env bash
# The cost of history, and a drain beside the archive, with `campus bench` (each run in its own
# scratch database, one after the other on this machine):
#   1. empty live tables;
#   2. HISTORY finished tasks (two per event, two to three days old) kept in the live tables;
#   3. the same history archived by `campus archive` before the phases;
#   4. ARCHIVE_HISTORY tasks of history kept, then 5. the same archived *during* the drain.
# Usage, from the repository root:
#   cargo build --release -p campus && bash tests/perf/history_cost.sh [HISTORY] [ARCHIVE_HISTORY]
# BENCH_ARGS (default: --tasks 100000 --seconds 10 --api-seconds 5) go to every run.
set -euo pipefail
history=${1:-5000000}
during=${2:-1000000}
bin=${BIN:-./target/release/campus}
args=${BENCH_ARGS:---tasks 100000 --seconds 10 --api-seconds 5}
out=$(mktemp -d)
run() {
  local name=$1; shift
  echo "== $name: campus bench $args $*" >&2
  # shellcheck disable=SC2086
  $bin bench --json $args "$@" > "$out/$name.json"
}
run empty
run history --history "$history"
run archived --history "$history" --archive before
run keep-small --history "$during"
run during --history "$during" --archive during
python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
print(f"{'run':<12} {'history':>9} {'archive':>8} {'archive s':>9} {'drain/s':>8} {'e2e ev/s':>8} {'task p99':>8} {'api p99':>8}")
for name in ["empty", "history", "archived", "keep-small", "during"]:
    r = json.load(open(os.path.join(out, name + ".json")))
    print(f"{name:<12} {r['history_tasks']:>9} {r['archive']:>8} {r['archive_seconds']:>9.1f} "
          f"{r['tasks_per_s']:>8.0f} {r['e2e_events_per_s']:>8.0f} {r['loaded_task_latency_p99_ms']:>8.2f} {r['api_p99_ms']:>8.2f}")
PY
