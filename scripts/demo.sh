#!/usr/bin/env bash
# The main job, end to end on one machine: build smhfs, start the embedded
# SMH-compatible server (`smhfs serve`) on 127.0.0.1, mount its space, copy
# files in, list them, read them back and compare, then unmount and show
# what the server stored. Needs root (or FUSE rights) and /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release
bin=$PWD/target/release/smhfs

work=$(mktemp -d /tmp/smhfs-demo.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt" "$work/cache"
server_pid=""
mount_pid=""
cleanup() {
  if mountpoint -q "$mnt" 2>/dev/null; then fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" || true; fi
  [ -n "$mount_pid" ] && kill "$mount_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== starting the embedded SMH server"
# The secret goes through a private file, never argv or the server's output.
( umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/secret" )
secret=$(cat "$work/secret")
"$bin" serve --listen 127.0.0.1:0 --data "$work/server" --secret-file "$work/secret" \
  --test-endpoints >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
for _ in $(seq 100); do grep -q '^listening on ' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/^listening on //p' "$work/serve.out")
[ -n "$endpoint" ] || { cat "$work/serve.err"; echo "server did not start" >&2; exit 1; }
library=$(sed -n 's/^library: //p' "$work/serve.out")
echo "   $endpoint  library=$library"

echo "== mounting $library:- on $mnt"
( umask 077; printf 'library_secret=%s\n' "$secret" >"$work/credentials" )
"$bin" mount "$library:-" "$mnt" -f \
  -o "endpoint=$endpoint,credentials=$work/credentials,cache_dir=$work/cache" 2>"$work/mount.log" &
mount_pid=$!
for _ in $(seq 200); do mountpoint -q "$mnt" && break; sleep 0.1; done
mountpoint -q "$mnt" || { cat "$work/mount.log"; echo "mount did not come up" >&2; exit 1; }
grep " $mnt " /proc/mounts

echo "== copying files in"
mkdir -p "$work/src/photos"
head -c 5000000 /dev/urandom >"$work/src/photos/beach.jpg"
head -c 123 /dev/urandom >"$work/src/photos/small.png"
echo "hello from smhfs" >"$work/src/notes.txt"
cp -r "$work/src/." "$mnt/"
cp "$work/src/photos/beach.jpg" "$mnt/photos/beach-copy.jpg"   # same content: instant upload

echo "== listing the mount"
ls -lR "$mnt"

echo "== reading back"
diff -r "$work/src" "$mnt" --exclude=beach-copy.jpg && cmp "$work/src/photos/beach.jpg" "$mnt/photos/beach-copy.jpg"
cat "$mnt/notes.txt"
echo "   contents identical"

echo "== what the server saw"
curl -s "$endpoint/__stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); r=s["requests"]; print("   uploads begun %d, confirmed %d, instant-upload hits %d, part bytes %d, listings %d" % (r["upload_begin"], r["upload_confirm"], s["instant_upload_hits"], s["part_bytes"], r["dir_list"]))'

fusermount3 -u "$mnt"
wait "$mount_pid" 2>/dev/null || true
mount_pid=""
echo "== unmounted; demo done"
