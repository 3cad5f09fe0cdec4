#!/usr/bin/env python3
"""How evenly an index's landmark keys spread: what a fingerprint change does to lookups at scale.

Usage:
    python3 scripts/key-spread.py index.db [other.db ...]

A query key's postings list holds every landmark of the library with that key. If keys were
drawn from the distribution p, a query landmark meets on average L * sum(p_k^2) postings in a
library of L landmarks. A fingerprint whose keys crowd into few values (a narrow band, coarse
bins) makes every lookup longer and every chance alignment likelier, and a small corpus hides
it: this script measures it. For each index it reads the stored peaks (the codec of
src/index/codec.rs), pairs them as the reference side does (src/engine/landmarks.rs, with the
index's own fan-out and target zone), and prints the landmark count, the distinct keys, the
collision mass sum(p_k^2), its inverse (the number of equally likely keys with the same
collision rate) and the postings a query landmark would meet in a 50,000-song library with the
same mix of music.
"""
import collections
import json
import sqlite3
import sys

BIN_BITS = 9
LIBRARY_SONGS = 50_000


def read_varint(blob, position):
    value = shift = 0
    while True:
        byte = blob[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, position


def decode_peaks(blob):
    if blob[0] != 1:
        raise ValueError("fingerprint blob version %d is not supported" % blob[0])
    count, position = read_varint(blob, 1)
    frame = 0
    peaks = []
    for _ in range(count):
        value, position = read_varint(blob, position)
        frame += value >> BIN_BITS
        peaks.append((frame, value & ((1 << BIN_BITS) - 1)))
    return peaks


def landmark_keys(peaks, fan_value, max_delta_frames, max_delta_bins):
    for i, (anchor_frame, anchor_bin) in enumerate(peaks):
        paired = 0
        for target_frame, target_bin in peaks[i + 1 :]:
            if target_frame == anchor_frame:
                continue
            dt = target_frame - anchor_frame
            if dt > max_delta_frames:
                break
            dbin = target_bin - anchor_bin
            if abs(dbin) > max_delta_bins:
                continue
            yield (anchor_bin, dbin, dt)
            paired += 1
            if paired == fan_value:
                break


def main(paths):
    for path in paths:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        config = json.loads(db.execute("SELECT value FROM meta WHERE key = 'fingerprint_config'").fetchone()[0])
        counts = collections.Counter()
        songs = peaks_total = 0
        for (blob,) in db.execute("SELECT peaks FROM fingerprints"):
            peaks = decode_peaks(blob)
            songs += 1
            peaks_total += len(peaks)
            counts.update(
                landmark_keys(peaks, config["fan_value"], config["max_delta_frames"], config["max_delta_bins"])
            )
        landmarks = sum(counts.values())
        mass = sum((n / landmarks) ** 2 for n in counts.values())
        print(
            "%s: %d songs, %d peaks, %d landmarks, %d distinct keys, collision mass %.3e "
            "(as %d equally likely keys); postings per query landmark at %d songs: %.0f"
            % (path, songs, peaks_total, landmarks, len(counts), mass, 1 / mass, LIBRARY_SONGS,
               landmarks * mass * LIBRARY_SONGS / songs)
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
