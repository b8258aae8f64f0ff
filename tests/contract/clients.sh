#!/usr/bin/env bash
# Generates a Python client (openapi-python-client) and a TypeScript one (openapi-typescript)
# from the committed spec and fails on any warning or on an operation either one left out.
#   bash tests/contract/clients.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
spec=$PWD/openapi/openapi.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
operations=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(sum(len(i) for i in s["paths"].values()))' "$spec")
status=0

echo "== openapi-python-client ($operations operations)"
command -v openapi-python-client >/dev/null || python3 -m pip install --quiet openapi-python-client
(cd "$work" && openapi-python-client generate --path "$spec" --meta none --output-path py) >"$work/py.log" 2>&1 || status=1
cat "$work/py.log"
if grep -qiE "warning|error|will not be generated|unable to" "$work/py.log"; then
  echo "openapi-python-client complained (above)" >&2
  status=1
fi
generated=$(grep -rhoE '^def sync_detailed\(' "$work/py/api" 2>/dev/null | wc -l)
echo "python: $generated of $operations operations generated"
[ "$generated" -eq "$operations" ] || status=1

echo "== openapi-typescript"
mkdir -p "$work/ts" && cd "$work/ts"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund openapi-typescript@7 typescript@5 >/dev/null 2>&1
npx openapi-typescript "$spec" -o campus.d.ts >ts.log 2>&1 || status=1
cat ts.log
if grep -qiE "warn|error|⚠" ts.log; then
  echo "openapi-typescript complained (above)" >&2
  status=1
fi
typed=$(node -e '
  const src = require("fs").readFileSync("campus.d.ts", "utf8");
  const ops = src.slice(src.indexOf("export interface operations"));
  console.log((ops.match(/^    [A-Za-z0-9_]+: \{$/gm) || []).length);')
echo "typescript: $typed of $operations operations typed"
[ "$typed" -eq "$operations" ] || status=1
npx tsc --noEmit --strict campus.d.ts || status=1
[ $status -eq 0 ] && echo "clients: both generated cleanly"
exit $status
