#!/usr/bin/env bash
# Installs the Debian packages audiofp needs to build and test (run as root, or with sudo).
#   build: gcc + libc6-dev (C code of the bundled SQLite and of mimalloc), pkg-config +
#          libasound2-dev (cpal's ALSA backend, for the desktop app's microphone)
#   tests: flac, lame, vorbis-tools, ffmpeg encode the synthetic test songs into each format;
#          sox is used by the corpus builder; pulseaudio + pulseaudio-utils + libasound2-plugins
#          give the microphone test a fake microphone (scripts/fake-mic.sh).
set -euo pipefail
packages=(gcc libc6-dev pkg-config libasound2-dev flac lame vorbis-tools ffmpeg sox pulseaudio pulseaudio-utils libasound2-plugins)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
