#!/usr/bin/env bash
# scripts/bench-ab.sh W2|W3 ROUNDS BIN_A BIN_B — one copy workload of
# scripts/bench.sh for two smhfs builds, interleaved (A B, B A, A B, ...),
# copy by copy: each round starts a fresh `smhfs serve` and mount of each
# build (each serve of its own build), then makes 5 `cp -r` of fresh trees
# (W2: 1000 × 4 KiB, W3: 100 × 1 MiB) into each, A and B in turn.
# Prints each round's medians and B/A, then the median of the ratios.
#
# Why: bench-compare.sh runs one build after the other, and this VM's disk
# slows down during long runs, so the build measured last is penalised on
# the disk-bound rows (W3's own local limit doubled within one run), and
# its speed swings by 2-3x within minutes (CPU steal). Here the copies of
# the two builds alternate, seconds apart. As root; not part of
# the test suite. Trees are kept in $AB_TREES (default /var/tmp/smhfs-ab).
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: scripts/bench-ab.sh W2|W3 ROUNDS BIN_A BIN_B" >&2; exit 2; }
W=$1; ROUNDS=$2; A=$3; B=$4
case $W in
  W2) NF=1000; SZ=4096 ;;
  W3) NF=100; SZ=1048576 ;;
  *) echo "bench-ab: workload must be W2 or W3" >&2; exit 2 ;;
esac
RUNS=5
TREES=${AB_TREES:-/var/tmp/smhfs-ab}
for r in $(seq 1 $RUNS); do
  t=$TREES/$W-r$r
  [ -d "$t" ] && continue
  mkdir -p "$t.tmp"
  for i in $(seq 1 $NF); do head -c $SZ /dev/urandom >"$t.tmp/f$i.bin"; done
  mv "$t.tmp" "$t"
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# copy DIR K: one timed cp -r of tree K into DIR's mount
copy() {
  local t0 t1 r=$(( ($2 - 1) % RUNS + 1 ))
  t0=$(date +%s.%N); cp -r "$TREES/$W-r$r" "$1/mnt/$W-$2"; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

# Rounds: a fresh pair of mounts, then RUNS copies into each, alternating A
# and B copy by copy, so both see the same moment of this VM; the ratio of
# each round is B's median over A's.
ratios=""
for r in $(seq 1 "$ROUNDS"); do
  sync
  da=$(mktemp -d /var/tmp/smhfs-ab-a.XXXX); db=$(mktemp -d /var/tmp/smhfs-ab-b.XXXX)
  trap 'smh_stop "$da"; smh_stop "$db"' EXIT
  smh_start "$A" "$da"; smh_start "$B" "$db"
  cat "$TREES/$W"-r*/* >/dev/null
  ta=""; tb=""
  for k in $(seq 1 $RUNS); do
    if [ $(( (r + k) % 2 )) = 0 ]; then ta+=" $(copy "$da" "$k")"; tb+=" $(copy "$db" "$k")"
    else tb+=" $(copy "$db" "$k")"; ta+=" $(copy "$da" "$k")"; fi
  done
  smh_stop "$da"; smh_stop "$db"; trap - EXIT
  ma=$(echo "$ta" | median); mb=$(echo "$tb" | median)
  ratio=$(echo "scale=3; $mb / $ma" | bc)
  echo "round $r: A $ma s, B $mb s, B/A $ratio  (A:$ta; B:$tb)"
  ratios+=" $ratio"
done
echo "$W median B/A over $ROUNDS rounds: $(echo "$ratios" | median)"
