#!/usr/bin/env bash
# scripts/bench-compare.sh BASE_REV [BASE_REV...] — the smhfs rows of
# scripts/bench.sh for one or more baseline builds and for the working
# tree, on the same machine in one run, with the ratio new / baseline per
# workload (a change must not make any workload more than 10 % slower).
#
#   scripts/bench-compare.sh 0bc26b3                # full mode, 2 rounds
#   scripts/bench-compare.sh 0bc26b3 2b0689a        # two baselines
#   BENCH_QUICK=1 scripts/bench-compare.sh HEAD~3   # quick check
#   COMPARE_ROUNDS=4 scripts/bench-compare.sh 0bc26b3
#
# Each baseline is built from a `git worktree` of its revision under
# $BENCH_DIR (one target directory, so shared dependencies build once).
# Every run is a full scripts/bench.sh run (rclone peer included),
# without the scale workloads W7-W10 unless BENCH_SCALE=1 (they take
# about half an hour per run at full size). Not part of the test suite.
#
# Rounds (COMPARE_ROUNDS, default 2): round 1 runs the baselines, then the
# working tree; round 2 the working tree first; and so on (A B, B A, ...).
# This VM drifts over a long run (its disk slows, the host steals CPU), so
# the build measured last in a single sequence would be penalised. Each
# round's ratio is new / baseline of the two runs next to each other; the
# table shows the median over rounds of those ratios, and each build's
# median value over its runs.
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

ROUNDS=${COMPARE_ROUNDS:-2}
case $ROUNDS in '' | *[!0-9]* | 0) echo "bench-compare: COMPARE_ROUNDS must be a positive number" >&2; exit 2 ;; esac
# run_one TAG ROUND: one scripts/bench.sh run of build TAG (new = working tree)
run_one() {
  if [ "$1" = new ]; then
    log "round $2: working-tree run"
    "$REPO/scripts/bench.sh" >/dev/null
  else
    log "round $2: baseline run $1"
    BENCH_SMHFS=$BENCH_DIR/baseline-$1/smhfs "$REPO/scripts/bench.sh" >/dev/null
  fi
  cp "$BENCH_DIR/results.env" "$BENCH_DIR/results-$1-r$2.env"
  cp "$BENCH_DIR/results.md" "$BENCH_DIR/results-$1-r$2.md"
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="${bases[*]} new"; else order="new ${bases[*]}"; fi
  for tag in $order; do run_one "$tag" "$r"; done
done

value() { sed -n "s/^$1=//p" "$2"; }
median() { { grep . || true; } | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# over TAG KEY: the build's median of KEY over its runs
over() { for r in $(seq 1 "$ROUNDS"); do value "$2" "$BENCH_DIR/results-$1-r$r.env"; done | median; }
# ratio_of SHORT KEY: the median over rounds of new / SHORT
ratio_of() {
  for r in $(seq 1 "$ROUNDS"); do
    awk -v a="$(value "$2" "$BENCH_DIR/results-$1-r$r.env")" -v b="$(value "$2" "$BENCH_DIR/results-new-r$r.env")" \
      'BEGIN { if (a != "" && b != "" && a + 0 != 0) printf "%.4f\n", b / a }'
  done | median
}
{
  echo "## smhfs: working tree $(git -C "$REPO" rev-parse --short HEAD) vs baseline(s) ${bases[*]}"
  echo
  head="| workload | new"; rule="| --- | ---"
  for short in "${bases[@]}"; do head+=" | $short | new / $short"; rule+=" | --- | ---"; done
  echo "$head |"; echo "$rule |"
  while IFS='=' read -r k _; do
    row="| $k | $(over new "$k")"
    for short in "${bases[@]}"; do
      row+=$(awk -v a="$(over "$short" "$k")" -v r="$(ratio_of "$short" "$k")" 'BEGIN {
        if (r == "") { printf " | %s | n/a", a; exit }
        printf " | %s | %.2f×%s", a, r, (r <= 1.10 ? "" : " **> 1.10**") }')
    done
    echo "$row |"
  done <"$BENCH_DIR/results-new-r1.env"
  echo
  echo "$ROUNDS round(s), in the order $(for r in $(seq 1 "$ROUNDS"); do if [ $((r % 2)) = 1 ]; then printf '(%s new) ' "${bases[*]}"; else printf '(new %s) ' "${bases[*]}"; fi; done)."
  echo "Values: each build's median over its runs (each run's value is itself a median of scripts/bench.sh's runs); times in seconds, RSS in KiB; rw*/rc* are metrics on/off ratios (wall / daemon CPU), only in builds that have metrics. Ratios: the median over rounds of new / baseline within a round. Full tables: $BENCH_DIR/results-<build>-r<round>.md."
} | tee "$BENCH_DIR/compare.md"
