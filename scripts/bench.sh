#!/usr/bin/env bash
# scripts/bench.sh — end-to-end benchmark of the smhfs FUSE mount.
#
# Runs on a fresh Debian 12 machine, as root (FUSE mounts, drop_caches):
#   scripts/bench.sh                  # full run: 1 GiB file, 3 runs, 10,000 entries
#   BENCH_QUICK=1 scripts/bench.sh    # fast check: 64 MiB, 1 run, 1,000 entries
#   BENCH_ONLY=scale scripts/bench.sh # only the scale workloads W7-W10
#
# What it does:
#   1. installs what is missing (rclone fuse3 curl jq time fio) with apt-get
#      and s3s-fs (the S3 peer of W7-W10) with `cargo install`, builds
#      `cargo build --release` and `examples/populate.rs`, and runs
#      `cargo bench --bench hash` for the SMH hash throughput;
#   2. creates its random inputs once under $BENCH_DIR/inputs (default
#      BENCH_DIR=/var/tmp/smhfs-bench): a 1 GiB file, 1000 files of 4 KiB,
#      100 files of 1 MiB (reused by later runs);
#   3. starts `smhfs serve` on a free loopback port and mounts it with
#      `smhfs mount` (default sync mode: close() returns once the server has
#      confirmed the upload); as the peer, starts `rclone serve webdav` of a
#      local directory and mounts it with `rclone mount --vfs-cache-mode writes
#      --vfs-write-back 0s`;
#   4. times each workload (median of 3 runs) on smhfs, on the peer and, where
#      one exists, on its limit:
#        W1 cp of the 1 GiB file           limits: curl PUT to the object endpoint; local cp+sync
#        W2 cp -r of 1000 x 4 KiB          limit:  local cp -r + sync
#        W3 cp -r of 100 x 1 MiB           limit:  local cp -r + sync
#        W4 cold cat of the 1 GiB file     limit:  curl -L GET of the download URL (cold cache)
#        W5 ls -l of a 10,000-entry dir    cold (after remount) and warm; dir_list requests
#                                          from /__stats (entries created server side)
#        W6 re-copy of the 1 GiB file      instant upload: part bytes sent; limit: hashing 1 GiB
#        C1 coherence (scripts/bench-coherence.sh, its own server and mount):
#                                          time from an overwrite through the API to
#                                          its visibility in the mount (median, worst
#                                          of 50), requests of an idle mount over 60 s
#        RSS peak VmHWM of the mount daemon during W1 and during W5
#        W7-W10 scale (scripts/bench-scale.sh, its own server, mounts and
#                                          peers): find over a 1,000,000-entry
#                                          tree, ls -l of a 200,000-entry dir,
#                                          fio randread and 4 parallel readers
#                                          against curl, cp of a file 4x
#                                          cache_size; peers rclone mount of
#                                          webdav and of S3 (s3s-fs)
#      For rclone, a write is timed until the webdav backing directory holds the
#      file(s) at full size (polled every 10 ms), since its close() returns
#      before the upload.
#   5. prints a markdown table (targets from the issue, met / not met) to
#      stdout and to $BENCH_DIR/results.md; progress and logs go to stderr and
#      $BENCH_DIR/run/logs/.
#
# Environment: BENCH_DIR (work dir), BENCH_QUICK=1 (fast mode), BENCH_SMHFS
# (benchmark this smhfs binary instead of the fresh release build), BENCH_RUNS
# (override the number of runs), BENCH_W5_KIND=file|dir (what the 10,000
# server-side entries are; default file), BENCH_KEEP=1 (keep the server data
# and rclone backing directory under $BENCH_DIR/run; by default they are
# deleted on exit, the inputs are kept), BENCH_ONLY=scale (only W7-W10,
# table in $BENCH_DIR/results-scale.md), BENCH_SCALE=0 (skip W7-W10); and
# for W7-W10: SCALE_ONLY="w7 w9" (some of them), SCALE_PEERS=0 (no peers),
# SCALE_SIZE=small|full (default: small with BENCH_QUICK=1).
# Everything it starts (servers, mounts) is stopped on exit, also on Ctrl-C.
# Not part of the test suite.
set -euo pipefail
shopt -s inherit_errexit

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/smhfs-bench}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  BIG_MIB=64; RUNS=${BENCH_RUNS:-1}; ENTRIES=1000
else
  BIG_MIB=1024; RUNS=${BENCH_RUNS:-3}; ENTRIES=10000
fi
W5_KIND=${BENCH_W5_KIND:-file}
ONLY=${BENCH_ONLY:-}
SCALE=${BENCH_SCALE:-1}
[ -z "$ONLY" ] || [ "$ONLY" = scale ] || { echo "BENCH_ONLY must be empty or 'scale'" >&2; exit 2; }
[ "$ONLY" != scale ] || SCALE=1
BIG_BYTES=$((BIG_MIB * 1024 * 1024))
SMALL_N=1000; SMALL_BYTES=4096
MED_N=100; MED_BYTES=$((1024 * 1024))
MOUNT_TIMEOUT=20        # seconds for a mount / server to appear
OP_TIMEOUT=900          # seconds for any single timed command (cp, cat, ls, curl)
BACKEND_TIMEOUT=600     # seconds for rclone to land a write in its backend

INPUTS=$BENCH_DIR/inputs
RUN=$BENCH_DIR/run
LOGS=$RUN/logs
BIG=$INPUTS/big-${BIG_MIB}MiB.bin
SMALL=$INPUTS/small-1000x4KiB
MED=$INPUTS/medium-100x1MiB   # one tree per run: -r1, -r2, ... (see below)
SRC=$RUN/w1-source.bin        # per-run variant of $BIG (see make_src)

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
T() { # T CMD...: run a timed command, bounded by OP_TIMEOUT
  timeout "$OP_TIMEOUT" "$@" || { local rc=$?; [ "$rc" -ne 124 ] || log "timed out after ${OP_TIMEOUT}s: $*"; return "$rc"; }
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ---------------------------------------------------------------- cleanup --
SERVER_PID=""; SMH_MOUNT_PID=""; RC_SERVE_PID=""; RC_MOUNT_PID=""
MNT_SMH=$RUN/mnt-smhfs
MNT_RC=$RUN/mnt-rclone

is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

unmount() { # unmount $1 (bounded), lazily if it stays busy
  local m=$1 i
  is_mounted "$m" || return 0
  for i in $(seq 1 50); do
    fusermount3 -u "$m" 2>/dev/null && return 0
    is_mounted "$m" || return 0
    sleep 0.2
  done
  log "fusermount3 -u $m keeps failing; umount -l"
  umount -l "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true
}

stop_pid() { # stop_pid PID: TERM, wait up to 10 s, then KILL
  local p=$1 i
  [ -n "$p" ] || return 0
  kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
  kill "$p" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  unmount "$MNT_SMH"; unmount "$MNT_RC"
  stop_pid "$SMH_MOUNT_PID"; stop_pid "$RC_MOUNT_PID"
  stop_pid "$RC_SERVE_PID"; stop_pid "$SERVER_PID"
  if [ "${BENCH_KEEP:-0}" != 1 ] && ! is_mounted "$MNT_SMH" && ! is_mounted "$MNT_RC"; then
    rm -rf "$RUN/server-data" "$RUN/rclone-backing" "$RUN/rclone-cache" "$RUN/smhfs-cache" "$RUN/local-limit" "$SRC"
  fi
  if [ "$rc" -ne 0 ]; then
    log "failed (exit $rc); logs in $LOGS"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- setup ----
[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mounts and /proc/sys/vm/drop_caches need it)"
[ -e /dev/fuse ] || die "/dev/fuse is missing (modprobe fuse)"

need=()
command -v rclone >/dev/null 2>&1 || need+=(rclone)
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || need+=(jq)
[ -x /usr/bin/time ] || need+=(time)
[ "$SCALE" = 0 ] || command -v fio >/dev/null 2>&1 || need+=(fio)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -d "${HOME:-/root}/.cargo/bin" ] && PATH=${HOME:-/root}/.cargo/bin:$PATH
command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust (rustup) first"
if [ "$SCALE" = 1 ] && [ "${SCALE_PEERS:-1}" = 1 ] && ! command -v s3s-fs >/dev/null 2>&1; then
  log "installing s3s-fs (cargo install, a few minutes)"
  cargo install s3s-fs --version 0.14.1 --features binary --locked >"$BENCH_DIR/s3s-fs-install.log" 2>&1 \
    || { tail -n 30 "$BENCH_DIR/s3s-fs-install.log" >&2; die "cargo install s3s-fs failed"; }
fi

mkdir -p "$INPUTS"
# A previous run killed with SIGKILL may have left its mounts behind.
for m in "$MNT_SMH" "$MNT_RC"; do
  is_mounted "$m" && { fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
done
rm -rf --one-file-system "$RUN"
mkdir -p "$LOGS"

log "building (cargo build --release)"
(cd "$REPO" && cargo build --release --bin smhfs --example populate) >"$LOGS/build.log" 2>&1 \
  || { tail -n 30 "$LOGS/build.log" >&2; die "build failed"; }
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
# BENCH_SMHFS=BIN benchmarks another build (server and mount), e.g. the
# baseline of a change (scripts/bench-compare.sh).
SMHFS=${BENCH_SMHFS:-$TARGET_DIR/release/smhfs}
POPULATE=$TARGET_DIR/release/examples/populate
[ -x "$SMHFS" ] && [ -x "$POPULATE" ] || die "built binaries not found under $TARGET_DIR/release"

# ---------------------------------------------------------------- W7-W10 ---
# Table helpers (also for the report at the end).
f3() { [ -n "$1" ] && awk -v x="$1" 'BEGIN { printf "%.3f s", x }' || echo "n/a"; }
ratio() { # ratio A B -> "A/B×"
  [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }' || echo "n/a"
}
mibs() { [ -n "$1" ] && awk -v s="$BIG_BYTES" -v t="$1" 'BEGIN { printf "%.0f MiB/s", s / 1048576 / t }' || echo "n/a"; }
mib() { [ -n "$1" ] && awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }' || echo "n/a"; }
le() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b + 1e-9) }'; }
ge() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 1e-9 >= b) }'; }
mul() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a * b }'; }
fx() { [ -n "$1" ] && awk -v x="$1" 'BEGIN { printf "%.3f×", x }' || echo "n/a"; }
met() { if "$@"; then echo "met"; else echo "**not met**"; fi; }
both() { eval "$1" && eval "$2"; }
# The scale workloads run in scripts/bench-scale.sh (its own server, mounts
# and peers); its KEY=VALUE lines land in S and become table rows here.
declare -A S=()
run_scale() {
  log "W7-W10: scale workloads (scripts/bench-scale.sh; log: $LOGS/scale.log)"
  if SMHFS=$SMHFS POPULATE=$POPULATE SCALE_INPUTS=$INPUTS BENCH_QUICK=$QUICK \
    "$REPO/scripts/bench-scale.sh" "$RUN/scale" >"$LOGS/scale.env" 2>"$LOGS/scale.log"; then
    :
  else
    log "WARNING: W7-W10 failed (log: $LOGS/scale.log); the rows show what was measured"
  fi
  local k v
  while IFS='=' read -r k v; do [ -n "$k" ] && S[$k]=$v; done <"$LOGS/scale.env"
}
num() { [[ ${1:-} =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
best_peer() { # best_peer min|max KEY-SUFFIX: "peer value" of the best peer with a number
  local dir=$1 suf=$2 p v best="" bestv=""
  for p in dav s3; do
    v=${S[${3:-w}_${p}_$suf]:-}
    num "$v" || continue
    if [ -z "$bestv" ] || { [ "$dir" = min ] && le "$v" "$bestv"; } || { [ "$dir" = max ] && ge "$v" "$bestv"; }; then
      best=$p; bestv=$v
    fi
  done
  [ -n "$best" ] && echo "$best $bestv"
}
peer_cell() { # peer_cell NAME VALUE-TEXT
  case $1 in
    dav) echo "rclone webdav: $2" ;;
    s3) echo "rclone s3 (s3s-fs): $2" ;;
    *) echo "—" ;;
  esac
}
lt() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
scale_rows() { # markdown rows of W7-W10 from S
  local n e t r p pv kib lim ok
  [ -n "${S[scale_size]:-}" ] || { echo "| W7–W10 | not run (see $LOGS/scale.log) | — | — | — | — | — | |"; return; }
  if [ -n "${S[w7_expected]:-}" ]; then
    e=${S[w7_expected]}; n=${S[w7_smh_lines]:-}; t=${S[w7_smh_s]:-}
    read -r p pv < <(best_peer min s w7 || true) || true
    echo "| W7 \`find MNT \\| wc -l\` of a $((e - 1))-entry tree, cold | $(f3 "$t"), $n lines, ${S[w7_smh_req]:-n/a} dir_list | — | — | $(peer_cell "$p" "$(f3 "$pv"), ${S[w7_${p}_lines]:-?} lines") | $(ratio "$pv" "$t") | exactly $e lines | $(met test "${n:-}" = "$e") |"
    read -r p pv < <(best_peer min hwm_kib w7 || true) || true
    echo "| W7 daemon RSS | VmHWM $(mib "${S[w7_smh_hwm_kib]:-}") (idle $(mib "${S[w7_smh_rss_idle_kib]:-}")), peak growth ${S[w7_smh_peak_bytes_per_entry]:-n/a} B per tree entry; ${S[w7_smh_bytes_per_known]:-n/a} B per inode still known (${S[w7_smh_known_after_find]:-n/a}) | — | — | $(peer_cell "$p" "VmHWM $(mib "$pv")") | $(ratio "$pv" "${S[w7_smh_hwm_kib]:-}") | ≤ 200 B per entry the kernel holds | $(met le "${S[w7_smh_bytes_per_known]:-}" 200) |"
    echo "| W7 known inodes after \`echo 2 > drop_caches\` | ${S[w7_smh_known_after_drop]:-n/a} (from ${S[w7_smh_known_after_find]:-n/a}) | — | — | — | — | < 1 % of the tree ($(( (e - 1) / 100 ))) | $(met lt "${S[w7_smh_known_after_drop]:-}" "$(( (e - 1) / 100 ))") |"
  fi
  if [ -n "${S[w8_expected]:-}" ]; then
    e=${S[w8_expected]}; t=${S[w8_smh_s]:-}
    read -r p pv < <(best_peer min s w8 || true) || true
    echo "| W8 cold \`ls -l\` of $((e - 1)) entries | $(f3 "$t"), ${S[w8_smh_lines]:-n/a} lines, ${S[w8_smh_req]:-n/a} dir_list | — | — | $(peer_cell "$p" "$(f3 "$pv")") | $(ratio "$pv" "$t") | $e lines | $(met test "${S[w8_smh_lines]:-}" = "$e") |"
    read -r p pv < <(best_peer min peak_above_idle_kib w8 || true) || true
    kib=${S[w8_smh_peak_above_idle_kib]:-}
    echo "| W8 daemon peak RSS above idle | $(mib "$kib") (VmHWM $(mib "${S[w8_smh_hwm_kib]:-}")) | — | — | $(peer_cell "$p" "$(mib "$pv")") | $(ratio "$pv" "$kib") | ≤ 64 MiB above idle | $(met le "$kib" "$RSS_LIMIT_KIB") |"
  fi
  if [ -n "${S[w9_smh_iops]:-}" ]; then
    read -r p pv < <(best_peer max iops w9 || true) || true
    echo "| W9 fio randread 4 KiB, direct | ${S[w9_smh_iops]} IOPS, p99 ${S[w9_smh_p99_us]:-n/a} µs | curl ranges ${S[w9_curl_iops]:-n/a} IOPS, p99 ${S[w9_curl_p99_us]:-n/a} µs | $(ratio "${S[w9_smh_iops]}" "${S[w9_curl_iops]:-}") | $(peer_cell "$p" "$pv IOPS, p99 ${S[w9_${p}_p99_us]:-?} µs") | $(ratio "${S[w9_smh_iops]}" "$pv") | reported against curl | — |"
    read -r p pv < <(best_peer max seq4_mibs w9 || true) || true
    echo "| W9 4 parallel sequential readers, cold | ${S[w9_smh_seq4_mibs]:-n/a} MiB/s | 4 × curl GET ${S[w9_curl_seq4_mibs]:-n/a} MiB/s | $(ratio "${S[w9_smh_seq4_mibs]:-}" "${S[w9_curl_seq4_mibs]:-}") | $(peer_cell "$p" "$pv MiB/s") | $(ratio "${S[w9_smh_seq4_mibs]:-}" "$pv") | reported against curl | — |"
  fi
  if [ -n "${S[w10_cache_size]:-}" ]; then
    lim=${S[w10_cache_size]}
    if [ "${S[w10_smh_rc]:-1}" = 0 ]; then r="cp ok in $(f3 "${S[w10_smh_s]:-}")"; else r="cp failed (${S[w10_smh_error]:-exit ${S[w10_smh_rc]:-?}})"; fi
    if [ "${S[w10_smh_stored]:-0}" = 1 ]; then r="$r, stored"; else r="$r, not stored"; fi
    ok=0; [ "${S[w10_smh_rc]:-1}" = 0 ] && [ "${S[w10_smh_stored]:-0}" = 1 ] && le "${S[w10_smh_cache_peak]:-}" "$lim" && ok=1
    read -r p pv < <(best_peer min landed_s w10 || true) || true
    echo "| W10 cp of $(mib $(( ${S[w10_file_bytes]:-0} / 1024 ))) with cache_size $(mib $((lim / 1024))) | $r; cache peak $(mib $(( ${S[w10_smh_cache_peak]:-0} / 1024 ))) | cache_size $(mib $((lim / 1024))) | $(ratio "${S[w10_smh_cache_peak]:-}" "$lim") of cache_size | $(peer_cell "$p" "$(f3 "$pv") until stored, cache peak $(mib $(( ${S[w10_${p}_cache_peak]:-0} / 1024 )))") | $( [ "${S[w10_smh_rc]:-1}" = 0 ] && ratio "$pv" "${S[w10_smh_s]:-}" || echo "n/a") | completes, cache ≤ cache_size | $(met test "$ok" = 1) |"
  fi
}
scale_notes() {
  echo "W7–W10 (scripts/bench-scale.sh, size ${S[scale_size]:-?}): its own \`smhfs serve\` and cold mounts of each tree; the peers are \`rclone mount --vfs-cache-mode writes --vfs-write-back 0s\` of \`rclone serve webdav\` and of \`s3s-fs\` (an S3 server on crates.io) over one backing directory holding the same trees (16-byte files); the best peer per row is shown and \"peer / smhfs\" > 1 means smhfs is better (times and memory: peer / smhfs; IOPS and MiB/s: smhfs / peer). W7's RSS per known inode is (VmRSS after find − idle VmRSS) / known inodes after find. W9's randread limit: the same 4 KiB reads as HTTP range GETs of the object URL, one after another from one curl (connection kept); W10's cache peak: the largest allocated size (\`du -s -B1\`) of the cache directory, sampled every 0.2 s."
  [ -z "${S[w7_setup_s]:-}${S[w8_setup_s]:-}" ] || echo "Setup through the API (not timed in the rows): W7 ${S[w7_setup_s]:-n/a} s, W8 ${S[w8_setup_s]:-n/a} s."
  local k bad=""
  for k in "${!S[@]}"; do
    case $k in *_lines | *_iops | *_seq4_mibs) num "${S[$k]}" || bad="$bad ${k}=${S[$k]}" ;; esac
  done
  [ -z "$bad" ] || echo "Not measured (failed or timed out, left out of the best-peer choice):$bad."
}
if [ "$ONLY" = scale ]; then
  RSS_LIMIT_KIB=$((64 * 1024))
  run_scale
  {
    echo "## smhfs benchmark: scale workloads (W7–W10)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); smhfs $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'); $(rclone version 2>/dev/null | head -n 1); $(s3s-fs --version 2>/dev/null || true)"
    echo "- machine: $(nproc) CPUs, kernel $(uname -r), $(awk '/^MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
    echo
    echo "| workload | smhfs | limit | smhfs / limit | best peer | peer / smhfs | target | |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    scale_rows
    echo
    scale_notes
  } | tee "$BENCH_DIR/results-scale.md"
  log "results written to $BENCH_DIR/results-scale.md"
  exit 0
fi

# Hash throughput (W6's limit). Run before anything else loads the machine.
log "hash throughput (cargo bench --bench hash)"
bench_args=(--noplot smh_hash/sha256_chain_plus_crc64)
[ "$QUICK" = 1 ] && bench_args+=(--warm-up-time 1 --measurement-time 2)
(cd "$REPO" && cargo bench --bench hash -- "${bench_args[@]}") >"$LOGS/hash-bench.log" 2>&1 \
  || { tail -n 30 "$LOGS/hash-bench.log" >&2; die "cargo bench failed"; }
# criterion: "smh_hash/sha256_chain_plus_crc64/64MiB ... thrpt:  [lo UNIT mid UNIT hi UNIT]"
HASH_BPS=$(awk '
  /smh_hash\/sha256_chain_plus_crc64\/64MiB/ { want = 1 }
  want && /thrpt:/ {
    sub(/.*\[/, ""); v = $3; u = $4
    m = 1
    if (u ~ /^KiB/) m = 1024; else if (u ~ /^MiB/) m = 1048576; else if (u ~ /^GiB/) m = 1073741824
    else if (u ~ /^KB/) m = 1e3; else if (u ~ /^MB/) m = 1e6; else if (u ~ /^GB/) m = 1e9
    printf "%.0f", v * m; exit
  }' "$LOGS/hash-bench.log")
[ -n "$HASH_BPS" ] || die "could not parse the hash throughput from $LOGS/hash-bench.log"
HASH_TIME=$(awk -v b="$BIG_BYTES" -v t="$HASH_BPS" 'BEGIN { printf "%.3f", b / t }')
log "sha256 chain + crc64: $(awk -v t="$HASH_BPS" 'BEGIN { printf "%.0f", t / 1048576 }') MiB/s -> ${HASH_TIME}s per ${BIG_MIB} MiB"

# ---------------------------------------------------------------- inputs ---
make_inputs() {
  if [ ! -f "$BIG.done" ]; then
    log "creating $BIG (${BIG_MIB} MiB random)"
    head -c "$BIG_BYTES" /dev/urandom >"$BIG"
    touch "$BIG.done"
  fi
  if [ ! -f "$SMALL.done" ]; then
    log "creating $SMALL"
    rm -rf "$SMALL"; mkdir -p "$SMALL"
    head -c $((SMALL_N * SMALL_BYTES)) /dev/urandom | (cd "$SMALL" && split -b "$SMALL_BYTES" -a 4 -d - f)
    touch "$SMALL.done"
  fi
  # Files of 1 MiB qualify for instant upload: each run gets its own tree so
  # that a run never uploads content an earlier run already stored.
  local r
  for r in $(seq 1 "$RUNS"); do
    if [ ! -f "$MED-r$r.done" ]; then
      log "creating $MED-r$r"
      rm -rf "$MED-r$r"; mkdir -p "$MED-r$r"
      head -c $((MED_N * MED_BYTES)) /dev/urandom | (cd "$MED-r$r" && split -b "$MED_BYTES" -a 3 -d - f)
      touch "$MED-r$r.done"
    fi
    [ "$(find "$MED-r$r" -type f | wc -l)" -eq "$MED_N" ] || die "$MED-r$r is incomplete; delete it and rerun"
  done
  [ "$(stat -c %s "$BIG")" -eq "$BIG_BYTES" ] || die "$BIG has the wrong size; delete it and rerun"
  [ "$(find "$SMALL" -type f | wc -l)" -eq "$SMALL_N" ] || die "$SMALL is incomplete; delete it and rerun"
}
make_inputs

DROP_OK=1
drop_caches() {
  sync
  if ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
    [ "$DROP_OK" = 0 ] || log "WARNING: cannot write /proc/sys/vm/drop_caches; cold reads are not cold"
    DROP_OK=0
  fi
}

free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no free loopback port found"
}

wait_for() { # wait_for SECONDS DESCRIPTION LOGFILE PID CMD...: poll CMD every 0.1 s
  local secs=$1 what=$2 logf=$3 pid=$4; shift 4
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$logf" >&2; die "$what: process $pid exited (log: $logf)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "$logf" >&2; die "$what: not ready within ${secs}s (log: $logf)"
    fi
    sleep 0.1
  done
}

# ---------------------------------------------------------------- smhfs serve
SERVER_DATA=$RUN/server-data
mkdir -p "$SERVER_DATA"
SECRET_FILE=$RUN/server-secret
# The secret goes through a private file, never argv or the server log.
( umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SECRET_FILE" )
SECRET=$(cat "$SECRET_FILE")
log "starting smhfs serve on a free loopback port"
# Builds before the private-data change (BENCH_SMHFS baselines) take the
# secret on argv and have their test endpoints always on.
if "$SMHFS" serve --help 2>/dev/null | grep -q -- --test-endpoints; then
  serve_flags=(--secret-file "$SECRET_FILE" --test-endpoints)
  # The server stands in for COS, whose MD5 ETags are computed on its own
  # machines: here MD5 would be charged to the client's 2 cores.
  "$SMHFS" serve --help 2>/dev/null | grep -q -- --part-etag && serve_flags+=(--part-etag crc)
else
  serve_flags=(--secret "$SECRET")
fi
"$SMHFS" serve --listen 127.0.0.1:0 --data "$SERVER_DATA" "${serve_flags[@]}" >"$LOGS/server.log" 2>&1 &
SERVER_PID=$!
wait_for "$MOUNT_TIMEOUT" "smhfs serve" "$LOGS/server.log" "$SERVER_PID" grep -q 'listening on http' "$LOGS/server.log"
URL=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$LOGS/server.log" | head -n 1)
LIB=$(sed -n 's/^\(.*[[:space:]]\)\{0,1\}library: *\([^[:space:]]*\).*/\2/p' "$LOGS/server.log" | head -n 1)
[ -n "$URL" ] || die "smhfs serve printed no URL (log: $LOGS/server.log)"
URL=${URL%/}; LIB=${LIB:-smhlocal}
wait_for "$MOUNT_TIMEOUT" "smhfs serve /__stats" "$LOGS/server.log" "$SERVER_PID" curl -fsS "$URL/__stats"
log "server $URL library $LIB"

TOKEN=$(curl -fsS -G "$URL/api/v1/token" --data-urlencode "library_id=$LIB" \
  --data-urlencode "library_secret=$SECRET" --data-urlencode "grant=admin" | jq -r .accessToken) \
  || die "could not get an access token"
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || die "could not get an access token"
token() { echo "$TOKEN"; }
stats() { curl -fsS "$URL/__stats"; }
stats_reset() { curl -fsS -X POST "$URL/__stats/reset" >/dev/null; }
stat_req() { stats | jq -r --arg k "$1" '.requests[$k] // 0'; }
stat_top() { stats | jq -r --arg k "$1" '.[$k] // 0'; }

CREDS=$RUN/smhfs-credentials
( umask 077; printf 'library_secret=%s\n' "$SECRET" >"$CREDS" )
chmod 600 "$CREDS"

# 10,000 entries on the server side (not through the mount), before any mount.
W5_DIR=w5-entries
log "populating $W5_DIR with $ENTRIES ${W5_KIND}s through the API"
"$POPULATE" --endpoint "$URL" --library "$LIB" --secret "$SECRET" --dir "$W5_DIR" \
  --count "$ENTRIES" --kind "$W5_KIND" --concurrency 32 >"$LOGS/populate.log" 2>&1 \
  || { tail -n 30 "$LOGS/populate.log" >&2; die "populate failed"; }

# ---------------------------------------------------------------- rclone peer
RC_BACK=$RUN/rclone-backing
mkdir -p "$RC_BACK/$W5_DIR"
log "creating $ENTRIES entries in the rclone backing directory"
(
  cd "$RC_BACK/$W5_DIR"
  for ((i = 0; i < ENTRIES; i++)); do
    if [ "$W5_KIND" = dir ]; then printf -v name 'e%05d' "$i"; mkdir "$name"
    else printf -v name 'e%05d.bin' "$i"; printf '0123456789abcdef' >"$name"; fi
  done
)
RC_PORT=$(free_port)
log "starting rclone serve webdav on 127.0.0.1:$RC_PORT"
rclone serve webdav "$RC_BACK" --addr "127.0.0.1:$RC_PORT" >"$LOGS/rclone-serve.log" 2>&1 &
RC_SERVE_PID=$!
wait_for "$MOUNT_TIMEOUT" "rclone serve webdav" "$LOGS/rclone-serve.log" "$RC_SERVE_PID" \
  curl -fsS -o /dev/null "http://127.0.0.1:$RC_PORT/"

# ---------------------------------------------------------------- mounts ---
mount_smh() {
  unmount "$MNT_SMH"; stop_pid "$SMH_MOUNT_PID"; SMH_MOUNT_PID=""
  mkdir -p "$MNT_SMH"
  rm -rf "$RUN/smhfs-cache"; mkdir -p "$RUN/smhfs-cache"
  "$SMHFS" mount "$LIB:-" "$MNT_SMH" \
    -o "endpoint=$URL,credentials=$CREDS,cache_dir=$RUN/smhfs-cache${SMH_EXTRA:+,$SMH_EXTRA}" -f >>"$LOGS/mount-smhfs.log" 2>&1 &
  SMH_MOUNT_PID=$!
  wait_for "$MOUNT_TIMEOUT" "smhfs mount" "$LOGS/mount-smhfs.log" "$SMH_MOUNT_PID" is_mounted "$MNT_SMH"
}
mount_rc() {
  unmount "$MNT_RC"; stop_pid "$RC_MOUNT_PID"; RC_MOUNT_PID=""
  mkdir -p "$MNT_RC"
  rm -rf "$RUN/rclone-cache"; mkdir -p "$RUN/rclone-cache"
  rclone mount :webdav: "$MNT_RC" --webdav-url "http://127.0.0.1:$RC_PORT" \
    --vfs-cache-mode writes --vfs-write-back 0s --cache-dir "$RUN/rclone-cache" \
    >>"$LOGS/mount-rclone.log" 2>&1 &
  RC_MOUNT_PID=$!
  wait_for "$MOUNT_TIMEOUT" "rclone mount" "$LOGS/mount-rclone.log" "$RC_MOUNT_PID" is_mounted "$MNT_RC"
}
vm_hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# rclone: wait until the backing directory holds $2 files totalling $3 bytes
# under $1 (a file or a directory), polling every 10 ms.
rc_wait_backend() {
  local path=$1 files=$2 bytes=$3 got deadline=$(( $(date +%s) + BACKEND_TIMEOUT ))
  while :; do
    got=$( { find "$path" -type f -printf '%s\n' 2>/dev/null || true; } | awk '{ n++; s += $1 } END { print n + 0, s + 0 }')
    [ "$got" = "$files $bytes" ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || die "rclone backend: $path has '$got' (files bytes), want '$files $bytes'"
    sleep 0.01
  done
}

# ---------------------------------------------------------------- results --
declare -A R   # R[key]="v1 v2 v3"
add() { R[$1]="${R[$1]:-} $2"; }
median() { # median of the values recorded under key $1
  local v=${R[$1]:-}
  [ -n "${v// /}" ] || { echo ""; return; }
  # shellcheck disable=SC2086  # a space-separated list of numbers
  printf '%s\n' $v | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
csv() { local -a vals; read -r -a vals <<<"${R[$1]:-}"; local IFS=,; echo "${vals[*]}"; }
maxof() { local v=${R[$1]:-}; [ -n "${v// /}" ] || { echo ""; return; }; csv "$1" | tr , '\n' | sort -g | tail -n 1; }

# ---------------------------------------------------------------- W1 -------
LOCAL=$RUN/local-limit
mkdir -p "$LOCAL"
log "mounting smhfs and rclone"
mount_smh
mount_rc

# W1 run r copies $SRC, a copy of $BIG whose first MiB is fresh random data:
# the server must never know the content from an earlier run (instant upload
# keys on the SHA-256 of the first MiB and the chain over the whole file).
make_src() {
  rm -f "$SRC"
  cp "$BIG" "$SRC"
  dd if=/dev/urandom of="$SRC" bs=1M count=1 iflag=fullblock conv=notrunc status=none
  sync
}
cp_local_file() { local t0 t1; t0=$(now); T cp "$SRC" "$LOCAL/$1"; sync; t1=$(now); elapsed "$t0" "$t1"; }

curl_put() { # curl PUT of $BIG to the object endpoint of a simple-upload ticket; prints seconds
  local name=$1 tok begin domain opath ckey t0 t1 objurl
  local -a hdrs=()
  tok=$(token)
  begin=$(curl -fsS -X PUT -H 'Content-Type: application/json' -d '{}' \
    "$URL/api/v1/file/$LIB/-/$name?access_token=$tok&filesize=$BIG_BYTES&conflict_resolution_strategy=overwrite") \
    || die "upload begin for $name failed"
  domain=$(jq -r .domain <<<"$begin"); opath=$(jq -r .path <<<"$begin"); ckey=$(jq -r .confirmKey <<<"$begin")
  [ -n "$domain" ] && [ "$domain" != null ] || die "upload begin gave no ticket: $begin"
  while IFS= read -r h; do hdrs+=(-H "$h"); done < <(jq -r '.headers // {} | to_entries[] | "\(.key): \(.value)"' <<<"$begin")
  case $domain in http://* | https://*) objurl=$domain$opath ;; *) objurl=http://$domain$opath ;; esac
  t0=$(now)
  T curl -fsS -X PUT -T "$SRC" -H 'Expect:' "${hdrs[@]}" -o /dev/null "$objurl" || die "curl PUT to $objurl failed"
  t1=$(now)
  curl -fsS -X POST -H 'Content-Type: application/json' -d '{}' \
    "$URL/api/v1/file/$LIB/-/$ckey?confirm&access_token=$tok" >/dev/null || die "confirm of $name failed"
  curl -fsS -X DELETE "$URL/api/v1/file/$LIB/-/$name?access_token=$tok&permanent=1" >/dev/null || true
  elapsed "$t0" "$t1"
}

log "W1: cp of the ${BIG_MIB} MiB file (x$RUNS)"
stats_reset
for r in $(seq 1 "$RUNS"); do
  make_src
  v=$(cp_local_file "w1-r$r.bin"); add w1_local "$v"; rm -f "$LOCAL/w1-r$r.bin"
  # smhfs before the curl limit, so nothing else has stored this content yet.
  pb0=$(stat_top part_bytes)
  t0=$(now); T cp "$SRC" "$MNT_SMH/w1-r$r.bin"; t1=$(now); add w1_smh "$(elapsed "$t0" "$t1")"
  pb1=$(stat_top part_bytes); add w1_bytes $((pb1 - pb0))
  [ $((pb1 - pb0)) -ge "$BIG_BYTES" ] || log "WARNING: smhfs sent only $((pb1 - pb0)) part bytes for W1 run $r"
  t0=$(now); T cp "$SRC" "$MNT_RC/w1-r$r.bin"; rc_wait_backend "$RC_BACK/w1-r$r.bin" 1 "$BIG_BYTES"; t1=$(now)
  add w1_rc "$(elapsed "$t0" "$t1")"
  v=$(curl_put "limit-put-r$r.bin"); add w1_curl "$v"
  if [ "$r" -lt "$RUNS" ]; then rm -f "$MNT_SMH/w1-r$r.bin" "$MNT_RC/w1-r$r.bin"; fi
  log "  run $r: local ${R[w1_local]##* }s curl ${R[w1_curl]##* }s smhfs ${R[w1_smh]##* }s (${R[w1_bytes]##* } part bytes) rclone ${R[w1_rc]##* }s"
done
# The last run's file stays: it is W4's file, and $SRC (its content) is W6's.
BIGNAME=w1-r$RUNS.bin
[ "$(stat -c %s "$MNT_SMH/$BIGNAME")" -eq "$BIG_BYTES" ] || die "smhfs: $BIGNAME has the wrong size"
RSS_W1_SMH=$(vm_hwm_kib "$SMH_MOUNT_PID"); RSS_W1_RC=$(vm_hwm_kib "$RC_MOUNT_PID")

# ---------------------------------------------------------------- W2, W3 ---
cp_tree() { # cp_tree WORKLOAD SRC NFILES BYTES; SRC "X-r%d" means one tree per run
  local w=$1 srcpat=$2 n=$3 bytes=$4 r t0 t1 src pb0 pb1
  for r in $(seq 1 "$RUNS"); do
    # shellcheck disable=SC2059
    printf -v src "$srcpat" "$r"
    t0=$(now); T cp -r "$src" "$LOCAL/$w-r$r"; sync; t1=$(now); add "${w}_local" "$(elapsed "$t0" "$t1")"
    pb0=$(stat_top part_bytes)
    t0=$(now); T cp -r "$src" "$MNT_SMH/$w-r$r"; t1=$(now); add "${w}_smh" "$(elapsed "$t0" "$t1")"
    pb1=$(stat_top part_bytes); add "${w}_bytes" $((pb1 - pb0))
    t0=$(now); T cp -r "$src" "$MNT_RC/$w-r$r"; rc_wait_backend "$RC_BACK/$w-r$r" "$n" "$bytes"; t1=$(now)
    add "${w}_rc" "$(elapsed "$t0" "$t1")"
    rm -rf "$LOCAL/$w-r$r"
    log "  run $r: local ${R[${w}_local]##* }s smhfs ${R[${w}_smh]##* }s rclone ${R[${w}_rc]##* }s"
  done
  [ "$(find "$MNT_SMH/$w-r$RUNS" -type f | wc -l)" -eq "$n" ] || die "smhfs: $w-r$RUNS does not hold $n files"
}
log "W2: cp -r of ${SMALL_N} x 4 KiB (x$RUNS)"
cp_tree w2 "$SMALL" "$SMALL_N" $((SMALL_N * SMALL_BYTES))
log "W3: cp -r of ${MED_N} x 1 MiB (x$RUNS)"
cp_tree w3 "$MED-r%d" "$MED_N" $((MED_N * MED_BYTES))

# ---------------------------------------------------------------- metrics --
# What `-o metrics_addr` costs on W1-W3: the same copies with metrics off
# and on, interleaved in each run, the order swapped every run (off, on;
# on, off; ...) so drift and what the previous copy left behind (its
# deletes, the server's checkpoints) hit both alike; every copy with
# content the server has never seen (no instant upload for either mode).
METRICS_PORT=$(free_port)
if ! "$SMHFS" mount --help 2>&1 | grep -q metrics_addr; then
  log "metrics on/off: skipped ($SMHFS has no metrics_addr option)"
  RUNS_M=0
else
  # A 3 % budget is below the run-to-run noise of a shared 2-core machine:
  # more pairs than the other rows, and the ratio is the median of each
  # pair's on/off ratio (a pair runs back to back, so drift cancels).
  RUNS_M=${BENCH_RUNS_METRICS:-$(( RUNS < 6 ? (QUICK == 1 ? RUNS : 6) : RUNS ))}
  log "metrics on/off: W1-W3 copies without and with -o metrics_addr (x$RUNS_M)"
fi
fresh_med() { rm -rf "$RUN/med-fresh"; mkdir -p "$RUN/med-fresh"; head -c $((MED_N * MED_BYTES)) /dev/urandom | (cd "$RUN/med-fresh" && split -b "$MED_BYTES" -a 3 -d - f); }
fresh_small() { rm -rf "$RUN/small-fresh"; mkdir -p "$RUN/small-fresh"; head -c $((SMALL_N * SMALL_BYTES)) /dev/urandom | (cd "$RUN/small-fresh" && split -b "$SMALL_BYTES" -a 4 -d - f); }
# CPU seconds the mount daemon spent (all its threads, ns resolution from
# schedstat): what metrics cost, without the wall-clock noise of a shared
# machine. Threads that exit mid-copy are not counted (tokio keeps idle
# blocking threads for 10 s, longer than the gap between two samples).
daemon_cpu() {
  local s=0 ns _ f
  for f in /proc/"$1"/task/*/schedstat; do
    read -r ns _ <"$f" 2>/dev/null && s=$((s + ns))
  done
  echo "$s"
}
timed_copy() { # KEY MODE cp-args...: wall time as mwN_MODE, daemon CPU as mcN_MODE
  local w=$1 mode=$2 t0 t1 c0 c1; shift 2
  c0=$(daemon_cpu "$SMH_MOUNT_PID"); t0=$(now)
  T cp "$@"
  t1=$(now); c1=$(daemon_cpu "$SMH_MOUNT_PID")
  add "mw${w}_$mode" "$(elapsed "$t0" "$t1")"
  add "mc${w}_$mode" "$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
}
for r in $(seq 1 "$RUNS_M"); do
  if [ $((r % 2)) -eq 1 ]; then modes="off on"; else modes="on off"; fi
  for mode in $modes; do
    if [ "$mode" = on ]; then SMH_EXTRA="metrics_addr=127.0.0.1:$METRICS_PORT"; else SMH_EXTRA=""; fi
    mount_smh
    make_src
    timed_copy 1 "$mode" "$SRC" "$MNT_SMH/m1-$mode-r$r.bin"
    fresh_small; sync
    timed_copy 2 "$mode" -r "$RUN/small-fresh" "$MNT_SMH/m2-$mode-r$r"
    fresh_med; sync
    timed_copy 3 "$mode" -r "$RUN/med-fresh" "$MNT_SMH/m3-$mode-r$r"
    if [ "$mode" = on ]; then
      curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | grep -q '^smhfs_fuse_requests_total' \
        || log "WARNING: the metrics endpoint served no smhfs_fuse_requests_total"
    fi
    # The big file stays: W6 re-copies $SRC, whose content must be stored.
    rm -rf "$MNT_SMH/m2-$mode-r$r" "$MNT_SMH/m3-$mode-r$r"
  done
  for w in 1 2 3; do
    add "rw$w" "$(awk -v a="${R[mw${w}_on]##* }" -v b="${R[mw${w}_off]##* }" 'BEGIN { printf "%.4f", a / b }')"
    add "rc$w" "$(awk -v a="${R[mc${w}_on]##* }" -v b="${R[mc${w}_off]##* }" 'BEGIN { printf "%.4f", a / b }')"
  done
  log "  run $r: off W1 ${R[mw1_off]##* }s W2 ${R[mw2_off]##* }s W3 ${R[mw3_off]##* }s; on W1 ${R[mw1_on]##* }s W2 ${R[mw2_on]##* }s W3 ${R[mw3_on]##* }s"
  log "  run $r daemon CPU: off W1 ${R[mc1_off]##* }s W2 ${R[mc2_off]##* }s W3 ${R[mc3_off]##* }s; on W1 ${R[mc1_on]##* }s W2 ${R[mc2_on]##* }s W3 ${R[mc3_on]##* }s"
done
SMH_EXTRA=""
rm -rf "$RUN/med-fresh" "$RUN/small-fresh"
mount_smh

# ---------------------------------------------------------------- W6 -------
log "W6: re-copy of the ${BIG_MIB} MiB file under a new name (x$RUNS)"
# W6's limit (hashing 1 GiB in memory) reads nothing from disk and ran on an
# idle machine. W1-W3 wrote many gigabytes since $SRC was last read, so its
# pages may have been evicted: read it back in (as W1 had it, freshly
# written), and let the kernel finish writing out W1-W3's dirty pages.
cat "$SRC" >/dev/null
sync
for r in $(seq 1 "$RUNS"); do
  pb0=$(stat_top part_bytes); hits0=$(stat_top instant_upload_hits)
  t0=$(now); T cp "$SRC" "$MNT_SMH/w6-r$r.bin"; t1=$(now)
  add w6_smh "$(elapsed "$t0" "$t1")"
  pb1=$(stat_top part_bytes); hits1=$(stat_top instant_upload_hits)
  add w6_bytes $((pb1 - pb0)); add w6_hits $((hits1 - hits0))
  rm -f "$MNT_SMH/w6-r$r.bin"
  log "  run $r: smhfs ${R[w6_smh]##* }s, part bytes ${R[w6_bytes]##* }, instant-upload hits ${R[w6_hits]##* }"
done

# ---------------------------------------------------------------- W4 -------
log "W4: cold read of the ${BIG_MIB} MiB file (x$RUNS)"
for r in $(seq 1 "$RUNS"); do
  drop_caches
  tok=$(token)
  t0=$(now); T curl -fsS -L -o /dev/null "$URL/api/v1/file/$LIB/-/$BIGNAME?access_token=$tok"; t1=$(now)
  add w4_curl "$(elapsed "$t0" "$t1")"
  mount_smh; drop_caches
  t0=$(now); T cat "$MNT_SMH/$BIGNAME" >/dev/null; t1=$(now); add w4_smh "$(elapsed "$t0" "$t1")"
  mount_rc; drop_caches
  t0=$(now); T cat "$MNT_RC/$BIGNAME" >/dev/null; t1=$(now); add w4_rc "$(elapsed "$t0" "$t1")"
  log "  run $r: curl ${R[w4_curl]##* }s smhfs ${R[w4_smh]##* }s rclone ${R[w4_rc]##* }s"
done

# ---------------------------------------------------------------- W5 -------
log "W5: ls -l of $ENTRIES entries, cold after remount then warm (x$RUNS)"
ls_count() { T ls -l "$1" | wc -l; }
for r in $(seq 1 "$RUNS"); do
  mount_smh; drop_caches
  stats_reset
  t0=$(now); n=$(ls_count "$MNT_SMH/$W5_DIR"); t1=$(now)
  v=$(stat_req dir_list); add w5c_smh "$(elapsed "$t0" "$t1")"; add w5c_req "$v"
  [ "$n" -eq $((ENTRIES + 1)) ] || log "WARNING: smhfs ls -l printed $n lines, expected $((ENTRIES + 1))"
  stats_reset
  t0=$(now); n=$(ls_count "$MNT_SMH/$W5_DIR"); t1=$(now)
  v=$(stat_req dir_list); add w5w_smh "$(elapsed "$t0" "$t1")"; add w5w_req "$v"
  v=$(vm_hwm_kib "$SMH_MOUNT_PID"); add rss_w5_smh "$v"

  mount_rc; drop_caches
  t0=$(now); n=$(ls_count "$MNT_RC/$W5_DIR"); t1=$(now); add w5c_rc "$(elapsed "$t0" "$t1")"
  [ "$n" -eq $((ENTRIES + 1)) ] || log "WARNING: rclone ls -l printed $n lines, expected $((ENTRIES + 1))"
  t0=$(now); ls_count "$MNT_RC/$W5_DIR" >/dev/null; t1=$(now); add w5w_rc "$(elapsed "$t0" "$t1")"
  v=$(vm_hwm_kib "$RC_MOUNT_PID"); add rss_w5_rc "$v"
  log "  run $r: smhfs cold ${R[w5c_smh]##* }s (${R[w5c_req]##* } dir_list) warm ${R[w5w_smh]##* }s (${R[w5w_req]##* }); rclone cold ${R[w5c_rc]##* }s warm ${R[w5w_rc]##* }s"
done

unmount "$MNT_SMH"; unmount "$MNT_RC"

# ---------------------------------------------------------------- C1 -------
# Its own server and mount (default options, poll_interval=2): nothing else
# may send requests while the idle mount is counted.
C1_POLL=2
log "C1: change visibility and idle requests (about 2 minutes)"
declare -A C1=()
if C1_POLL=$C1_POLL SMHFS=$SMHFS "$REPO/scripts/bench-coherence.sh" "$RUN/c1" >"$LOGS/c1.env" 2>"$LOGS/c1.log"; then
  while IFS='=' read -r k v; do C1[$k]=$v; done <"$LOGS/c1.env"
else
  log "WARNING: C1 failed (log: $LOGS/c1.log)"
fi

[ "$SCALE" = 0 ] || run_scale

# ---------------------------------------------------------------- report ---

w1_smh=$(median w1_smh); w1_curl=$(median w1_curl); w1_rc=$(median w1_rc); w1_local=$(median w1_local)
w2_smh=$(median w2_smh); w2_local=$(median w2_local); w2_rc=$(median w2_rc)
w3_smh=$(median w3_smh); w3_local=$(median w3_local); w3_rc=$(median w3_rc)
w4_smh=$(median w4_smh); w4_curl=$(median w4_curl); w4_rc=$(median w4_rc)
w5c_smh=$(median w5c_smh); w5c_req=$(median w5c_req); w5c_rc=$(median w5c_rc)
w5w_smh=$(median w5w_smh); w5w_req=$(median w5w_req); w5w_rc=$(median w5w_rc)
w6_smh=$(median w6_smh); w6_bytes=$(maxof w6_bytes)
rss_w5_smh=$(maxof rss_w5_smh); rss_w5_rc=$(maxof rss_w5_rc)
RSS_LIMIT_KIB=$((64 * 1024))

report() {
  local mode="full"
  [ "$QUICK" = 1 ] && mode="quick (BENCH_QUICK=1: sizes reduced, targets are for the full sizes)"
  echo "## smhfs benchmark"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); smhfs $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'); $(rclone version 2>/dev/null | head -n 1)"
  echo "- machine: $(nproc) CPUs, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true), kernel $(uname -r), $(awk '/^MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
  echo "- mode: $mode; median of $RUNS run(s); big file ${BIG_MIB} MiB; W5 $ENTRIES ${W5_KIND} entries"
  [ "$DROP_OK" = 1 ] || echo "- WARNING: /proc/sys/vm/drop_caches was not writable; cold reads may be warm"
  echo
  echo "| workload | smhfs | limit | smhfs / limit | rclone (W1–W6) / best peer (W7–W10) | peer / smhfs | target | |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  echo "| W1 cp ${BIG_MIB} MiB file | $(f3 "$w1_smh") | curl PUT $(f3 "$w1_curl") | $(ratio "$w1_smh" "$w1_curl") | $(f3 "$w1_rc") | $(ratio "$w1_rc" "$w1_smh") | ≤ 1.2× curl PUT, ≥ 3× faster than rclone | $(met both "le '$w1_smh' '$(mul "${w1_curl:-0}" 1.2)'" "ge '$(ratio "$w1_rc" "$w1_smh" | tr -d '×')' 3") |"
  echo "| W2 cp -r ${SMALL_N} × 4 KiB | $(f3 "$w2_smh") | local cp+sync $(f3 "$w2_local") | $(ratio "$w2_smh" "$w2_local") | $(f3 "$w2_rc") | $(ratio "$w2_rc" "$w2_smh") | ≤ 1.0 s, ≥ 3× faster than rclone | $(met both "le '$w2_smh' 1.0" "ge '$(ratio "$w2_rc" "$w2_smh" | tr -d '×')' 3") |"
  echo "| W3 cp -r ${MED_N} × 1 MiB | $(f3 "$w3_smh") | local cp+sync $(f3 "$w3_local") | $(ratio "$w3_smh" "$w3_local") | $(f3 "$w3_rc") | $(ratio "$w3_rc" "$w3_smh") | ≤ 0.5 s | $(met le "$w3_smh" 0.5) |"
  echo "| W4 cold read ${BIG_MIB} MiB | $(f3 "$w4_smh") ($(mibs "$w4_smh")) | curl GET $(f3 "$w4_curl") ($(mibs "$w4_curl")) | $(ratio "$w4_curl" "$w4_smh") of curl throughput | $(f3 "$w4_rc") ($(mibs "$w4_rc")) | $(ratio "$w4_rc" "$w4_smh") | ≥ 0.8× curl GET throughput | $(met ge "$(ratio "$w4_curl" "$w4_smh" | tr -d '×')" 0.8) |"
  echo "| W5 cold ls -l ${ENTRIES} entries | $(f3 "$w5c_smh"), ${w5c_req:-n/a} dir_list | — | — | $(f3 "$w5c_rc") | $(ratio "$w5c_rc" "$w5c_smh") | ≤ 11 requests, ≤ 0.4 s | $(met both "le '$w5c_req' 11" "le '$w5c_smh' 0.4") |"
  echo "| W5 warm ls -l | $(f3 "$w5w_smh"), ${w5w_req:-n/a} dir_list | — | — | $(f3 "$w5w_rc") | $(ratio "$w5w_rc" "$w5w_smh") | 0 requests, ≤ 0.2 s | $(met both "le '$w5w_req' 0" "le '$w5w_smh' 0.2") |"
  echo "| W6 re-copy ${BIG_MIB} MiB (instant upload) | $(f3 "$w6_smh"), ${w6_bytes:-n/a} part bytes | hash ${BIG_MIB} MiB $(f3 "$HASH_TIME") | $(ratio "$w6_smh" "$HASH_TIME") | — | — | 0 part bytes, ≤ 1.2× hash time | $(met both "le '$w6_bytes' 0" "le '$w6_smh' '$(mul "$HASH_TIME" 1.2)'") |"
  for w in 1 2 3; do
    local off on
    local pr
    off=$(median "mw${w}_off"); on=$(median "mw${w}_on"); pr=$(median "rw$w")
    echo "| W$w metrics on (\`-o metrics_addr\`) | $(f3 "$on") | metrics off $(f3 "$off") | $(ratio "$on" "$off"); pairs $(fx "$pr") | — | — | ≤ 1.03× metrics off (median of the pairs) | $(met le "${pr:-}" 1.03) |"
    off=$(median "mc${w}_off"); on=$(median "mc${w}_on"); pr=$(median "rc$w")
    echo "| W$w metrics on, daemon CPU | $(f3 "$on") | metrics off $(f3 "$off") | $(ratio "$on" "$off"); pairs $(fx "$pr") | — | — | ≤ 1.03× metrics off (median of the pairs) | $(met le "${pr:-}" 1.03) |"
  done
  echo "| C1 change visible in the mount (50 overwrites via the API) | median $(f3 "${C1[c1_vis_median]:-}"), worst $(f3 "${C1[c1_vis_worst]:-}") | poll_interval $C1_POLL s | — | — | — | median ≤ poll_interval + 0.5 s | $(met le "${C1[c1_vis_median]:-}" "$(awk -v p="$C1_POLL" 'BEGIN { print p + 0.5 }')") |"
  echo "| C1 idle mount, 60 s | ${C1[c1_idle_req_per_min]:-n/a} requests/min (${C1[c1_idle_req_per_poll]:-n/a} per poll) | — | — | — | — | ≤ 1 request per poll interval | $(met le "${C1[c1_idle_req_per_poll]:-}" 1) |"
  echo "| RSS peak during W1 | $(mib "$RSS_W1_SMH") | — | — | $(mib "$RSS_W1_RC") | $(ratio "$RSS_W1_RC" "$RSS_W1_SMH") | ≤ 64 MiB | $(met le "$RSS_W1_SMH" "$RSS_LIMIT_KIB") |"
  echo "| RSS peak during W5 | $(mib "$rss_w5_smh") | — | — | $(mib "$rss_w5_rc") | $(ratio "$rss_w5_rc" "$rss_w5_smh") | ≤ 64 MiB | $(met le "$rss_w5_smh" "$RSS_LIMIT_KIB") |"
  [ "$SCALE" = 0 ] || scale_rows
  echo
  echo "Limits measured in the same run (medians): local cp+sync of the ${BIG_MIB} MiB file $(f3 "$w1_local") (smhfs W1 = $(ratio "$w1_smh" "$w1_local") of it); curl PUT $(f3 "$w1_curl") ($(mibs "$w1_curl")); curl GET $(f3 "$w4_curl"); hash throughput (sha256 chain + crc64, cargo bench) $(awk -v t="$HASH_BPS" 'BEGIN { printf "%.0f MiB/s", t / 1048576 }')."
  echo "Part bytes smhfs sent per run (checks that W1–W3 really uploaded): W1 [$(csv w1_bytes)] (file $BIG_BYTES), W2 [$(csv w2_bytes)] (tree $((SMALL_N * SMALL_BYTES))), W3 [$(csv w3_bytes)] (tree $((MED_N * MED_BYTES))); instant-upload hits per W6 run: [$(csv w6_hits)]."
  echo
  echo "Runs (seconds): $(for k in w1_smh w1_curl w1_rc w2_smh w2_rc w3_smh w3_rc w4_smh w4_curl w4_rc w5c_smh w5w_smh w5c_rc w5w_rc w6_smh mw1_off mw1_on mw2_off mw2_on mw3_off mw3_on mc1_off mc1_on mc2_off mc2_on mc3_off mc3_on rw1 rw2 rw3 rc1 rc2 rc3; do printf '%s=[%s] ' "$k" "$(csv $k)"; done)"
  echo
  echo "Limits: curl PUT = the object PUT of a simple-upload ticket alone (begin and confirm not timed); curl GET = \`curl -L\` of the download URL (302 + object GET) after dropping the page cache; local cp+sync = \`cp\` to a directory on the same disk followed by \`sync\`; hash = the big file's size divided by the \`cargo bench --bench hash\` throughput of smh_hash/sha256_chain_plus_crc64."
  echo
  echo "rclone: \`rclone mount --vfs-cache-mode writes --vfs-write-back 0s\` of a loopback \`rclone serve webdav\`; its writes are timed until the backing directory has every byte. smhfs: \`smhfs mount\` (sync mode) of a loopback \`smhfs serve\`. Ratios > 1 in \"peer / smhfs\" mean smhfs is faster."
  if [ "$SCALE" = 1 ]; then echo; scale_notes; fi
}
report | tee "$BENCH_DIR/results.md"
# Medians, one KEY=SECONDS per line, for scripts/bench-compare.sh.
for k in w1_smh w2_smh w3_smh w4_smh w5c_smh w5w_smh w6_smh mw1_off mw1_on mw2_off mw2_on mw3_off mw3_on mc1_off mc1_on mc2_off mc2_on mc3_off mc3_on rw1 rw2 rw3 rc1 rc2 rc3; do
  echo "$k=$(median $k)"
done >"$BENCH_DIR/results.env"
echo "rss_w1_kib=$RSS_W1_SMH" >>"$BENCH_DIR/results.env"
echo "rss_w5_kib=$rss_w5_smh" >>"$BENCH_DIR/results.env"
echo "c1_vis_median=${C1[c1_vis_median]:-}" >>"$BENCH_DIR/results.env"
echo "c1_idle_req_per_poll=${C1[c1_idle_req_per_poll]:-}" >>"$BENCH_DIR/results.env"
for k in w7_smh_s w7_smh_hwm_kib w8_smh_s w8_smh_peak_above_idle_kib w9_smh_iops w9_smh_seq4_mibs w10_smh_cache_peak; do
  [ -z "${S[$k]:-}" ] || echo "$k=${S[$k]}"
done >>"$BENCH_DIR/results.env"
log "results written to $BENCH_DIR/results.md"
