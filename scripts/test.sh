#!/usr/bin/env bash
# The whole test suite: unit tests, the client and server against a real
# `smhfs serve`, and real FUSE mounts. Needs root (or FUSE rights) and /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --all-targets
cargo test
