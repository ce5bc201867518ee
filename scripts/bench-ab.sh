#!/usr/bin/env bash
# scripts/bench-ab.sh W2|W3|W5 ROUNDS BIN_A BIN_B — one workload of
# scripts/bench.sh for two smhfs builds, interleaved (A B, B A, A B, ...),
# run by run: each round starts a fresh `smhfs serve` and mount of each
# build (each serve of its own build), then makes 5 runs into each, A and
# B in turn: W2/W3 a `cp -r` of a fresh tree (W2: 1000 × 4 KiB, W3: 100 ×
# 1 MiB); W5 a cold `ls -l` of 10,000 entries (put there through the API
# at the round's start; each run remounts and drops the page cache first).
# Prints each round's medians and B/A, then the median of the ratios.
#
# Why: bench-compare.sh runs one build after the other, and this VM's disk
# slows down during long runs, so the build measured last is penalised on
# the disk-bound rows (W3's own local limit doubled within one run), and
# its speed swings by 2-3x within minutes (CPU steal). Here the runs of
# the two builds alternate, seconds apart. As root; not part of
# the test suite. Trees are kept in $AB_TREES (default /var/tmp/smhfs-ab).
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: scripts/bench-ab.sh W2|W3|W5 ROUNDS BIN_A BIN_B" >&2; exit 2; }
W=$1; ROUNDS=$2; A=$3; B=$4
case $W in
  W2) NF=1000; SZ=4096 ;;
  W3) NF=100; SZ=1048576 ;;
  W5) NF=0; ENTRIES=10000 ;;
  *) echo "bench-ab: workload must be W2, W3 or W5" >&2; exit 2 ;;
esac
RUNS=5
TREES=${AB_TREES:-/var/tmp/smhfs-ab}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$W" = W5 ]; then
  (cd "$REPO" && cargo build --release --example populate -q) || exit 1
  POPULATE=${CARGO_TARGET_DIR:-$REPO/target}/release/examples/populate
fi
for r in $(seq 1 $RUNS); do
  [ "$NF" -gt 0 ] || break
  t=$TREES/$W-r$r
  [ -d "$t" ] && continue
  mkdir -p "$t.tmp"
  for i in $(seq 1 $NF); do head -c $SZ /dev/urandom >"$t.tmp/f$i.bin"; done
  mv "$t.tmp" "$t"
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# one_run BIN DIR K: one timed run of the workload in DIR's mount (of BIN)
one_run() {
  local t0 t1 r=$(( ($3 - 1) % RUNS + 1 ))
  if [ "$W" = W5 ]; then
    smh_unmount "$2"; sync; echo 3 >/proc/sys/vm/drop_caches; smh_mount "$1" "$2"
    t0=$(date +%s.%N); n=$(ls -l "$2/mnt/w5" | wc -l); t1=$(date +%s.%N)
    [ "$n" -eq $((ENTRIES + 1)) ] || echo "bench-ab: ls -l printed $n lines, expected $((ENTRIES + 1))" >&2
  else
    t0=$(date +%s.%N); cp -r "$TREES/$W-r$r" "$2/mnt/$W-$3"; t1=$(date +%s.%N)
  fi
  echo "$t1 - $t0" | bc
}

# populate DIR: the W5 entries in DIR's server, through the API
populate() {
  "$POPULATE" --endpoint "$(cat "$1/url")" --library "$(cat "$1/library")" --secret "$(cat "$1/secret")" \
    --dir w5 --count "$ENTRIES" --concurrency 32 >"$1/populate.log" 2>&1 \
    || { tail -n 20 "$1/populate.log" >&2; exit 1; }
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
  if [ "$W" = W5 ]; then populate "$da"; populate "$db"; else cat "$TREES/$W"-r*/* >/dev/null; fi
  ta=""; tb=""
  for k in $(seq 1 $RUNS); do
    if [ $(( (r + k) % 2 )) = 0 ]; then ta+=" $(one_run "$A" "$da" "$k")"; tb+=" $(one_run "$B" "$db" "$k")"
    else tb+=" $(one_run "$B" "$db" "$k")"; ta+=" $(one_run "$A" "$da" "$k")"; fi
  done
  smh_stop "$da"; smh_stop "$db"; trap - EXIT
  ma=$(echo "$ta" | median); mb=$(echo "$tb" | median)
  ratio=$(echo "scale=3; $mb / $ma" | bc)
  echo "round $r: A $ma s, B $mb s, B/A $ratio  (A:$ta; B:$tb)"
  ratios+=" $ratio"
done
echo "$W median B/A over $ROUNDS rounds: $(echo "$ratios" | median)"
