#!/usr/bin/env python3
"""Which corpus passage lies under a place in a `bench --scale-songs corpus` song.

Usage:
    python3 scripts/generated-song-plan.py CORPUS_DB SONG:SECONDS...
    python3 scripts/generated-song-plan.py /var/tmp/dev.db 9621:110.7
    python3 scripts/generated-song-plan.py --check SCALE_DB CORPUS_DB 9621

CORPUS_DB is an index of the corpus's refs/ made with the default settings (`audiofp --db
CORPUS_DB index refs`): the generator cuts its songs from those constellations. For each
`SONG:SECONDS` (the number in the title "Generated 009621", and an offset such as the one
`identify` reports) the script prints the excerpts around that place: where the excerpt starts
in the generated song, the source file, where it was cut from, its length, the transposition in
semitones and the tempo stretch. A clip that matched there can then be checked against the
source itself: cut that passage with sox, undo the transposition (`pitch -200` for "+2"... in
cents, opposite sign) and identify it.

This replays src/bench/songs.rs (CorpusSongs::peaks and SplitMix64) step for step; `--check`
renders one generated song's constellation from CORPUS_DB and compares it with the one stored
in SCALE_DB (a `bench --scale N --write-db` index), so a change to the generator that this
copy misses shows up.
"""
import math
import sqlite3
import sys

from peak_blobs import decode_peaks

MASK = (1 << 64) - 1
SAMPLE_RATE, HOP, N_FFT = 11_025, 352, 1408
FPS = SAMPLE_RATE / HOP
BIN_HZ = SAMPLE_RATE / N_FFT
FIRST_BIN = max(1, math.ceil(200.0 / BIN_HZ))
BAND_BINS = min(int(3600.0 / BIN_HZ), N_FFT // 2) - FIRST_BIN + 1
FRAMES_PER_SONG = int(240.0 * FPS)
EXCERPT_FRAMES = (int(5.0 * FPS), int(20.0 * FPS))
QUERIED_SONGS = 20


class SplitMix64:
    def __init__(self, seed):
        self.state = ((seed * 0x9E3779B97F4A7C15) & MASK) ^ 0xD1B54A32D192ED03

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def sources(corpus_db):
    """The corpus songs after the first 20, by path, longer than the longest excerpt."""
    rows = sqlite3.connect(corpus_db).execute(
        "SELECT s.path, s.num_frames, f.peaks FROM songs s JOIN fingerprints f ON f.song_id = s.id"
    ).fetchall()
    refs = sorted((r for r in rows if "/refs/" in (r[0] or "")), key=lambda r: r[0])
    return [(path, frames, decode_peaks(blob)) for path, frames, blob in refs[QUERIED_SONGS:]
            if frames > EXCERPT_FRAMES[1] and len(blob) > 2]


def excerpts(song, srcs):
    """(start frame, source index, from frame, length, semitones, up, stretch) of each excerpt."""
    random = SplitMix64((~song) & MASK)
    start = 0
    while start < FRAMES_PER_SONG:
        index = random.next() % len(srcs)
        frames = srcs[index][1]
        length = EXCERPT_FRAMES[0] + random.next() % (EXCERPT_FRAMES[1] - EXCERPT_FRAMES[0] + 1)
        cut_from = random.next() % (frames - length + 1)
        semitones = 1 + random.next() % 6
        up = random.next() % 2 == 0
        stretch = 0.9 + 0.2 * (random.next() % 1_000_001) / 1_000_000
        yield start, index, cut_from, length, semitones, up, stretch
        start += max(1, round(length * stretch))


def render(song, srcs):
    peaks = set()
    for start, index, cut_from, length, semitones, up, stretch in excerpts(song, srcs):
        pitch = 2 ** (semitones / 12)
        pitch = pitch if up else 1 / pitch
        for frame, bin_ in srcs[index][2]:
            if cut_from <= frame < cut_from + length:
                # Rust's f64::round rounds halves away from zero.
                to_frame = start + math.floor((frame - cut_from) * stretch + 0.5)
                to_bin = math.floor((bin_ + FIRST_BIN) * pitch - FIRST_BIN + 0.5)
                if to_frame < FRAMES_PER_SONG and 0 <= to_bin < BAND_BINS:
                    peaks.add((to_frame, to_bin))
    return sorted(peaks)


def main():
    args = sys.argv[1:]
    if args and args[0] == "--check":
        scale_db, corpus_db, song = args[1], args[2], int(args[3])
        row = sqlite3.connect(scale_db).execute(
            "SELECT f.peaks FROM songs s JOIN fingerprints f ON f.song_id = s.id WHERE s.title = ?",
            (f"Generated {song:06}",),
        ).fetchone()
        stored = decode_peaks(row[0])
        rendered = render(song, sources(corpus_db))
        same = len(set(stored) & set(rendered))
        print(f"Generated {song:06}: {len(stored)} peaks stored, {len(rendered)} rendered, {same} the same")
        sys.exit(0 if same == len(stored) == len(rendered) else 1)
    corpus_db, wanted = args[0], args[1:]
    srcs = sources(corpus_db)
    for item in wanted:
        song, at = item.split(":")
        song, at = int(song), float(at)
        print(f"Generated {song:06} around {at:.1f} s:")
        for start, index, cut_from, length, semitones, up, stretch in excerpts(song, srcs):
            begins, lasts = start / FPS, length * stretch / FPS
            if begins <= at + 3 and begins + lasts >= at - 1:
                source = srcs[index][0].rsplit("/", 1)[-1]
                print(f"  from {begins:.2f} s: {source} from {cut_from / FPS:.2f} s, "
                      f"{length / FPS:.1f} s long, {'+' if up else '-'}{semitones} semitones, "
                      f"stretched x{stretch:.4f}")


if __name__ == "__main__":
    main()
