#!/usr/bin/env python3
"""Fits the confidence model's weights (src/engine/matcher.rs, CONFIDENCE_WEIGHTS).

Usage:
    MATCH_THRESHOLD=0 MIN_ALIGNED=2 SPEED_SEARCH=0 audiofp bench --cold-runs 0 --clips --json > bench.json
    python3 scripts/fit-confidence.py bench.json        # needs numpy

Every clip's top candidate is one sample: label 1 when it is the right song, 0 when it is a
wrong song or comes from a clip of an unindexed song. Features (natural logs): aligned
landmarks, distinct aligned clip frames, the song's chance level (hits elsewhere in the song per
3-frame bin, + 0.01), query landmarks (+ 1), and an intercept. Plain logistic regression
(gradient descent, tiny L2). Prints the weights and the accuracy / false-positive counts that
each threshold would give on this corpus.
"""
import collections
import json
import math
import sys

import numpy as np

FRAMES_PER_SECOND = 8000 / 256


def features(clip):
    song_frames = clip["song_secs"] * FRAMES_PER_SECOND
    background = 3 * max(clip["song_hits"] - clip["aligned"], 0) / (song_frames + 1)
    return [
        math.log(clip["aligned"]),
        math.log(max(clip["aligned_frames"], 1)),
        math.log(background + 0.01),
        math.log(clip["query_landmarks"] + 1),
        1.0,
    ]


def main(path):
    report = json.load(open(path))
    clips = [c for c in report["clips"] if c["aligned"] > 0]
    x = np.array([features(c) for c in clips])
    y = np.array([1.0 if c["truth"] is not None and c["answer"] == c["truth"] else 0.0 for c in clips])
    w = np.zeros(x.shape[1])
    for _ in range(20000):
        p = 1 / (1 + np.exp(-x @ w))
        w -= 0.5 * (x.T @ (p - y) / len(y) + 1e-4 * w)
    print("pub const CONFIDENCE_WEIGHTS: [f64; 5] = [%s];" % ", ".join("%.3f" % v for v in w))
    p = 1 / (1 + np.exp(-x @ w))
    for threshold in (0.5, 0.7, 0.8, 0.9, 0.95):
        right = collections.Counter()
        false_pos = wrong = 0
        for clip, prob in zip(clips, p):
            if prob < threshold:
                continue
            if clip["truth"] is None:
                false_pos += 1
            elif clip["answer"] == clip["truth"]:
                right[(clip["distortion"], int(clip["length_s"]))] += 1
            else:
                wrong += 1
        five = " ".join("%s=%d" % (d, right[(d, 5)]) for d in sorted({c["distortion"] for c in clips}))
        print("threshold %.2f: %d false positives, %d wrong songs; correct 5 s clips: %s" % (threshold, false_pos, wrong, five))


if __name__ == "__main__":
    main(sys.argv[1])
