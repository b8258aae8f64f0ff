#!/usr/bin/env python3
"""Where the API phase's tail sits in time: reads the CSV of `campus bench --api-trace FILE`
and prints, per endpoint, the p50 / p99 / max latency (from the scheduled send time), the p50
and p99 of each second of the run, and the slowest requests with their scheduled time in UTC
(to match against PostgreSQL's log, e.g. with `log_min_duration_statement` and
`log_lock_waits` on).

    python3 tests/perf/api_tail.py trace.csv [SLOWEST]
"""
import csv
import sys
from collections import defaultdict
from datetime import datetime, timezone


def pct(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    slowest = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    runs = defaultdict(list)
    with open(sys.argv[1], newline="") as f:
        for row in csv.DictReader(f):
            runs[row["endpoint"]].append(
                (float(row["scheduled_unix_s"]), float(row["latency_ms"]), row["ok"] == "true")
            )
    for endpoint, rows in runs.items():
        rows.sort()
        start = rows[0][0]
        latencies = sorted(r[1] for r in rows)
        failed = sum(1 for r in rows if not r[2])
        print(
            f"{endpoint}: {len(rows)} requests, {failed} failed; "
            f"p50 {pct(latencies, 0.5):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms, "
            f"max {latencies[-1]:.1f} ms"
        )
        seconds = defaultdict(list)
        for t, latency, _ in rows:
            seconds[int(t - start)].append(latency)
        per_second = [(s, sorted(v)) for s, v in sorted(seconds.items())]
        print(
            "  per second (p50/p99 ms): "
            + "  ".join(f"{s}: {pct(v, 0.5):.0f}/{pct(v, 0.99):.0f}" for s, v in per_second)
        )
        print(f"  slowest {slowest}:")
        for t, latency, ok in sorted(rows, key=lambda r: -r[1])[:slowest]:
            at = datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
            print(f"    {at} UTC (+{t - start:.3f} s)  {latency:.1f} ms{'' if ok else '  failed'}")


if __name__ == "__main__":
    main()
