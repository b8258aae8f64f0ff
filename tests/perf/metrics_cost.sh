#!/usr/bin/env bash
# The cost of instrumentation: `campus bench` with metrics on and off (CAMPUS_METRICS, which
# the bench's `campus daemon` and `campus api` children inherit), alternated RUNS times in one
# sitting so that drift on the machine hits both alike. Usage, from the repository root:
#   cargo build --release -p campus && bash tests/perf/metrics_cost.sh [RUNS]
# BENCH_ARGS (default: --tasks 100000 --seconds 10 --samples 200 --api-seconds 5) go to every run.
set -euo pipefail
runs=${1:-3}
bin=${BIN:-./target/release/campus}
args=${BENCH_ARGS:---tasks 100000 --seconds 10 --samples 200 --api-seconds 5}
out=$(mktemp -d)
for i in $(seq 1 "$runs"); do
  for m in on off; do
    echo "== run $i, metrics $m" >&2
    # shellcheck disable=SC2086
    CAMPUS_METRICS=$m $bin bench --json $args > "$out/$m-$i.json" 2>/dev/null
  done
done
python3 - "$out" "$runs" <<'PY'
import json, os, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
rows = {m: [json.load(open(os.path.join(out, f"{m}-{i}.json"))) for i in range(1, runs + 1)] for m in ("on", "off")}
print(f"{'metrics':<8} {'drain tasks/s (each run)':<34} {'median':>8} {'api p99 ms (each run)':<28} {'median':>7}")
for m in ("on", "off"):
    d = [r["tasks_per_s"] for r in rows[m]]
    a = [r["api_p99_ms"] for r in rows[m]]
    print(f"{m:<8} {' / '.join(f'{x:.0f}' for x in d):<34} {statistics.median(d):>8.0f} "
          f"{' / '.join(f'{x:.1f}' for x in a):<28} {statistics.median(a):>7.1f}")
on, off = (statistics.median([r["tasks_per_s"] for r in rows[m]]) for m in ("on", "off"))
print(f"drain with metrics on: {100 * on / off:.1f} % of off")
PY
