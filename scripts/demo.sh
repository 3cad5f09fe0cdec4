#!/usr/bin/env bash
# The main job on a fresh machine: installs what is needed, builds audiofp in release mode, then
#   - with no argument: opens the desktop app (drop a folder to index it, drop a clip or press
#     Listen to identify); without a display, runs the terminal demo below instead;
#   - with --cli: runs `audiofp demo` in the terminal (generated songs are indexed, then noisy
#     clips of them are identified), no music or display needed;
#   - with MUSIC_DIR [CLIP...]: indexes your music into the default index, then identifies
#     each CLIP.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ] && { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }; then
  bash scripts/install-deps.sh --gui   # the desktop app's run-time libraries too
else
  bash scripts/install-deps.sh
fi
cargo build --release --locked
bin=target/release/audiofp
if [ $# -eq 0 ]; then
  if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    echo "note: no display (neither DISPLAY nor WAYLAND_DISPLAY is set), so the desktop app cannot open;" >&2
    echo "      running the terminal demo instead (bash scripts/demo.sh --cli)" >&2
    exec "$bin" demo
  fi
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
