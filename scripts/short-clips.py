#!/usr/bin/env python3
"""How the answer threshold should depend on a clip's length (src/config.rs, threshold_for_clip).

Usage:
    MATCH_THRESHOLD=0 MIN_ALIGNED=2 SPEED_SEARCH=0 audiofp bench --cold-runs 0 --speed-rounds 1 --no-listening --clips --json > bench.json
    python3 scripts/short-clips.py bench.json

The dump is made with the threshold at 0, so that every clip's top candidate (at least
MIN_ALIGNED aligned landmarks) is listed with the confidence the shipped model gives it.
For each clip length it prints the highest confidences reached by clips of unindexed songs,
then what a flat threshold and the length-scaled one (the odds of error the threshold allows,
(1 - t) / t, shrinking in proportion to the length below FULL_EVIDENCE_SECS) would answer: right songs,
wrong songs, and false positives. Clips of unindexed songs answered with an indexed song
their track really contains are not counted as false positives (see fit-confidence.py).
"""
import collections
import json
import sys

MIN_ALIGNED = 5
THRESHOLD = 0.8
FULL_EVIDENCE_SECS = 3.0  # src/config.rs (2.0 before stop 29)
IN_UNINDEXED_TRACKS = {"d0076", "d0006"}


def scaled(threshold, clip_secs):
    scale = FULL_EVIDENCE_SECS / max(clip_secs, 1e-9)
    if scale <= 1.0:
        return threshold
    weighted = threshold * scale
    return weighted / (weighted + 1.0 - threshold)


def main(path):
    clips = [
        c
        for c in json.load(open(path))["clips"]
        if c["answer"] is not None and c["confidence"] is not None and c["aligned"] >= MIN_ALIGNED
    ]
    lengths = sorted({c["length_s"] for c in clips})
    print("highest confidences of clips of unindexed songs (not shared audio), by length:")
    for length in lengths:
        tops = sorted(
            c["confidence"]
            for c in clips
            if c["length_s"] == length
            and c["truth"] is None
            and c["answer"] not in IN_UNINDEXED_TRACKS
        )
        print("  %4.1f s: %s" % (length, " ".join("%.3f" % v for v in tops[-4:][::-1])))
    rules = [("flat %.2f" % THRESHOLD, lambda c: THRESHOLD)] + [
        (
            "scaled",
            lambda c: scaled(THRESHOLD, c["length_s"]),
        )
    ]
    for name, bar in rules:
        counts = collections.Counter()
        for c in clips:
            if c["confidence"] < bar(c):
                continue
            length = c["length_s"]
            if c["truth"] is None:
                if c["answer"] not in IN_UNINDEXED_TRACKS:
                    counts[(length, "false positives")] += 1
            elif c["answer"] == c["truth"]:
                counts[(length, "right")] += 1
            else:
                counts[(length, "wrong")] += 1
        print("%s:" % name)
        for length in lengths:
            print(
                "  %4.1f s: %3d right, %d wrong, %d false positives"
                % tuple(
                    [length]
                    + [counts[(length, kind)] for kind in ("right", "wrong", "false positives")]
                )
            )


if __name__ == "__main__":
    main(sys.argv[1])
