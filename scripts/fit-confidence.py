#!/usr/bin/env python3
"""Fits the confidence model's weights (src/engine/matcher.rs, CONFIDENCE_WEIGHTS).

Usage:
    MATCH_THRESHOLD=0 MIN_ALIGNED=2 SPEED_SEARCH=0 audiofp bench --cold-runs 0 --speed-rounds 1 --clips --json > bench.json
    python3 scripts/fit-confidence.py bench.json        # needs numpy

Every clip's top candidate with at least MIN_ALIGNED (5) aligned landmarks is one sample:
label 1 when it is the right song, 0 when it is a wrong song or comes from a clip of an
unindexed song. Features, in the order of `confidence_features` in matcher.rs: ln(aligned
landmarks), ln(distinct aligned clip frames), ln(the song's landmark chance level + 0.01),
ln(query landmarks + 1), ln(clip peaks on the song's peaks + 1), ln(the same at other offsets
+ 1), the clip's contrast at the song's peaks in standard errors above chance (clamped to
[-5, 15]), and an intercept. Plain logistic regression (gradient descent, tiny L2).

Left out as ambiguous: answers whose audio really is in the clip, which the corpus's ground
truth cannot know. Found by identifying every corpus track, whole, against the index of the
others (`audiofp identify refs/*.ogg negrefs/*.ogg --top 4`): TechBattle (d0011) and
AmbientBattle (d0004) are the same recording, as are christmas_theme/theme (d0050/d0052) and
call_of_the_winding_path/shallow-green (d0036/d0046); the unindexed drascula track1 contains
track30 (d0076) and the unindexed HellFortressTwo contains HellFortressEntrance (d0006), so
clips of unindexed songs answered with d0076 or d0006 are left out too.

Prints the weights, then what each threshold gives on this corpus, fitted on all of it and in
2-fold cross-validation (odd and even clip numbers).
"""
import collections
import json
import math
import sys

import numpy as np

FRAMES_PER_SECOND = 11025 / 352
MIN_ALIGNED = 5
CONTRAST_Z_RANGE = (-5.0, 15.0)
SAME_RECORDING = [{"d0004", "d0011"}, {"d0050", "d0052"}, {"d0036", "d0046"}]
IN_UNINDEXED_TRACKS = {"d0076", "d0006"}


def features(clip):
    background_frames = clip["background_secs"] * FRAMES_PER_SECOND
    background = 3 * max(clip["song_hits"] - clip["aligned"], 0) / (background_frames + 1)
    z = min(max(clip["contrast_z"], CONTRAST_Z_RANGE[0]), CONTRAST_Z_RANGE[1])
    return [
        math.log(clip["aligned"]),
        math.log(max(clip["aligned_frames"], 1)),
        math.log(background + 0.01),
        math.log(clip["query_landmarks"] + 1),
        math.log(clip["peaks_matched"] + 1),
        math.log(clip["peaks_chance"] + 1),
        z,
        1.0,
    ]


def is_right(clip):
    return clip["truth"] is not None and clip["answer"] == clip["truth"]


def is_ambiguous(clip):
    if is_right(clip):
        return False
    if clip["truth"] is None:
        return clip["answer"] in IN_UNINDEXED_TRACKS
    return any({clip["truth"], clip["answer"]} <= pair for pair in SAME_RECORDING)


def fit(x, y):
    w = np.zeros(x.shape[1])
    for _ in range(20000):
        p = 1 / (1 + np.exp(-x @ w))
        w -= 0.5 * (x.T @ (p - y) / len(y) + 1e-4 * w)
    return w


def summary(clips, probabilities, threshold):
    right = collections.Counter()
    false_pos = wrong = 0
    for clip, prob in zip(clips, probabilities):
        if prob < threshold:
            continue
        if clip["truth"] is None:
            false_pos += 1
        elif is_right(clip):
            right[(clip["distortion"], int(clip["length_s"]))] += 1
        else:
            wrong += 1
    five = " ".join(
        "%s=%d" % (d, right[(d, 5)]) for d in sorted({c["distortion"] for c in clips})
    )
    return "%d false positives, %d wrong songs, %d right; correct 5 s clips: %s" % (
        false_pos,
        wrong,
        sum(right.values()),
        five,
    )


def main(path):
    report = json.load(open(path))
    clips = [c for c in report["clips"] if c["aligned"] >= MIN_ALIGNED]
    left_out = [c for c in clips if is_ambiguous(c)]
    clips = [c for c in clips if not is_ambiguous(c)]
    print("%d samples, %d left out as shared audio" % (len(clips), len(left_out)))
    x = np.array([features(c) for c in clips])
    y = np.array([1.0 if is_right(c) else 0.0 for c in clips])
    w = fit(x, y)
    print("pub const CONFIDENCE_WEIGHTS: [f64; 8] = [%s];" % ", ".join("%.3f" % v for v in w))
    fitted = 1 / (1 + np.exp(-x @ w))
    fold = np.array([int(c["query"].split("/")[-1][1:6]) % 2 for c in clips])
    crossed = np.zeros(len(clips))
    for k in (0, 1):
        wk = fit(x[fold != k], y[fold != k])
        crossed[fold == k] = 1 / (1 + np.exp(-x[fold == k] @ wk))
    for threshold in (0.5, 0.7, 0.8, 0.9, 0.95):
        print("threshold %.2f, fitted:  %s" % (threshold, summary(clips, fitted, threshold)))
        print("threshold %.2f, 2-fold:  %s" % (threshold, summary(clips, crossed, threshold)))


if __name__ == "__main__":
    main(sys.argv[1])
