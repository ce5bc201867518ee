#!/usr/bin/env bash
# Installs smhfs as a filesystem type (idempotent; needs root):
#   /usr/local/bin/smhfs         the release binary (built first when missing
#                                or older than the sources)
#   /sbin/mount.fuse.smhfs       -> /usr/local/bin/smhfs, the helper util-linux
#                                mount(8) runs for `-t fuse.smhfs` and fstab lines
# Options: --bin PATH   install PATH instead of target/release/smhfs (no build)
#          --prefix DIR install into DIR/bin (default /usr/local)
#          --sbin DIR   put the helper link in DIR (default /sbin)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="" prefix=/usr/local sbin=/sbin
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --sbin) sbin=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$bin" ]; then
  bin=target/release/smhfs
  # Rebuild when the binary is missing or any source is newer than it.
  if [ ! -x "$bin" ] || [ -n "$(find src Cargo.toml Cargo.lock -newer "$bin" -print -quit)" ]; then
    cargo build --release
  fi
fi
[ -x "$bin" ] || { echo "install.sh: $bin is not an executable" >&2; exit 1; }
dest=$prefix/bin/smhfs
mkdir -p "$prefix/bin" "$sbin"
if ! cmp -s "$bin" "$dest" 2>/dev/null; then
  # Copy then rename: a running daemon keeps its old inode.
  install -m 0755 "$bin" "$dest.new"
  mv -f "$dest.new" "$dest"
  echo "installed $dest"
fi
helper=$sbin/mount.fuse.smhfs
if [ "$(readlink "$helper" 2>/dev/null)" != "$dest" ]; then
  ln -sfn "$dest" "$helper"
  echo "linked $helper -> $dest"
fi
# mount(8) finds the helper only if FUSE is there to mount with.
command -v fusermount3 >/dev/null 2>&1 || echo "install.sh: note: fuse3 is not installed (apt-get install fuse3)" >&2
"$dest" --version
