#!/usr/bin/env bash
# scripts/bench-scale.sh — the scale workloads W7–W10 of the benchmark (issue 15).
#
#   SMHFS=target/release/smhfs POPULATE=target/release/examples/populate \
#     scripts/bench-scale.sh OUTDIR        # as root; called by scripts/bench.sh
#
# Starts its own `smhfs serve` (loopback, --test-endpoints) and, as peers,
# `rclone serve webdav` and `s3s-fs` (an S3 server over a directory), both
# serving one backing directory that holds the same trees; each is mounted
# with `rclone mount --vfs-cache-mode writes --vfs-write-back 0s`.
#   W7  `find MNT | wc -l` over W7_DIRS directories × W7_FILES files created
#       on the server through the API (examples/populate.rs --dirs), after a
#       cold mount of that tree: time, dir_list requests (/__stats), the
#       daemon's RSS (idle, VmHWM, after) and known inodes (`smhfs status
#       --json`), then `echo 2 > drop_caches` and the known inodes again.
#   W8  cold `ls -l` of one W8_ENTRIES-entry directory: time, dir_list
#       requests, VmHWM above the idle daemon.
#   W9  `fio --rw=randread --bs=4k --direct=1` on a big file: IOPS and p99
#       latency; limit: the same number of random 4 KiB range GETs of the
#       object URL from one keep-alive curl. Then 4 parallel sequential
#       readers (`cat`) of 4 different big files, cold: aggregate MiB/s;
#       limit: 4 parallel `curl -L` GETs of the download URLs.
#   W10 `cp` of a fresh file 4× larger than the mount's cache_size: exit
#       status and error, the cache directory's peak size (allocated bytes, `du -s -B1`, every
#       0.2 s) and whether the server then holds the exact bytes.
# Prints KEY=VALUE lines on stdout (times in seconds, memory in KiB); logs
# go to OUTDIR. Sizes: full by default; SCALE_SIZE=small or BENCH_QUICK=1
# for a smoke run (20 × 1000 tree, 20,000 entries, 64 MiB files, 16 MiB
# cache). SCALE_ONLY="w7 w9" picks workloads, SCALE_PEERS=0 skips the peers,
# SCALE_INPUTS=DIR keeps the random input files (default OUTDIR/inputs);
# SCALE_REUSE=1 keeps OUTDIR's server data and secret from an earlier run and
# skips populating what that run populated (W7's setup is ~20 min).
# Every wait is bounded; everything it starts is stopped on exit.
set -euo pipefail
shopt -s inherit_errexit

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMHFS=${SMHFS:-$REPO/target/release/smhfs}
POPULATE=${POPULATE:-$REPO/target/release/examples/populate}
OUT=${1:?usage: bench-scale.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ "${SCALE_SIZE:-}" = small ] || { [ -z "${SCALE_SIZE:-}" ] && [ "${BENCH_QUICK:-0}" = 1 ]; }; then
  SIZE=small; W7_DIRS=${W7_DIRS:-20}; W7_FILES=${W7_FILES:-1000}; W8_ENTRIES=${W8_ENTRIES:-20000}
  # W10's 16 MiB cache streams only with parts of at most a quarter of it
  # (the default 8 MiB part does not fit beside the threshold: such a
  # mount gives ENOSPC for a file over the bound, src/fs/stream.rs).
  BIG_MIB=64; W10_CACHE_MIB=16; W10_OPTS=,part_size=4M; FIO_RUNTIME=5; CURL_READS=500
else
  # 1,000 directories of 999 files: 1,000,000 entries, so `find` prints 1,000,001 lines.
  SIZE=full; W7_DIRS=${W7_DIRS:-1000}; W7_FILES=${W7_FILES:-999}; W8_ENTRIES=${W8_ENTRIES:-200000}
  BIG_MIB=1024; W10_CACHE_MIB=256; FIO_RUNTIME=20; CURL_READS=2000
fi
ONLY=${SCALE_ONLY:-w7 w8 w9 w10}
PEERS=${SCALE_PEERS:-1}
INPUTS=${SCALE_INPUTS:-$OUT/inputs}
BIG_BYTES=$((BIG_MIB * 1024 * 1024))
W7_ENTRIES=$((W7_DIRS + W7_DIRS * W7_FILES))
OP_TIMEOUT=${SCALE_OP_TIMEOUT:-1200}   # seconds for any single timed command
# A peer's listing gets less: s3s-fs rescans a whole directory for every page
# of 1,000 keys, so its 200,000-entry listing is quadratic.
PEER_TIMEOUT=${SCALE_PEER_TIMEOUT:-300}
MOUNT_TIMEOUT=30
LOGS=$OUT/logs
mkdir -p "$LOGS" "$INPUTS"

log() { echo "[bench-scale $(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
T() { timeout -k 5 "$OP_TIMEOUT" "$@"; }
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
emit() { echo "$1=$2"; }   # one result line
count_lines() { # count_lines SECONDS MNT CMD...: lines CMD prints, or failed / timeout-Ns
  # A listing stuck inside a FUSE daemon cannot be killed (not even with
  # SIGKILL): past the deadline the mount's daemon is stopped, which aborts
  # the connection and lets CMD return.
  local secs=$1 m=$2 res=$OUT/count-lines.$BASHPID pid deadline; shift 2
  rm -f "$res"
  ( set +o pipefail; "$@" | wc -l >"$res.n"; [ "${PIPESTATUS[0]}" -eq 0 ] && mv "$res.n" "$res" ) 2>>"$LOGS/count-lines.log" &
  pid=$!
  deadline=$(( $(date +%s) + secs ))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      umount -l "$m" 2>/dev/null || true
      stop_pid "${MOUNT_PID[$m]:-}"
      wait "$pid" 2>/dev/null || true
      echo "timeout-${secs}s"; return 0
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true
  if [ -f "$res" ]; then cat "$res"; else echo failed; fi
  rm -f "$res" "$res.n"
}

# ---------------------------------------------------------------- cleanup --
declare -A MOUNT_PID=()   # mountpoint -> daemon pid
SERVER_PID=""; DAV_PID=""; S3_PID=""; SAMPLER_PID=""
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }
stop_pid() { # TERM, up to 10 s, then KILL
  local p=$1 i
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
  for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
unmount() { # unmount MNT (bounded, lazily if it stays busy) and stop its daemon
  local m=$1 i
  if is_mounted "$m"; then
    for i in $(seq 1 50); do
      fusermount3 -u "$m" 2>/dev/null && break
      is_mounted "$m" || break
      sleep 0.2
    done
    is_mounted "$m" && { umount -l "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true; }
  fi
  stop_pid "${MOUNT_PID[$m]:-}"
  unset "MOUNT_PID[$m]"
}
cleanup() {
  local rc=$? m
  set +e
  trap - EXIT INT TERM
  stop_pid "$SAMPLER_PID"
  for m in "${!MOUNT_PID[@]}"; do unmount "$m"; done
  stop_pid "$DAV_PID"; stop_pid "$S3_PID"; stop_pid "$SERVER_PID"
  if [ "${BENCH_KEEP:-0}" != 1 ] && [ "${SCALE_REUSE:-0}" != 1 ]; then rm -rf "$OUT/server-data" "$OUT/peer-root" "$OUT/cache" "$OUT/w10-src.bin"; fi
  [ "$rc" -eq 0 ] || log "failed (exit $rc); logs in $LOGS"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

wait_for() { # wait_for SECONDS WHAT PID CMD...: poll CMD every 0.1 s
  local deadline=$(( $(date +%s) + $1 )) what=$2 pid=$3; shift 3
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then die "$what: process $pid exited (logs in $LOGS)"; fi
    [ "$(date +%s)" -lt "$deadline" ] || die "$what: not ready within $1 s (logs in $LOGS)"
    sleep 0.1
  done
}
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no free loopback port found"
}
drop_caches() { sync; echo "${1:-3}" >/proc/sys/vm/drop_caches; }
vm_kib() { # vm_kib PID VmHWM|VmRSS; empty once the process is gone (a peer stopped at its deadline)
  awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true
}
minus() { [ -n "$1" ] && [ -n "$2" ] && echo $(($1 - $2)); true; }

[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mounts, drop_caches)"
{ [ -x "$SMHFS" ] && [ -x "$POPULATE" ]; } || die "need SMHFS ($SMHFS) and POPULATE ($POPULATE)"
command -v fio >/dev/null || die "fio is missing (apt-get install fio)"
if [ "$PEERS" = 1 ]; then
  command -v rclone >/dev/null || die "rclone is missing"
  S3S=$(command -v s3s-fs || true)
  [ -n "$S3S" ] || die "s3s-fs is missing (cargo install s3s-fs --version 0.14.1 --features binary); or SCALE_PEERS=0"
fi
log "size $SIZE: W7 $W7_DIRS x $W7_FILES, W8 $W8_ENTRIES entries, files ${BIG_MIB} MiB, W10 cache ${W10_CACHE_MIB} MiB; workloads: $ONLY"
emit scale_size "$SIZE"

# ---------------------------------------------------------------- server ---
REUSE=${SCALE_REUSE:-0}
if [ "$REUSE" != 1 ] || [ ! -s "$OUT/secret" ]; then
  ( umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/secret" )
  rm -rf "$OUT/server-data"
fi
SECRET=$(cat "$OUT/secret")
"$SMHFS" serve --listen 127.0.0.1:0 --data "$OUT/server-data" --secret-file "$OUT/secret" \
  --test-endpoints --part-etag crc >"$LOGS/server.log" 2>&1 &
SERVER_PID=$!
wait_for 20 "smhfs serve" "$SERVER_PID" grep -q 'listening on http' "$LOGS/server.log"
URL=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$LOGS/server.log" | head -n 1)
URL=${URL%/}
LIB=$(sed -n 's/^\(.*[[:space:]]\)\{0,1\}library: *\([^[:space:]]*\).*/\2/p' "$LOGS/server.log" | head -n 1)
LIB=${LIB:-smhlocal}
wait_for 20 "smhfs serve /__stats" "$SERVER_PID" curl -fsS "$URL/__stats"
token() {
  curl -fsS -G "$URL/api/v1/token" --data-urlencode "library_id=$LIB" \
    --data-urlencode "library_secret=$SECRET" --data-urlencode "grant=admin" | jq -r .accessToken
}
stats_reset() { curl -fsS -X POST "$URL/__stats/reset" >/dev/null; }
dir_lists() { curl -fsS "$URL/__stats" | jq -r '.requests.dir_list // 0'; }
CREDS=$OUT/credentials
( umask 077; printf 'library_secret=%s\n' "$SECRET" >"$CREDS" )

# mount_smh MNT SUBDIR [OPTS]: cold mount of LIB:-/SUBDIR with a fresh cache dir
mount_smh() {
  local m=$1 sub=$2 extra=${3:-}
  unmount "$m"; mkdir -p "$m"
  rm -rf "$OUT/cache/smh"; mkdir -p "$OUT/cache/smh"
  "$SMHFS" mount "$LIB:-${sub:+/$sub}" "$m" \
    -o "endpoint=$URL,credentials=$CREDS,cache_dir=$OUT/cache/smh${extra:+,$extra}" -f >>"$LOGS/mount-smhfs.log" 2>&1 &
  MOUNT_PID[$m]=$!
  wait_for "$MOUNT_TIMEOUT" "smhfs mount $sub" "${MOUNT_PID[$m]}" is_mounted "$m"
}
known_inodes() { "$SMHFS" status --json "$1" | jq -r '.memory.known_inodes'; }

# mount_peer NAME MNT SUBDIR [RCLONE-ARGS...]: cold rclone mount of SUBDIR
mount_peer() {
  local name=$1 m=$2 sub=$3; shift 3
  unmount "$m"; mkdir -p "$m"
  rm -rf "$OUT/cache/$name"; mkdir -p "$OUT/cache/$name"
  local -a remote
  if [ "$name" = dav ]; then
    remote=(":webdav:$sub" --webdav-url "http://127.0.0.1:$DAV_PORT")
  else
    remote=(":s3:$sub" --s3-provider Other --s3-endpoint "http://127.0.0.1:$S3_PORT"
      --s3-access-key-id "$S3_KEY" --s3-secret-access-key "$S3_SECRET" --s3-force-path-style=true)
  fi
  # AWS_CA_BUNDLE (if set for something else) would make rclone's S3 client fail.
  env -u AWS_CA_BUNDLE rclone mount "${remote[@]}" "$m" --vfs-cache-mode writes --vfs-write-back 0s \
    --cache-dir "$OUT/cache/$name" "$@" >>"$LOGS/mount-$name.log" 2>&1 &
  MOUNT_PID[$m]=$!
  wait_for "$MOUNT_TIMEOUT" "rclone mount $name:$sub" "${MOUNT_PID[$m]}" is_mounted "$m"
}
# peer_files DIR DIRS FILES: DIRS sub-directories of FILES 16-byte files
# (DIRS=0: FILES files in DIR itself), named like populate.rs names them.
peer_files() {
  perl -e '
    my ($root, $dirs, $files) = @ARGV;
    my $fw = length($files - 1 > 0 ? $files - 1 : 0); $fw = 5 if $fw < 5;
    my $dw = length($dirs - 1 > 0 ? $dirs - 1 : 0); $dw = 4 if $dw < 4;
    mkdir $root;
    my @ds = $dirs ? map { sprintf("%s/d%0${dw}d", $root, $_) } 0 .. $dirs - 1 : ($root);
    for my $d (@ds) {
      mkdir $d;
      for my $i (0 .. $files - 1) {
        open(my $f, ">", sprintf("%s/e%0${fw}d.bin", $d, $i)) or die "$d: $!";
        print $f "0123456789abcdef"; close $f;
      }
    }' "$1" "$2" "$3"
}
MNT=$OUT/mnt
populate() { # populate DIR COUNT [--dirs N]
  local d=$1 n=$2; shift 2
  local done_mark="$OUT/server-data/.bench-populated-$d-$n${1:+-$2}"
  if [ "$REUSE" = 1 ] && [ -e "$done_mark" ]; then log "populate $d: kept from an earlier run"; return; fi
  "$POPULATE" --endpoint "$URL" --library "$LIB" --secret "$SECRET" --dir "$d" --count "$n" \
    --kind file --concurrency 64 "$@" >>"$LOGS/populate.log" 2>&1 \
    || { tail -n 20 "$LOGS/populate.log" >&2; die "populate $d failed"; }
  touch "$done_mark"
}

# ---------------------------------------------------------------- inputs ---
if want w9 || want w10; then
  for i in 0 1 2 3; do
    f=$INPUTS/scale-${BIG_MIB}MiB-$i.bin
    if [ ! -f "$f.done" ]; then log "creating $f"; head -c "$BIG_BYTES" /dev/urandom >"$f"; touch "$f.done"; fi
  done
fi

# ---------------------------------------------------------------- peers ----
# One backing directory for both peers, filled before they start (rclone
# serve caches the listings it has made): rclone serve webdav serves it,
# s3s-fs serves each top-level directory of it as a bucket (bucket names
# need 3 characters or more, hence bench-wN).
PEER_ROOT=$OUT/peer-root
PEER_NAMES=()
if [ "$PEERS" = 1 ]; then
  rm -rf "$PEER_ROOT"; mkdir -p "$PEER_ROOT"
  if want w7; then
    log "W7: the tree in the peers' backing directory"
    t0=$(now); peer_files "$PEER_ROOT/bench-w7" "$W7_DIRS" "$W7_FILES"; t1=$(now)
    log "W7: peer tree created in $(elapsed "$t0" "$t1") s"
  fi
  if want w8; then peer_files "$PEER_ROOT/bench-w8" 0 "$W8_ENTRIES"; fi
  if want w9; then
    mkdir -p "$PEER_ROOT/bench-w9"
    for i in 0 1 2 3; do cp "$INPUTS/scale-${BIG_MIB}MiB-$i.bin" "$PEER_ROOT/bench-w9/f$i.bin"; done
  fi
  if want w10; then mkdir -p "$PEER_ROOT/bench-w10"; fi
  DAV_PORT=$(free_port)
  rclone serve webdav "$PEER_ROOT" --addr "127.0.0.1:$DAV_PORT" >"$LOGS/dav-serve.log" 2>&1 &
  DAV_PID=$!
  wait_for 20 "rclone serve webdav" "$DAV_PID" curl -fsS -o /dev/null "http://127.0.0.1:$DAV_PORT/"
  S3_PORT=$(free_port)
  S3_KEY=bench; S3_SECRET=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  "$S3S" --host 127.0.0.1 --port "$S3_PORT" --access-key "$S3_KEY" --secret-key "$S3_SECRET" "$PEER_ROOT" \
    >"$LOGS/s3s-fs.log" 2>&1 &
  S3_PID=$!
  wait_for 20 "s3s-fs" "$S3_PID" bash -c "exec 3<>/dev/tcp/127.0.0.1/$S3_PORT"
  PEER_NAMES=(dav s3)
fi

# ---------------------------------------------------------------- W7 -------
if want w7; then
  log "W7: populating $W7_DIRS x $W7_FILES files through the API"
  t0=$(now); populate w7 "$W7_FILES" --dirs "$W7_DIRS"; t1=$(now)
  emit w7_setup_s "$(elapsed "$t0" "$t1")"
  emit w7_expected "$((W7_ENTRIES + 1))"
  log "W7: setup $(elapsed "$t0" "$t1") s; find on a cold mount"
  mount_smh "$MNT/smh" w7
  pid=${MOUNT_PID[$MNT/smh]}
  idle=$(vm_kib "$pid" VmRSS)
  drop_caches; stats_reset
  t0=$(now); lines=$(count_lines "$OP_TIMEOUT" "$MNT/smh" find "$MNT/smh"); t1=$(now)
  emit w7_smh_lines "$lines"; emit w7_smh_s "$(elapsed "$t0" "$t1")"; emit w7_smh_req "$(dir_lists)"
  hwm=$(vm_kib "$pid" VmHWM); after=$(vm_kib "$pid" VmRSS); known=$(known_inodes "$MNT/smh")
  emit w7_smh_rss_idle_kib "$idle"; emit w7_smh_hwm_kib "$hwm"; emit w7_smh_rss_after_kib "$after"
  emit w7_smh_known_after_find "$known"
  emit w7_smh_peak_bytes_per_entry "$(awk -v h="$hwm" -v i="$idle" -v n="$W7_ENTRIES" 'BEGIN { printf "%.1f", (h - i) * 1024 / n }')"
  emit w7_smh_bytes_per_known "$(awk -v a="$after" -v i="$idle" -v n="$known" 'BEGIN { if (n > 0) printf "%.1f", (a - i) * 1024 / n; else print "" }')"
  # The kernel forgets its dentries and inodes; the daemon hears it as FORGETs.
  drop_caches 2
  prev=-1; k=$known
  for _ in $(seq 1 40); do   # up to 20 s, until two readings agree
    sleep 0.5; k=$(known_inodes "$MNT/smh")
    [ "$k" = "$prev" ] && break
    prev=$k
  done
  emit w7_smh_known_after_drop "$k"; emit w7_smh_rss_after_drop_kib "$(vm_kib "$pid" VmRSS)"
  log "W7 smhfs: $lines lines in $(elapsed "$t0" "$t1") s; known inodes $known, after drop_caches $k"
  unmount "$MNT/smh"
  if [ "$PEERS" = 1 ]; then
    for p in "${PEER_NAMES[@]}"; do
      mount_peer "$p" "$MNT/$p" bench-w7
      drop_caches
      t0=$(now); lines=$(count_lines "$PEER_TIMEOUT" "$MNT/$p" find "$MNT/$p"); t1=$(now)
      emit "w7_${p}_lines" "$lines"
      # A time only for a listing that finished (the table picks the best peer by it).
      case $lines in *[!0-9]*) ;; *) emit "w7_${p}_s" "$(elapsed "$t0" "$t1")" ;; esac
      emit "w7_${p}_hwm_kib" "$(vm_kib "${MOUNT_PID[$MNT/$p]:-0}" VmHWM)"
      log "W7 $p: $lines lines in $(elapsed "$t0" "$t1") s"
      unmount "$MNT/$p"
    done
  fi
fi

# ---------------------------------------------------------------- W8 -------
if want w8; then
  log "W8: populating one directory with $W8_ENTRIES files through the API"
  t0=$(now); populate w8 "$W8_ENTRIES"; t1=$(now)
  emit w8_setup_s "$(elapsed "$t0" "$t1")"; emit w8_expected "$((W8_ENTRIES + 1))"
  mount_smh "$MNT/smh" w8
  pid=${MOUNT_PID[$MNT/smh]}
  idle=$(vm_kib "$pid" VmRSS)
  drop_caches; stats_reset
  t0=$(now); lines=$(count_lines "$OP_TIMEOUT" "$MNT/smh" ls -l "$MNT/smh"); t1=$(now)
  hwm=$(vm_kib "$pid" VmHWM)
  emit w8_smh_lines "$lines"; emit w8_smh_s "$(elapsed "$t0" "$t1")"; emit w8_smh_req "$(dir_lists)"
  emit w8_smh_rss_idle_kib "$idle"; emit w8_smh_hwm_kib "$hwm"; emit w8_smh_peak_above_idle_kib $((hwm - idle))
  log "W8 smhfs: $lines lines in $(elapsed "$t0" "$t1") s, VmHWM $hwm KiB (idle $idle)"
  unmount "$MNT/smh"
  if [ "$PEERS" = 1 ]; then
    for p in "${PEER_NAMES[@]}"; do
      mount_peer "$p" "$MNT/$p" bench-w8
      idle=$(vm_kib "${MOUNT_PID[$MNT/$p]}" VmRSS)
      drop_caches
      t0=$(now); lines=$(count_lines "$PEER_TIMEOUT" "$MNT/$p" ls -l "$MNT/$p"); t1=$(now)
      hwm=$(vm_kib "${MOUNT_PID[$MNT/$p]:-0}" VmHWM)
      emit "w8_${p}_lines" "$lines"
      # A time only for a listing that finished (the table picks the best peer by it).
      case $lines in *[!0-9]*) ;; *) emit "w8_${p}_s" "$(elapsed "$t0" "$t1")" ;; esac
      emit "w8_${p}_hwm_kib" "$hwm"; emit "w8_${p}_peak_above_idle_kib" "$(minus "$hwm" "$idle")"
      log "W8 $p: $lines lines in $(elapsed "$t0" "$t1") s"
      unmount "$MNT/$p"
    done
  fi
fi

# ---------------------------------------------------------------- W9 -------
# fio_randread FILE: "IOPS P99_US" of fio's 4 KiB random reads
fio_randread() {
  local json=$LOGS/fio-$RANDOM.json
  T fio --name=w9 --filename="$1" --readonly --rw=randread --bs=4k --direct=1 --size="${BIG_MIB}M" \
    --runtime="$FIO_RUNTIME" --output-format=json --output="$json" >/dev/null 2>>"$LOGS/fio.log" \
    || { echo "failed failed"; return 0; }
  jq -r '.jobs[0].read | "\(.iops | floor) \((.clat_ns.percentile["99.000000"] // 0) / 1000 | floor)"' "$json"
}
# par_cat FILE...: aggregate MiB/s of one `cat` per file, all at once
par_cat() {
  local t0 t1 f pids=() ok=1
  t0=$(now)
  for f in "$@"; do T cat "$f" >/dev/null & pids+=($!); done
  for f in "${pids[@]}"; do wait "$f" || ok=0; done
  t1=$(now)
  [ "$ok" = 1 ] || { echo failed; return 0; }
  awk -v n=$# -v b="$BIG_BYTES" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.0f", n * b / 1048576 / (z - a) }'
}
if want w9; then
  log "W9: storing 4 x ${BIG_MIB} MiB files (cp through a mount)"
  mount_smh "$MNT/smh" ""
  mkdir -p "$MNT/smh/w9"
  for i in 0 1 2 3; do T cp "$INPUTS/scale-${BIG_MIB}MiB-$i.bin" "$MNT/smh/w9/f$i.bin"; done
  unmount "$MNT/smh"
  tok=$(token)
  # Limit of the random reads: as many 4 KiB range GETs of the object URL
  # (the download URL's redirect target) from one curl, connection kept.
  obj=$(curl -fsS -o /dev/null -w '%{redirect_url}' "$URL/api/v1/file/$LIB/-/w9/f0.bin?access_token=$tok")
  [ -n "$obj" ] || obj="$URL/api/v1/file/$LIB/-/w9/f0.bin?access_token=$tok"
  awk -v n="$CURL_READS" -v blocks=$((BIG_BYTES / 4096)) -v u="$obj" 'BEGIN {
    srand(15)
    for (i = 0; i < n; i++) {
      o = int(rand() * blocks) * 4096
      printf "url = \"%s\"\nrange = %d-%d\noutput = /dev/null\nwrite-out = \"%%{time_total}\\n\"\n", u, o, o + 4095
      if (i < n - 1) print "next"
    }
  }' >"$OUT/curl-ranges.cfg"
  drop_caches
  t0=$(now); T curl -fsS -K "$OUT/curl-ranges.cfg" >"$OUT/curl-ranges.times"; t1=$(now)
  emit w9_curl_iops "$(awk -v n="$CURL_READS" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.0f", n / (z - a) }')"
  emit w9_curl_p99_us "$(sort -g "$OUT/curl-ranges.times" | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.0f", v[i] * 1e6 }')"
  mount_smh "$MNT/smh" w9; drop_caches
  read -r iops p99 < <(fio_randread "$MNT/smh/f0.bin")
  emit w9_smh_iops "$iops"; emit w9_smh_p99_us "$p99"
  log "W9 smhfs randread: $iops IOPS, p99 $p99 us"
  for p in "${PEER_NAMES[@]}"; do
    mount_peer "$p" "$MNT/$p" bench-w9; drop_caches
    read -r iops p99 < <(fio_randread "$MNT/$p/f0.bin")
    emit "w9_${p}_iops" "$iops"; emit "w9_${p}_p99_us" "$p99"
    log "W9 $p randread: $iops IOPS, p99 $p99 us"
    unmount "$MNT/$p"
  done
  # 4 parallel sequential readers, cold.
  urls=()
  for i in 0 1 2 3; do urls+=("$URL/api/v1/file/$LIB/-/w9/f$i.bin?access_token=$tok"); done
  drop_caches
  t0=$(now); pids=(); ok=1
  for u in "${urls[@]}"; do T curl -fsS -L -o /dev/null "$u" & pids+=($!); done
  for q in "${pids[@]}"; do wait "$q" || ok=0; done
  t1=$(now)
  if [ "$ok" = 1 ]; then
    emit w9_curl_seq4_mibs "$(awk -v b="$BIG_BYTES" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.0f", 4 * b / 1048576 / (z - a) }')"
  else
    emit w9_curl_seq4_mibs failed
  fi
  mount_smh "$MNT/smh" w9; drop_caches
  v=$(par_cat "$MNT"/smh/f{0,1,2,3}.bin); emit w9_smh_seq4_mibs "$v"
  emit w9_smh_seq4_hwm_kib "$(vm_kib "${MOUNT_PID[$MNT/smh]}" VmHWM)"
  log "W9 smhfs 4 readers: $v MiB/s"
  unmount "$MNT/smh"
  for p in "${PEER_NAMES[@]}"; do
    mount_peer "$p" "$MNT/$p" bench-w9; drop_caches
    v=$(par_cat "$MNT/$p"/f{0,1,2,3}.bin); emit "w9_${p}_seq4_mibs" "$v"
    log "W9 $p 4 readers: $v MiB/s"
    unmount "$MNT/$p"
  done
fi

# ---------------------------------------------------------------- W10 ------
# sample_du DIR FILE: the largest `du -s -B1 DIR` seen every 0.2 s, into
# FILE (allocated bytes: the parts a streamed file has sent are holes)
sample_du() {
  local max=0 v
  while :; do
    v=$(du -s -B1 "$1" 2>/dev/null | cut -f1) || v=0
    [ "${v:-0}" -gt "$max" ] && { max=$v; echo "$max" >"$2"; }
    sleep 0.2
  done
}
# cp_sampled NAME SRC DST CACHE: cp with the cache dir sampled; emits w10_NAME_*
cp_sampled() {
  local name=$1 src=$2 dst=$3 cache=$4 t0 t1 rc=0
  echo 0 >"$OUT/du-$name"
  sample_du "$cache" "$OUT/du-$name" & SAMPLER_PID=$!
  t0=$(now); T cp "$src" "$dst" 2>"$OUT/cp-$name.err" || rc=$?; t1=$(now)
  emit "w10_${name}_rc" "$rc"; emit "w10_${name}_s" "$(elapsed "$t0" "$t1")"
  if [ "$rc" -ne 0 ]; then emit "w10_${name}_error" "$(sed -n '1s/.*: //p' "$OUT/cp-$name.err")"; fi
  echo "$t0 $t1" >"$OUT/cp-$name.times"
}
if want w10; then
  W10_CACHE=$((W10_CACHE_MIB * 1024 * 1024))
  emit w10_cache_size "$W10_CACHE"; emit w10_file_bytes "$BIG_BYTES"
  # Fresh content (no instant upload), 4× the cache bound.
  head -c "$BIG_BYTES" /dev/urandom >"$OUT/w10-src.bin"; sync
  mount_smh "$MNT/smh" "" "cache_size=${W10_CACHE_MIB}M${W10_OPTS:-}"
  mkdir -p "$MNT/smh/w10"
  log "W10: cp of ${BIG_MIB} MiB with cache_size=${W10_CACHE_MIB}M"
  cp_sampled smh "$OUT/w10-src.bin" "$MNT/smh/w10/big.bin" "$OUT/cache/smh"
  sleep 0.5; stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
  emit w10_smh_cache_peak "$(cat "$OUT/du-smh")"
  emit w10_smh_hwm_kib "$(vm_kib "${MOUNT_PID[$MNT/smh]}" VmHWM)"
  unmount "$MNT/smh"
  # What the server holds: the exact bytes, or not.
  stored=0
  curl -fsS -L "$URL/api/v1/file/$LIB/-/w10/big.bin?access_token=$(token)" 2>/dev/null | cmp -s - "$OUT/w10-src.bin" && stored=1
  emit w10_smh_stored "$stored"
  log "W10 smhfs: $(head -c 200 "$OUT/cp-smh.err") stored=$stored, cache peak $(cat "$OUT/du-smh") bytes"
  for p in "${PEER_NAMES[@]}"; do
    mount_peer "$p" "$MNT/$p" bench-w10 --vfs-cache-max-size "${W10_CACHE_MIB}M"
    cp_sampled "$p" "$OUT/w10-src.bin" "$MNT/$p/big-$p.bin" "$OUT/cache/$p"
    # rclone's close() returns before the upload: wait (bounded) for the backend.
    deadline=$(( $(date +%s) + OP_TIMEOUT ))
    while [ "$(stat -c %s "$PEER_ROOT/bench-w10/big-$p.bin" 2>/dev/null || echo 0)" -ne "$BIG_BYTES" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
    t1=$(now); read -r t0 _ <"$OUT/cp-$p.times"
    emit "w10_${p}_landed_s" "$(elapsed "$t0" "$t1")"
    sleep 0.5; stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
    emit "w10_${p}_cache_peak" "$(cat "$OUT/du-$p")"
    stored=0; cmp -s "$PEER_ROOT/bench-w10/big-$p.bin" "$OUT/w10-src.bin" && stored=1
    emit "w10_${p}_stored" "$stored"
    log "W10 $p: stored=$stored, cache peak $(cat "$OUT/du-$p") bytes"
    unmount "$MNT/$p"
  done
  rm -f "$OUT/w10-src.bin"
fi
log "done"
