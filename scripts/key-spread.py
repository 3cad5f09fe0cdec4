#!/usr/bin/env python3
"""How evenly an index's landmark keys spread: what a fingerprint change does to lookups at scale.

Usage:
    python3 scripts/key-spread.py index.db [other.db ...]

A query key's postings list holds every landmark of the library with that key, so what a
large library costs a query depends on how often other songs use the query's keys. A
fingerprint whose keys crowd into few values (a narrow band, coarse bins) makes every lookup
longer and every chance alignment likelier, and a small corpus hides it: this script measures
it. For each index it reads the stored peaks (the codec of src/index/codec.rs), pairs them as
the reference side does (src/engine/landmarks.rs, with the index's own fan-out and target
zone), and prints:

- landmarks and distinct keys;
- the collision rate between songs: the chance that a landmark of one song and a landmark of
  another song share a key, averaged over pairs of songs (weighted by their landmarks), and
  its inverse, the number of equally likely keys with that rate;
- the collision rate within songs, for comparison: music repeats itself, so a song meets its
  own keys far more often than another song's;
- from the rate between songs, the postings a query landmark of a song outside the library
  would meet in a library of 50,000 songs like these.
"""
import collections
import json
import sqlite3
import sys

from peak_blobs import decode_peaks

LIBRARY_SONGS = 50_000


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
        pooled = collections.Counter()
        # Per song: its landmark count and the sum over keys of count^2.
        own_totals = []
        own_squares = 0
        songs = 0
        for (blob,) in db.execute("SELECT peaks FROM fingerprints"):
            counts = collections.Counter(
                landmark_keys(
                    decode_peaks(blob), config["fan_value"], config["max_delta_frames"], config["max_delta_bins"]
                )
            )
            songs += 1
            pooled.update(counts)
            own_totals.append(sum(counts.values()))
            own_squares += sum(n * n for n in counts.values())
        landmarks = sum(own_totals)
        all_squares = sum(n * n for n in pooled.values())
        pairs_between = landmarks**2 - sum(n * n for n in own_totals)
        between = (all_squares - own_squares) / max(pairs_between, 1)
        within = own_squares / max(sum(n * n for n in own_totals), 1)
        per_song = landmarks / max(songs, 1)
        print(
            "%s: %d songs, %d landmarks, %d distinct keys; between songs %.3e (as %.0f equally likely keys), "
            "within a song %.3e; postings per query landmark at %d songs: %.0f"
            % (path, songs, landmarks, len(pooled), between, 1 / between if between else float("inf"),
               within, LIBRARY_SONGS, per_song * between * LIBRARY_SONGS)
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
