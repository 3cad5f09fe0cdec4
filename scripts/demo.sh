#!/usr/bin/env bash
# The main job on a fresh machine: installs what is needed, builds audiofp in release mode, then
#   - with no argument: opens the desktop app (drop a folder to index it, drop a clip or press
#     Listen to identify);
#   - with --cli: runs `audiofp demo` in the terminal (generated songs are indexed, then noisy
#     clips of them are identified), no music or display needed;
#   - with MUSIC_DIR [CLIP...]: indexes your music into the default index, then identifies
#     each CLIP.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked
bin=target/release/audiofp
if [ $# -eq 0 ]; then
  exec "$bin"
fi
if [ "$1" = "--cli" ]; then
  exec "$bin" demo
fi
music=$1; shift
"$bin" index "$music" || true
for clip in "$@"; do
  "$bin" identify "$clip" || true
done
"$bin" stats
