#!/usr/bin/env bash
# scripts/bench-instr.sh N BIN [BIN ...] — instructions per file of W2's
# shape (`cp -r` of N × 4 KiB files into the mount) for each build, counted
# by valgrind's callgrind on one side at a time: `smhfs serve`, then the
# mount, each of the build itself. Prints one row per build.
#
# Why: wall-clock rows on this VM swing 2-3x within minutes (CPU steal),
# and a small file's chain (create, write, close: begin, PUT, confirm) is
# latency-bound, so a 10 % change hides in the noise. Instruction counts
# don't move between runs (about 0.5 %), so they show which side and which
# function a change made dearer (callgrind_annotate the kept .cg files).
# Under valgrind SHA-256 runs its portable code, so hashing weighs about 3x
# what it does on the CPU: compare builds, not absolute figures.
# INSTR_SERVE_FLAGS adds flags to every `serve` (e.g. --no-delta, to see
# what the change feed costs). As root; not part of the test suite. Output
# files go to $INSTR_OUT (default /var/tmp/smhfs-instr).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/bench-instr.sh N BIN [BIN ...]" >&2; exit 2; }
N=$1; shift
case $N in '' | *[!0-9]*) echo "bench-instr: N must be a number of files" >&2; exit 2 ;; esac
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
OUT=${INSTR_OUT:-/var/tmp/smhfs-instr}
mkdir -p "$OUT"
SRC=$(mktemp -d /var/tmp/smhfs-instr-src.XXXX)
for i in $(seq 1 "$N"); do head -c 4096 /dev/urandom >"$SRC/f$i.bin"; done

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# count BIN SIDE TAG: Ir of SIDE (server|mount) for one copy of SRC, after
# a warm-up copy (token, connections, first listing).
count() {
  local bin=$1 side=$2 tag=$3 d vp
  d=$(mktemp -d /var/tmp/smhfs-instr-run.XXXX)
  local cg="$OUT/$tag.$side.cg"
  rm -f "$cg" "$cg".*
  local -a vg=(valgrind --tool=callgrind --callgrind-out-file="$cg" --trace-children=no)
  SERVE_PREFIX=(); MOUNT_PREFIX=()
  if [ "$side" = server ]; then SERVE_PREFIX=("${vg[@]}"); else MOUNT_PREFIX=("${vg[@]}"); fi
  SERVE_EXTRA=${INSTR_SERVE_FLAGS:-} WAIT=60 smh_start "$bin" "$d"
  cp -r "$SRC" "$d/mnt/warm"
  vp=$(cat "$d/$side.pid")
  callgrind_control -z "$vp" >/dev/null 2>&1
  sleep 1
  cp -r "$SRC" "$d/mnt/counted"
  sleep 1
  # The dump holds what ran since the zeroing: the counted copy, plus the
  # idle mount's feed polls (one every 2 s) and the server's answers.
  callgrind_control -d "$vp" >/dev/null 2>&1
  wait_until 30 ls "$cg".1
  smh_stop "$d"
  callgrind_annotate "$cg".1 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,
}

trap 'rm -rf "$SRC"' EXIT
printf '%-40s %14s %14s %14s\n' build "server Ir/file" "mount Ir/file" "total Ir/file"
i=0
for bin in "$@"; do
  i=$((i + 1))
  srv=$(count "$bin" server "b$i")
  mnt=$(count "$bin" mount "b$i")
  printf '%-40s %14d %14d %14d\n' "$bin" $((srv / N)) $((mnt / N)) $(((srv + mnt) / N))
done
echo "callgrind files: $OUT/b<K>.<side>.cg.1 (K: the build's place in the list)"
