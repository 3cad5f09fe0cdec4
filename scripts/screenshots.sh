#!/usr/bin/env bash
# Screenshots of the desktop app for the README, taken from the release binary under Xvfb:
#   assets/listen.png     the Listen page
#   assets/listening.png  listening to the (fake) microphone: level meter, live spectrogram
#   assets/results.png    a match: card, clip-vs-song scatter, offset histogram, history
#   assets/library.png    the library table
#   assets/song.png       one song (a mix): spectrogram with its fingerprint peaks, the songs
#                         heard in it
#   assets/settings.png   preferences
#   assets/indexing.png   the library while 5 hours of audio are being indexed
# and the frame-time statistics of the app while it indexes (AUDIOFP_FRAME_STATS=1), printed
# at the end and kept in assets/frame-stats.txt.
#
# Needs: xvfb xauth x11-apps netpbm xdotool ffmpeg sox; for the listening shots also pulseaudio
# pulseaudio-utils libasound2-plugins (scripts/fake-mic.sh). Without a fake microphone the
# results shot comes from opening a clip file instead (also with SCREENSHOT_NO_MIC=1).
#
#   scripts/screenshots.sh            (AUDIOFP_BIN=path/to/audiofp to use another build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${AUDIOFP_BIN:-$root/target/release/audiofp}
out=${SCREENSHOT_DIR:-$root/assets}
if [ ! -x "$bin" ]; then
  cargo build --release --bin audiofp
fi
bin=$(realpath "$bin")
mkdir -p "$out"
out=$(realpath "$out")
for tool in xvfb-run xdotool xwd xwdtopnm pnmtopng ffmpeg sox; do
  command -v "$tool" >/dev/null || { echo "screenshots: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d /tmp/audiofp-shots.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
# A private home: eframe keeps its settings there, so every run starts from the defaults.
export HOME="$work/home" XDG_DATA_HOME="$work/home/.local/share" XDG_CONFIG_HOME="$work/home/.config"
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME"

echo "1. generating a small tagged library and a large one to index"
"$bin" demo --dir "$work/demo" --songs 16 >/dev/null
titles=("Harbour Lights" "Copper Lanterns" "Night Ferry" "Paper Satellites" "Glass Orchard"
  "Slow Comet" "Velvet Engine" "Northbound" "Salt and Static" "Lantern Street" "Quiet Machines"
  "Amber Tide" "Blue Meridian" "Wild Parade" "Tin Roof Rain" "Low Orbit")
artists=("The Night Ferries" "Mara Holm" "Kite District" "Olu & the Wires" "Mara Holm"
  "Saltwater Radio" "Kite District" "June Avery" "The Night Ferries" "Olu & the Wires"
  "June Avery" "Saltwater Radio" "Mara Holm" "Kite District" "June Avery" "The Night Ferries")
mkdir -p "$work/music"
for i in $(seq 1 16); do
  title=${titles[$((i - 1))]}
  artist=${artists[$((i - 1))]}
  ffmpeg -loglevel error -y -i "$work/demo/songs/Demo song $i.wav" \
    -metadata title="$title" -metadata artist="$artist" -metadata album="Synthetic Sessions" \
    -c:a flac "$work/music/$(printf %02d "$i") $title.flac"
done
"$bin" --db "$work/index.db" index "$work/music" >/dev/null
# A DJ mix of songs 1 and 2, indexed a second later so that it heads the table (newest
# first): its page (assets/song.png) names the songs heard in it.
sleep 1.1
mkdir -p "$work/mixes"
ffmpeg -loglevel error -y -i "$work/music/01 Harbour Lights.flac" -i "$work/music/02 Copper Lanterns.flac" \
  -filter_complex "[0:a][1:a]concat=n=2:v=0:a=1" -metadata title="Night Mix" \
  -metadata artist="DJ Lantern" -metadata album="Mixes" -c:a flac "$work/mixes/Night Mix.flac"
"$bin" --db "$work/index.db" index "$work/mixes" >/dev/null
# The clip the demo made: 5 s of song 9 ("Salt and Static") from 0:12.5, stereo for paplay.
ffmpeg -loglevel error -y -i "$work/demo/clips/clip1.wav" -ac 2 "$work/clip-stereo.wav"
# And 5 s of a song that is not in the library (the listening shot keeps listening).
ffmpeg -loglevel error -y -i "$work/demo/clips/clip4.wav" -ac 2 "$work/unknown-stereo.wav"
# A bigger job for the indexing shot and the frame-time figure: 30 ten-minute FLAC files
# (the 20 songs of another demo in rotated orders, so every file is different), 5 hours.
"$bin" demo --dir "$work/big" --songs 20 >/dev/null
mkdir -p "$work/big/long"
mapfile -t parts < <(ls "$work/big/songs"/*.wav)
for k in $(seq 0 29); do
  rotated=("${parts[@]:k%20}" "${parts[@]:0:k%20}")
  if [ "$k" -ge 20 ]; then mapfile -t rotated < <(printf '%s\n' "${rotated[@]}" | tac); fi
  sox "${rotated[@]}" -c 1 -r 22050 "$work/big/long/mix $((k + 1)).flac"
done
rm -rf "$work/big/songs" "$work/big/clips"

fake_mic=0
if [ -z "${SCREENSHOT_NO_MIC:-}" ] && command -v pulseaudio >/dev/null && command -v paplay >/dev/null; then
  eval "$(bash "$root/scripts/fake-mic.sh" start)"
  fake_mic=1
  trap 'bash "$root/scripts/fake-mic.sh" stop; cleanup' EXIT
fi

cat >"$work/session.sh" <<EOF
set -euo pipefail
shot() { sleep "\${2:-1.5}"; xwd -root -silent | xwdtopnm 2>/dev/null | pnmtopng >"$out/\$1.png"; echo "   $out/\$1.png"; }
click() { xdotool mousemove "\$1" "\$2" click 1; }
# The window sits at (0,0) (Xvfb has no window manager): screen = window coordinates.
# Navigation: Listen (100,106), Library (100,150), then Song (once open), Results, Settings.
wait_window() { for _ in \$(seq 100); do xdotool search --name '^audiofp\$' >/dev/null 2>&1 && return; sleep 0.2; done; echo "no window" >&2; exit 1; }

echo "2. the app on the tagged library"
"$bin" --db "$work/index.db" gui 2>"$work/app.log" & app=\$!
wait_window
sleep 3
shot listen
if [ "$fake_mic" = 1 ]; then
  # Press Listen while music that is not in the library plays into the fake microphone...
  click 690 196
  paplay --latency-msec=20 "$work/unknown-stereo.wav" &
  xdotool mousemove 1175 700
  shot listening 3.5
  # ...stop, then listen to a clip of a known song.
  click 690 196
  sleep 2
  click 690 196
  sleep 0.3
  paplay --latency-msec=20 "$work/clip-stereo.wav" &
  xdotool mousemove 1175 700
  shot results 5
fi
click 100 150
shot library
# Double-click the first row of the table: its song page (a "Song" entry joins the navigation).
xdotool mousemove 520 145 click --repeat 2 --delay 80 1
xdotool mousemove 1175 700
shot song 3
click 100 282
shot settings
kill \$app; wait \$app || true
if [ "$fake_mic" != 1 ]; then
  "$bin" --db "$work/index.db" gui "$work/demo/clips/clip1.wav" 2>>"$work/app.log" & app=\$!
  wait_window
  shot results 5
  kill \$app; wait \$app || true
fi

echo "3. indexing 30 files (5 h of audio) with frame statistics on"
AUDIOFP_FRAME_STATS=1 "$bin" --db "$work/big.db" gui "$work/big/long" 2>"$work/stats.log" & app=\$!
wait_window
xdotool mousemove 1175 700
shot indexing 6
for _ in \$(seq 600); do grep -q "whole run" "$work/stats.log" 2>/dev/null && break; sleep 0.5; done
kill \$app; wait \$app || true
EOF
xvfb-run -a -s "-screen 0 1180x760x24" bash "$work/session.sh"

echo "4. frame time while indexing (ui() = the app's frame code; interval = frame to frame)"
grep "frame stats" "$work/stats.log" | tee "$out/frame-stats.txt" || echo "   (no statistics logged)"
