#!/usr/bin/env bash
# scripts/bench-compare.sh BASE_REV [BASE_REV...] — the smhfs rows of
# scripts/bench.sh for one or more baseline builds and for the working
# tree, on the same machine in one run, with the ratio new / baseline per
# workload (a change must not make any workload more than 10 % slower).
#
#   scripts/bench-compare.sh 0bc26b3                # full mode
#   scripts/bench-compare.sh 0bc26b3 2b0689a        # two baselines, one new run
#   BENCH_QUICK=1 scripts/bench-compare.sh HEAD~3   # quick check
#
# Each baseline is built from a `git worktree` of its revision under
# $BENCH_DIR (one target directory, so shared dependencies build once).
# Every run is a full scripts/bench.sh run (rclone peer included),
# baselines first, without the scale workloads W7-W10 unless
# BENCH_SCALE=1 (they take about half an hour per run at full size). Not
# part of the test suite.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: scripts/bench-compare.sh BASE_REV [BASE_REV...]" >&2; exit 2; }
BENCH_DIR=${BENCH_DIR:-/var/tmp/smhfs-bench}
BENCH_SCALE=${BENCH_SCALE:-0}
export BENCH_DIR BENCH_SCALE
log() { echo "[compare $(date +%H:%M:%S)] $*" >&2; }
mkdir -p "$BENCH_DIR"

WT=$BENCH_DIR/baseline-src
bases=()
for BASE in "$@"; do
  rev=$(git -C "$REPO" rev-parse --verify "$BASE^{commit}") || { echo "bench-compare: unknown revision $BASE" >&2; exit 1; }
  short=$(git -C "$REPO" rev-parse --short "$rev")
  bin=$BENCH_DIR/baseline-$short/smhfs
  if [ ! -x "$bin" ]; then
    git -C "$REPO" worktree remove --force "$WT" 2>/dev/null || rm -rf "$WT"
    git -C "$REPO" worktree add --detach "$WT" "$rev" >/dev/null
    log "building the baseline $short"
    (cd "$WT" && CARGO_TARGET_DIR=$BENCH_DIR/baseline-target cargo build --release --bin smhfs) >"$BENCH_DIR/baseline-build.log" 2>&1 \
      || { tail -n 30 "$BENCH_DIR/baseline-build.log" >&2; exit 1; }
    mkdir -p "$(dirname "$bin")"
    cp "$BENCH_DIR/baseline-target/release/smhfs" "$bin"
  fi
  bases+=("$short")
done
git -C "$REPO" worktree remove --force "$WT" 2>/dev/null || true

for short in "${bases[@]}"; do
  log "baseline run $short"
  BENCH_SMHFS=$BENCH_DIR/baseline-$short/smhfs "$REPO/scripts/bench.sh" >/dev/null
  cp "$BENCH_DIR/results.env" "$BENCH_DIR/results-$short.env"
  cp "$BENCH_DIR/results.md" "$BENCH_DIR/results-$short.md"
done
log "working-tree run"
"$REPO/scripts/bench.sh" >/dev/null
cp "$BENCH_DIR/results.env" "$BENCH_DIR/results-new.env"

value() { sed -n "s/^$1=//p" "$2"; }
{
  echo "## smhfs: working tree $(git -C "$REPO" rev-parse --short HEAD) vs baseline(s) ${bases[*]}"
  echo
  head="| workload | new"; rule="| --- | ---"
  for short in "${bases[@]}"; do head+=" | $short | new / $short"; rule+=" | --- | ---"; done
  echo "$head |"; echo "$rule |"
  while IFS='=' read -r k new; do
    row="| $k | $new"
    for short in "${bases[@]}"; do
      base=$(value "$k" "$BENCH_DIR/results-$short.env")
      row+=$(awk -v a="$base" -v b="$new" 'BEGIN {
        if (a == "" || b == "" || a + 0 == 0) { printf " | %s | n/a", a; exit }
        r = b / a; printf " | %s | %.2f×%s", a, r, (r <= 1.10 ? "" : " **> 1.10**") }')
    done
    echo "$row |"
  done <"$BENCH_DIR/results-new.env"
  echo
  echo "Times in seconds (medians), RSS in KiB; rw*/rc* are metrics on/off ratios (wall / daemon CPU), only in builds that have metrics. Full tables: $BENCH_DIR/results-<rev>.md and $BENCH_DIR/results.md."
} | tee "$BENCH_DIR/compare.md"
