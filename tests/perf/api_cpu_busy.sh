#!/usr/bin/env bash
# CPU busy (% of all cores, from /proc/stat) while `campus bench` loads each API endpoint.
# Runs a short bench (phase 1 and 2 kept small) and samples 7 s in the middle of each
# endpoint's 10 s window. Usage: bash tests/perf/api_cpu_busy.sh [path/to/campus]
set -euo pipefail
campus=${1:-./target/release/campus}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

busy_over() { # seconds → percent busy over that interval
  read -r _ a b c idle iow rest < /proc/stat
  local t0=$((a + b + c + idle + iow)) i0=$((idle + iow))
  sleep "$1"
  read -r _ a b c idle iow rest < /proc/stat
  local t1=$((a + b + c + idle + iow)) i1=$((idle + iow))
  echo $((100 - 100 * (i1 - i0) / (t1 - t0)))
}

"$campus" bench --json --tasks 1000 --seconds 1 --samples 10 2>"$log" >"$log.json" &
bench=$!
for endpoint in reset-password-token notes; do
  until grep -q "\[4/4\].*$endpoint" "$log"; do
    kill -0 "$bench" 2>/dev/null || { echo "bench ended early:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  sleep 2
  echo "$endpoint: $(busy_over 7) % busy"
done
wait "$bench"
cat "$log.json"; echo
rm -f "$log.json"
