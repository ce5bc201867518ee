#!/usr/bin/env bash
# scripts/bench-compare.sh BASE_REV — the smhfs rows of scripts/bench.sh for
# a baseline build and for the working tree, on the same machine in one run,
# with the ratio new / baseline per workload (a change must not make any
# workload more than 10 % slower).
#
#   scripts/bench-compare.sh 0bc26b3                # full mode
#   BENCH_QUICK=1 scripts/bench-compare.sh HEAD~3   # quick check
#
# The baseline is built from a `git worktree` of BASE_REV under $BENCH_DIR.
# Both runs share the inputs; each is a full scripts/bench.sh run (rclone
# peer included), baseline first, without the scale workloads W7-W10 unless
# BENCH_SCALE=1 (they take about half an hour per run at full size). Not
# part of the test suite.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${1:?usage: scripts/bench-compare.sh BASE_REV}
BENCH_DIR=${BENCH_DIR:-/var/tmp/smhfs-bench}
BENCH_SCALE=${BENCH_SCALE:-0}
export BENCH_DIR BENCH_SCALE
log() { echo "[compare $(date +%H:%M:%S)] $*" >&2; }

WT=$BENCH_DIR/baseline-src
rev=$(git -C "$REPO" rev-parse --verify "$BASE^{commit}") || { echo "bench-compare: unknown revision $BASE" >&2; exit 1; }
if [ "$(git -C "$WT" rev-parse HEAD 2>/dev/null || true)" != "$rev" ]; then
  git -C "$REPO" worktree remove --force "$WT" 2>/dev/null || rm -rf "$WT"
  git -C "$REPO" worktree add --detach "$WT" "$rev" >/dev/null
fi
log "building the baseline $(git -C "$REPO" rev-parse --short "$rev")"
(cd "$WT" && CARGO_TARGET_DIR=$BENCH_DIR/baseline-target cargo build --release --bin smhfs) >"$BENCH_DIR/baseline-build.log" 2>&1 \
  || { tail -n 30 "$BENCH_DIR/baseline-build.log" >&2; exit 1; }
BASE_BIN=$BENCH_DIR/baseline-target/release/smhfs

log "baseline run"
BENCH_SMHFS=$BASE_BIN "$REPO/scripts/bench.sh" >/dev/null
cp "$BENCH_DIR/results.env" "$BENCH_DIR/results-baseline.env"
cp "$BENCH_DIR/results.md" "$BENCH_DIR/results-baseline.md"
log "working-tree run"
"$REPO/scripts/bench.sh" >/dev/null
cp "$BENCH_DIR/results.env" "$BENCH_DIR/results-new.env"

{
  echo "## smhfs: working tree $(git -C "$REPO" rev-parse --short HEAD) vs baseline $(git -C "$REPO" rev-parse --short "$rev")"
  echo
  echo "| workload | baseline | new | new / baseline | ≤ 1.10 |"
  echo "| --- | --- | --- | --- | --- |"
  while IFS='=' read -r k base; do
    new=$(sed -n "s/^$k=//p" "$BENCH_DIR/results-new.env")
    awk -v k="$k" -v a="$base" -v b="$new" 'BEGIN {
      if (a == "" || b == "" || a + 0 == 0) { printf "| %s | %s | %s | n/a | n/a |\n", k, a, b; exit }
      r = b / a; printf "| %s | %s | %s | %.2f× | %s |\n", k, a, b, r, (r <= 1.10 ? "yes" : "**no**") }'
  done <"$BENCH_DIR/results-baseline.env"
  echo
  echo "Times in seconds (medians), RSS in KiB. Full tables: $BENCH_DIR/results-baseline.md and $BENCH_DIR/results.md."
} | tee "$BENCH_DIR/compare.md"
