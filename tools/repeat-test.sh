#!/usr/bin/env bash
# Runs `make test` N times in a row (default 10) and prints one line per run:
# pass/FAIL, seconds, load average. Issue 18's stability check: run it with
# another build beside it. Logs of each run: target/repeat-test/run-K.log.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
mkdir -p target/repeat-test
failed=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if make test > "target/repeat-test/run-$i.log" 2>&1; then r=pass; else r=FAIL; failed=$((failed + 1)); fi
  echo "run $i: $r in $(( $(date +%s) - start )) s, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "$((runs - failed)) passed, $failed failed"
[[ $failed -eq 0 ]]
