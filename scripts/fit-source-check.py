#!/usr/bin/env python3
"""Fits the source check's weights (src/engine/source_check.rs, SOURCE_CHECK_WEIGHTS).

Usage (dumps at threshold 0, without the speed search, as for fit-confidence.py):
    export MATCH_THRESHOLD=0 MIN_ALIGNED=2 SPEED_SEARCH=0 SOURCE_CHECK=always
    audiofp bench --cold-runs 0 --speed-rounds 1 --no-listening --clips --json > dev.json
    python3 scripts/more-negatives.py --per-cell 50 -j 2      # 3,000 clips of unindexed music
    audiofp bench --corpus /var/tmp/audiofp-negatives --cold-runs 0 --speed-rounds 1 \\
        --no-listening --clips --json > neg.json
    python3 scripts/fit-source-check.py dev.json neg.json [/var/tmp/audiofp-negatives]

The model revises the landmark model's answer: its inputs are the landmark model's log-odds
(CONFIDENCE_WEIGHTS, as shipped, applied to the dump's figures), the check's score
(`source_score` in the dump), and an intercept. Samples: every clip's top
candidate with at least 5 aligned landmarks whose song's audio was compared, labelled as
fit-confidence.py labels them (shared audio left out). The extra negatives count as much, in
all, as the dev corpus's own clips of unindexed music (each weighs 120 / 3,000), so that the
model's prior stays the dev corpus's while their shapes inform it.

Prints the weights, then what the model does at the default threshold (0.8, clips under 3 s
held to more, as MatchConfig::threshold_for_clip does) in 2-fold cross-validation: dev clips
split by clip number, the extra negatives by their unindexed track.
"""
import collections
import importlib.util
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("fit_confidence", os.path.join(HERE, "fit-confidence.py"))
fc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fc)

# CONFIDENCE_WEIGHTS in src/engine/matcher.rs.
LANDMARK_WEIGHTS = [2.338, -0.664, -0.430, -1.309, 3.357, -0.512, 0.750, -4.644]
THRESHOLD = 0.8
FULL_EVIDENCE_SECS = 3.0
# Unindexed tracks that contain indexed songs (found by bench; see fit-confidence.py).
CONTAINED = {("d0090", "d0076"), ("d0093", "d0006")}


def threshold_for(length_s):
    scale = FULL_EVIDENCE_SECS / length_s
    if scale <= 1 + 1e-9:
        return THRESHOLD
    weighted = THRESHOLD * scale
    return weighted / (weighted + 1 - THRESHOLD)


def inputs(clip):
    logit = float(np.dot(fc.features(clip), LANDMARK_WEIGHTS))
    return [logit, clip["source_score"], 1.0]


def fit(x, y, weight):
    w = np.zeros(x.shape[1])
    for _ in range(20000):
        p = 1 / (1 + np.exp(-x @ w))
        w -= 0.5 * (x.T @ ((p - y) * weight) / weight.sum() + 1e-4 * w)
    return w


def main(dev_path, neg_path, neg_corpus):
    usable = lambda c: c["aligned"] >= fc.MIN_ALIGNED and c.get("source_score") is not None
    dev = [c for c in json.load(open(dev_path))["clips"] if usable(c) and not fc.is_ambiguous(c)]
    track = {}
    with open(os.path.join(neg_corpus, "manifest.jsonl")) as manifest:
        for line in manifest:
            entry = json.loads(line)
            track[entry["query"]] = entry["track"]
    neg = [
        c
        for c in json.load(open(neg_path))["clips"]
        if usable(c) and (track[c["query"]], c["answer"]) not in CONTAINED
    ]
    dev_negatives = sum(1 for c in dev if c["truth"] is None)
    neg_weight = max(dev_negatives, 1) / max(len(neg), 1)
    print("%d dev samples (%d of unindexed music), %d extra negatives weighing %.3f each"
          % (len(dev), dev_negatives, len(neg), neg_weight))
    xd = np.array([inputs(c) for c in dev])
    yd = np.array([1.0 if fc.is_right(c) else 0.0 for c in dev])
    xn = np.array([inputs(c) for c in neg])
    x = np.vstack([xd, xn])
    y = np.concatenate([yd, np.zeros(len(neg))])
    weight = np.concatenate([np.ones(len(dev)), np.full(len(neg), neg_weight)])
    w = fit(x, y, weight)
    print("pub const SOURCE_CHECK_WEIGHTS: [f64; 3] = [%s];" % ", ".join("%.3f" % v for v in w))

    dev_fold = np.array([int(c["query"].split("/")[-1][1:6]) % 2 for c in dev])
    tracks = sorted(set(track[c["query"]] for c in neg))
    neg_fold = np.array([tracks.index(track[c["query"]]) % 2 for c in neg])
    folds = np.concatenate([dev_fold, neg_fold])
    crossed = np.zeros(len(y))
    for k in (0, 1):
        wk = fit(x[folds != k], y[folds != k], weight[folds != k])
        crossed[folds == k] = 1 / (1 + np.exp(-x[folds == k] @ wk))
    landmark_only = 1 / (1 + np.exp(-x[:, 0]))
    for name, p in (("landmarks alone", landmark_only), ("with the source check, 2-fold", crossed)):
        right = collections.Counter()
        wrong = dev_fp = 0
        neg_fp = collections.Counter()
        for i, clip in enumerate(dev + neg):
            if p[i] < threshold_for(clip["length_s"]):
                continue
            if i >= len(dev):
                neg_fp[clip["length_s"]] += 1
            elif clip["truth"] is None:
                dev_fp += 1
            elif fc.is_right(clip):
                right[(clip["distortion"], clip["length_s"])] += 1
            else:
                wrong += 1
        five = " ".join("%s=%d" % (d, n) for (d, length), n in sorted(right.items()) if length == 5)
        print("%s: %d right, %d wrong songs, %d false positives of the dev corpus, %d of the %d "
              "extra negatives (by length: %s); 5 s: %s"
              % (name, sum(right.values()), wrong, dev_fp, sum(neg_fp.values()), len(neg),
                 dict(sorted(neg_fp.items())), five))


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else "/var/tmp/audiofp-negatives")
