#!/usr/bin/env bash
# scripts/bench-coherence.sh — C1 of the benchmark (issue 13): how soon a
# change made through the API shows in a mount, and what an idle mount costs.
#
#   SMHFS=target/release/smhfs scripts/bench-coherence.sh OUTDIR
#
# Starts its own `smhfs serve` (loopback, --test-endpoints) and `smhfs mount`
# (default options but `poll_interval=$C1_POLL`), then
#   1. $C1_CHANGES times: overwrites one file through the API (begin, object
#      PUT, confirm with curl; each version has another size) and times from
#      the confirm's answer until `stat` through the mount, polled every
#      50 ms, shows the new size;
#   2. leaves the mount idle for $C1_IDLE seconds and counts every request
#      the server answered (/__stats).
# Prints KEY=VALUE lines (seconds, requests) on stdout; logs in OUTDIR.
# Environment: SMHFS (binary, default target/release/smhfs), C1_CHANGES (50),
# C1_IDLE (60), C1_POLL (2). Everything it starts is stopped on exit.
set -euo pipefail
shopt -s inherit_errexit

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMHFS=${SMHFS:-$REPO/target/release/smhfs}
OUT=${1:?usage: bench-coherence.sh OUTDIR}
CHANGES=${C1_CHANGES:-50}
IDLE=${C1_IDLE:-60}
POLL=${C1_POLL:-2}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MNT=$OUT/mnt
SERVER_PID=""; MOUNT_PID=""

log() { echo "[bench-c1 $(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }
cleanup() {
  if is_mounted "$MNT"; then umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true; fi
  for p in $MOUNT_PID $SERVER_PID; do
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$OUT/server-data" "$OUT/cache"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_for() { # wait_for SECONDS WHAT CMD...
  local deadline=$(( $(date +%s) + $1 )) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$what: not ready (logs in $OUT)"
    sleep 0.1
  done
}

( umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/secret" )
"$SMHFS" serve --listen 127.0.0.1:0 --data "$OUT/server-data" --secret-file "$OUT/secret" \
  --test-endpoints >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
wait_for 20 "smhfs serve" grep -q 'listening on http' "$OUT/server.log"
URL=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$OUT/server.log" | head -n 1)
URL=${URL%/}; LIB=smhlocal
TOKEN=$(curl -fsS -G "$URL/api/v1/token" --data-urlencode "library_id=$LIB" \
  --data-urlencode "library_secret=$(cat "$OUT/secret")" --data-urlencode "grant=admin" | jq -r .accessToken)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || die "no access token"

put_file() { # put_file NAME BYTES: a simple upload through the API, overwriting
  local begin domain opath ckey objurl
  local -a hdrs=()
  begin=$(curl -fsS -X PUT -H 'Content-Type: application/json' -d '{}' \
    "$URL/api/v1/file/$LIB/-/$1?access_token=$TOKEN&filesize=$2&conflict_resolution_strategy=overwrite")
  domain=$(jq -r .domain <<<"$begin"); opath=$(jq -r .path <<<"$begin"); ckey=$(jq -r .confirmKey <<<"$begin")
  while IFS= read -r h; do hdrs+=(-H "$h"); done < <(jq -r '.headers // {} | to_entries[] | "\(.key): \(.value)"' <<<"$begin")
  case $domain in http://* | https://*) objurl=$domain$opath ;; *) objurl=http://$domain$opath ;; esac
  head -c "$2" /dev/urandom | curl -fsS -X PUT --data-binary @- -H 'Expect:' "${hdrs[@]}" -o /dev/null "$objurl"
  curl -fsS -X POST -H 'Content-Type: application/json' -d '{}' \
    "$URL/api/v1/file/$LIB/-/$ckey?confirm&access_token=$TOKEN" >/dev/null
}

put_file c1.bin 1000
( umask 077; printf 'library_secret=%s\n' "$(cat "$OUT/secret")" >"$OUT/credentials" )
mkdir -p "$MNT" "$OUT/cache"
"$SMHFS" mount "$LIB:-" "$MNT" -o "endpoint=$URL,credentials=$OUT/credentials,cache_dir=$OUT/cache,poll_interval=$POLL" \
  -f >"$OUT/mount.log" 2>&1 &
MOUNT_PID=$!
wait_for 20 "smhfs mount" is_mounted "$MNT"
[ "$(stat -c %s "$MNT/c1.bin")" = 1000 ] || die "the mount does not show c1.bin"
sleep "$POLL"

log "C1: $CHANGES overwrites through the API (poll_interval=$POLL)"
: >"$OUT/visibility.txt"
for i in $(seq 1 "$CHANGES"); do
  size=$((1000 + i))
  put_file c1.bin "$size"
  t0=$(now); deadline=$(awk -v t="$t0" 'BEGIN { printf "%d", t + 60 }')
  until [ "$(stat -c %s "$MNT/c1.bin" 2>/dev/null)" = "$size" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "change $i not visible after 60 s"
    sleep 0.05
  done
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >>"$OUT/visibility.txt"
done
median=$(sort -g "$OUT/visibility.txt" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
worst=$(sort -g "$OUT/visibility.txt" | tail -n 1)

log "C1: idle mount for ${IDLE} s"
curl -fsS -X POST "$URL/__stats/reset" >/dev/null
sleep "$IDLE"
# dir_list_not_modified is a kind of dir_list, already counted there.
idle_req=$(curl -fsS "$URL/__stats" | jq '[.requests | to_entries[] | select(.key != "dir_list_not_modified") | .value] | add')
echo "c1_vis_median=$median"
echo "c1_vis_worst=$worst"
echo "c1_idle_requests=$idle_req"
awk -v n="$idle_req" -v s="$IDLE" -v p="$POLL" 'BEGIN { printf "c1_idle_req_per_min=%.1f\nc1_idle_req_per_poll=%.2f\n", n * 60 / s, n * p / s }'
