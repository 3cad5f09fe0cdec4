#!/usr/bin/env bash
# Installs the Debian packages audiofp needs to build and test (run as root, or with sudo).
#   set-up: curl + ca-certificates (rustup's installer, when Rust is missing)
#   build: gcc + libc6-dev (C code of the bundled SQLite and of mimalloc), pkg-config +
#          libasound2-dev (cpal's ALSA backend, for the desktop app's microphone)
#   tests: flac, lame, vorbis-tools, ffmpeg encode the synthetic test songs into each format;
#          sox is used by the corpus builder; pulseaudio + pulseaudio-utils + libasound2-plugins
#          give the microphone test a fake microphone (scripts/fake-mic.sh).
#   --gui: also what the desktop app loads at run time on a desktop that lacks it (a minimal
#          or server install): OpenGL/EGL, the X11 and Wayland client libraries winit opens,
#          libdbus (the file dialog through the desktop portal) and zenity (the file dialog
#          when there is no portal). A desktop Debian/Ubuntu has all of them already.
set -euo pipefail
gui=0
if [ "${1:-}" = "--gui" ]; then gui=1; fi

packages=(curl ca-certificates gcc libc6-dev pkg-config libasound2-dev flac lame vorbis-tools ffmpeg sox pulseaudio pulseaudio-utils libasound2-plugins)
if [ "$gui" -eq 1 ]; then
  packages+=(libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0 libxcursor1 libxi6 libxrandr2 libx11-xcb1
             libwayland-client0 libwayland-egl1 libdbus-1-3 zenity)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Rust comes from rustup, not apt (Debian's rustc is older than the 1.95 the crate needs).
# Checked after the apt packages, so that curl (which rustup's installer needs) is there.
need_rust="1.95"
rustup_cmd="curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\""
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed. audiofp needs Rust $need_rust or newer; install it with rustup:" >&2
  echo "  $rustup_cmd" >&2
  if [ -n "${SUDO_USER:-}" ]; then
    echo "  (this ran under sudo, whose PATH lacks your own ~/.cargo/bin: run the script as yourself;" >&2
    echo "   it calls sudo for the apt packages)" >&2
  fi
  exit 1
fi
have_rust=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V | head -n1)" != "$need_rust" ]; then
  if command -v rustup >/dev/null 2>&1; then
    echo "error: Rust $have_rust is too old; audiofp needs $need_rust or newer: rustup update stable" >&2
  else
    echo "error: Rust $have_rust (not from rustup) is too old; audiofp needs $need_rust or newer. Install it with rustup:" >&2
    echo "  $rustup_cmd" >&2
  fi
  exit 1
fi
