#!/usr/bin/env bash
# A fake microphone for tests and CI: a user-level PulseAudio with a null sink whose monitor is
# the default input. Whatever is played to the default output (paplay) is what cpal records
# through ALSA's "default" device (the pulseaudio package routes ALSA to Pulse).
#
# Needs: pulseaudio pulseaudio-utils libasound2-plugins (Debian). No kernel audio is needed.
#
#   scripts/fake-mic.sh run CMD [ARGS...]   start, run CMD with AUDIOFP_FAKE_MIC=1, stop;
#                                           exits with CMD's status (what CI uses), e.g.
#                                           scripts/fake-mic.sh run cargo test --test integration gui_mic::
#   eval "$(scripts/fake-mic.sh start)"      start and export the environment into this shell
#   scripts/fake-mic.sh stop                 stop it
set -euo pipefail

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
state_dir="$XDG_RUNTIME_DIR/audiofp-fake-mic"

log() { echo "fake-mic: $*" >&2; }

start() {
  for tool in pulseaudio pactl pacat; do
    command -v "$tool" >/dev/null || { log "$tool is missing (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)"; exit 1; }
  done
  mkdir -p "$state_dir"
  if pactl info >/dev/null 2>&1; then
    log "a PulseAudio server is already running; reusing it"
    rm -f "$state_dir/started-daemon"
  else
    # -n: no default.pa (no hardware detection, no suspend-on-idle).
    pulseaudio --daemonize=yes --exit-idle-time=-1 -n \
      --load="module-native-protocol-unix" \
      --load="module-null-sink sink_name=vsink rate=48000 channels=2" \
      --log-target=file:"$state_dir/pulse.log" 2>/dev/null
    for _ in $(seq 100); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
    pactl info >/dev/null 2>&1 || { log "PulseAudio did not start; see $state_dir/pulse.log"; exit 1; }
    touch "$state_dir/started-daemon"
  fi
  pactl list short sinks | grep -q vsink \
    || pactl load-module module-null-sink sink_name=vsink rate=48000 channels=2 >/dev/null
  pactl set-default-sink vsink
  pactl set-default-source vsink.monitor
  # Without a stream playing, the null sink runs in 2 s blocks and new recordings start late
  # (their first audio is lost): keep one silent stream open.
  nohup pacat --playback --latency-msec=20 --format=s16le --rate=48000 --channels=2 /dev/zero \
    >/dev/null 2>&1 &
  echo $! > "$state_dir/keepalive.pid"
  sleep 2.5   # the keepalive itself may wait for one 2 s block
  log "ready: default input = vsink.monitor (play into it with paplay)"
  echo "export XDG_RUNTIME_DIR='$XDG_RUNTIME_DIR'"
  echo "export AUDIOFP_FAKE_MIC=1"
}

stop() {
  if [ -f "$state_dir/keepalive.pid" ]; then
    kill "$(cat "$state_dir/keepalive.pid")" 2>/dev/null || true
    rm -f "$state_dir/keepalive.pid"
  fi
  # Only a daemon this script started is stopped.
  if [ -f "$state_dir/started-daemon" ]; then
    pulseaudio --kill 2>/dev/null || true
    rm -f "$state_dir/started-daemon"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  run)
    shift
    [ $# -gt 0 ] || { log "usage: $0 run CMD [ARGS...]"; exit 2; }
    start >/dev/null
    trap stop EXIT
    export AUDIOFP_FAKE_MIC=1
    "$@"
    ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
