#!/usr/bin/env python3
"""False positives at scale: every corpus clip of a song the large index does not hold.

Usage:
    audiofp bench --scale 10000 --write-db /var/tmp/scale10k-syn.db --scale-songs synthetic
    python3 scripts/scale-negatives.py [--audiofp PATH] [--corpus DIR] DB

`bench --scale` queries 24 clips of unindexed songs, all 10 s long. The index written by
`--write-db` holds only the first 20 corpus songs besides the generated ones, so every other
corpus clip (clips of the other 61 songs, and of the unindexed tracks; all lengths and
distortions) must get no match from it. This script runs them all through one `audiofp
identify --json` process against DB and counts the answers.

pitch_p1 clips are left out: against generated songs made of transposed excerpts of the
corpus (`--scale-songs corpus`), a clip one semitone up can find its own audio, transposed
back by the pitch search. For the same reason the script splits the answers by the speed and
pitch the matcher found them at, and lists the songs named, so that matches to generated songs
that really hold the clip's audio can be told from chance.

Answers naming a real corpus song are not counted as false positives when the clip's track
contains that song's audio: the corpus's unindexed d0090 and d0093 do (docs/BENCHMARK.md,
"About the false positives"); the script names them so they can be checked.
"""
import argparse
import collections
import json
import os
import subprocess
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db")
    parser.add_argument("--audiofp", default="target/release/audiofp")
    parser.add_argument("--corpus", default=os.environ.get("DEV_CORPUS", "/var/tmp/audiofp-dev-corpus"))
    args = parser.parse_args()

    listed = json.loads(
        subprocess.run(
            [args.audiofp, "--db", args.db, "list", "--json"], check=True, capture_output=True, text=True
        ).stdout
    )
    indexed = {
        os.path.splitext(os.path.basename(song["path"]))[0]
        for song in listed
        if song.get("path") and "/refs/" in song["path"]
    }
    with open(os.path.join(args.corpus, "manifest.jsonl")) as manifest:
        clips = [json.loads(line) for line in manifest if line.strip()]
    queried = [c for c in clips if c["truth"] not in indexed and c["distortion"] != "pitch_p1"]
    print(f"{args.db}: {len(listed)} songs, {len(indexed)} of them corpus songs; "
          f"{len(queried)} clips of other songs (all but pitch_p1)", file=sys.stderr)

    answers = json.loads(
        subprocess.run(
            [args.audiofp, "--db", args.db, "identify", "--json", *[c["query"] for c in queried]],
            cwd=args.corpus, capture_output=True, text=True,
        ).stdout
    )
    by_query = {c["query"]: c for c in queried}
    found = [a for a in answers if a.get("found")]
    real_song = [a for a in found if a["matches"][0].get("path")]
    generated = [a for a in found if not a["matches"][0].get("path")]

    lengths = collections.Counter(c["length_s"] for c in queried)
    found_lengths = collections.Counter(by_query[a["clip"]]["length_s"] for a in generated)
    print(f"clips queried: {len(answers)}; answered with a song: {len(found)}")
    print(f"  naming a real corpus song (shared audio?): {len(real_song)}")
    for a in real_song:
        m = a["matches"][0]
        print(f"    {a['clip']} (truth {by_query[a['clip']]['truth']}) -> {m['title']} "
              f"({os.path.basename(m['path'])}) at {m['offset_seconds']:.1f} s, confidence {m['confidence']:.3f}")
    print(f"  naming a generated song: {len(generated)}")
    print("    by clip length: " + ", ".join(
        f"{length} s {found_lengths[length]}/{lengths[length]}" for length in sorted(lengths)))
    how = collections.Counter((a["speed"], a["pitch_semitones"]) for a in generated)
    print("    by the speed and pitch found: " + ", ".join(
        f"speed {speed} pitch {pitch:+g}: {n}" for (speed, pitch), n in sorted(how.items())))
    for a in generated:
        if a["speed"] == 1.0 and a["pitch_semitones"] == 0.0:
            m = a["matches"][0]
            print(f"    as played: {a['clip']} (truth {by_query[a['clip']]['truth']}) -> {m['title']} "
                  f"at {m['offset_seconds']:.1f} s, {m['aligned_hashes']} hashes, confidence {m['confidence']:.3f}")


if __name__ == "__main__":
    main()
