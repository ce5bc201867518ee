# scripts/lib.sh — sourced by the A/B bench scripts (bench-ab.sh,
# bench-instr.sh): a bounded wait, and one `smhfs serve` plus mount of a
# given build in a directory of its own.

# wait_until SECONDS CMD...: polls CMD until it succeeds, at most SECONDS.
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "${0##*/}: timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

[ -v SERVE_PREFIX ] || SERVE_PREFIX=()
[ -v MOUNT_PREFIX ] || MOUNT_PREFIX=()

# smh_start BIN DIR: a fresh `BIN serve` on DIR/data and `BIN mount` of it on
# DIR/mnt. The arrays SERVE_PREFIX and MOUNT_PREFIX (e.g. a valgrind command
# line) go before either command, SERVE_EXTRA's words after serve's flags;
# WAIT bounds each wait (default 20 s). Pids: DIR/server.pid, DIR/mount.pid.
smh_start() {
  local bin=$1 d=$2 url lib
  ( umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/secret" )
  # As in bench.sh: older builds take the secret on argv, some lack --part-etag.
  local -a flags=(--secret "$(cat "$d/secret")")
  if "$bin" serve --help 2>/dev/null | grep -q -- --test-endpoints; then
    flags=(--secret-file "$d/secret" --test-endpoints)
    "$bin" serve --help 2>/dev/null | grep -q -- --part-etag && flags+=(--part-etag crc)
  fi
  # shellcheck disable=SC2086
  "${SERVE_PREFIX[@]}" "$bin" serve --listen 127.0.0.1:0 --data "$d/data" "${flags[@]}" ${SERVE_EXTRA:-} \
    >"$d/server.log" 2>&1 &
  echo $! >"$d/server.pid"
  wait_until "${WAIT:-20}" grep -q 'listening on http' "$d/server.log"
  url=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$d/server.log" | head -n 1); url=${url%/}
  lib=$(sed -n 's/^\(.*[[:space:]]\)\{0,1\}library: *\([^[:space:]]*\).*/\2/p' "$d/server.log" | head -n 1)
  ( umask 077; printf 'library_secret=%s\n' "$(cat "$d/secret")" >"$d/creds" )
  echo "$url" >"$d/url"; echo "${lib:-smhlocal}" >"$d/library"
  smh_mount "$bin" "$d"
}

# smh_mount BIN DIR: `BIN mount` of DIR's server on DIR/mnt (after
# smh_start; again after smh_unmount, for a cold mount).
smh_mount() {
  local bin=$1 d=$2
  mkdir -p "$d/mnt" "$d/cache"
  "${MOUNT_PREFIX[@]}" "$bin" mount "$(cat "$d/library"):-" "$d/mnt" \
    -o "endpoint=$(cat "$d/url"),credentials=$d/creds,cache_dir=$d/cache" -f >>"$d/mount.log" 2>&1 &
  echo $! >"$d/mount.pid"
  wait_until "${WAIT:-20}" mountpoint -q "$d/mnt"
}

# smh_unmount DIR: unmounts DIR/mnt and waits (bounded) for the daemon.
smh_unmount() {
  local d=$1 p
  p=$(cat "$d/mount.pid")
  fusermount3 -u "$d/mnt" 2>/dev/null || fusermount3 -uz "$d/mnt" 2>/dev/null || true
  wait_until 20 bash -c "! kill -0 $p" || kill -9 "$p" 2>/dev/null || true
}

# smh_stop DIR: unmounts, stops both processes (bounded) and removes DIR.
smh_stop() {
  local d=$1 p
  [ -d "$d" ] || return 0
  fusermount3 -u "$d/mnt" 2>/dev/null || fusermount3 -uz "$d/mnt" 2>/dev/null || true
  for p in $(cat "$d/mount.pid" "$d/server.pid" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  for p in $(cat "$d/mount.pid" "$d/server.pid" 2>/dev/null); do
    wait_until 10 bash -c "! kill -0 $p" || kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$d"
}
