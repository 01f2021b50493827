#!/bin/bash
# issue 14: `npm test` on a fresh clone of COMMIT, N times in a row, each beside a CPU-heavy
# process (default: a busy loop; HEAVY="..." for another command, e.g. the simulator soak).
# Stops at the first failure; one line per run in OUT/summary.txt, each run's output in OUT/.
#
#   bash bench/loaded-test-runs.sh COMMIT [N] [OUT]
#   HEAVY='taskset -c 1 node bench/sim-soak.js --jobs 1 --seed 200000000 --runs 1000000 --driver core' bash bench/loaded-test-runs.sh HEAD 10
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
C=$(git -C "$REPO" rev-parse "${1:?commit}"); N=${2:-10}; OUT=${3:-/tmp/flotilla-loaded-runs}
HEAVY=${HEAVY:-"node -e 'for(;;){}'"}
mkdir -p "$OUT"
for i in $(seq 1 "$N"); do
  cd / && rm -rf "$OUT/clone" && git clone -q "$REPO" "$OUT/clone" && cd "$OUT/clone" && git checkout -q "$C" || exit 9
  npm install --no-audit --no-fund > "$OUT/install$i.log" 2>&1
  (cd "$REPO" && eval "exec $HEAVY") > /dev/null 2>&1 & HOG=$!
  ( while sleep 30; do cut -d' ' -f1 /proc/loadavg; done ) > "$OUT/load$i.txt" & SAMP=$!
  start=$(date +%s)
  npm test > "$OUT/run$i.log" 2>&1; rc=$?
  end=$(date +%s)
  kill $HOG $SAMP 2> /dev/null
  echo "run $i commit $C rc $rc secs $((end - start)) start $(date -u -d @$start +%H:%M:%S) load max $(sort -n "$OUT/load$i.txt" | tail -1)" >> "$OUT/summary.txt"
  [ $rc -ne 0 ] && exit 1
done
