#!/usr/bin/env python3
"""Compares threshold-0 bench dumps of several builds or settings, cell by cell.

Usage:
    MATCH_THRESHOLD=0 MIN_ALIGNED=2 SPEED_SEARCH=0 audiofp bench --cold-runs 0 --speed-rounds 1 --no-listening --clips --json > a.json
    (the same with another build or other settings) > b.json
    python3 scripts/compare-dumps.py [--threshold T] a.json b.json ...        # needs numpy

For an experiment that changes the fingerprint (band, peak density) the shipped confidence
weights no longer fit, so comparing the dumps at the shipped weights would judge the weights,
not the fingerprint. This script therefore scores every dump twice:

- shipped: the confidence each clip's top candidate got from the build that made the dump;
- refitted: the confidence from the model of fit-confidence.py refitted on that dump, in 2-fold
  cross-validation (odd and even clip numbers), so no clip is scored by weights fitted on it.

Both use the threshold (0.8, the shipped one, unless --threshold says otherwise) with its
length scaling for short clips (short-clips.py). It prints the right answers per distortion and clip length where the dumps
differ, then per dump the false positives (clips of unindexed songs answered with a song they
do not contain), the wrong songs and the total of right answers. The speed search is off in
these dumps (it costs minutes), so speed clips count less than in a real bench run.
"""
import collections
import importlib.util
import json
import os
import sys

import numpy as np

DEFAULT_THRESHOLD = 0.8


def load_script(name):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    spec = importlib.util.spec_from_file_location(name.replace("-", "_")[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fit_confidence = load_script("fit-confidence.py")
short_clips = load_script("short-clips.py")


def refitted_confidences(clips):
    x = np.array([fit_confidence.features(c) for c in clips])
    y = np.array([1.0 if fit_confidence.is_right(c) else 0.0 for c in clips])
    fold = np.array([int(c["query"].split("/")[-1][1:6]) % 2 for c in clips])
    crossed = np.zeros(len(clips))
    for k in (0, 1):
        weights = fit_confidence.fit(x[fold != k], y[fold != k])
        crossed[fold == k] = 1 / (1 + np.exp(-x[fold == k] @ weights))
    return crossed


def tally(clips, confidences, threshold):
    right = collections.Counter()
    false_positives = wrong = 0
    for clip, confidence in zip(clips, confidences):
        if confidence < short_clips.scaled(threshold, clip["length_s"]):
            continue
        if fit_confidence.is_right(clip):
            right[(clip["distortion"], clip["length_s"])] += 1
        elif clip["truth"] is None:
            false_positives += 1
        else:
            wrong += 1
    return right, false_positives, wrong


def main(paths, threshold):
    results = {}
    for path in paths:
        clips = [
            c
            for c in json.load(open(path))["clips"]
            if c["answer"] is not None
            and c["aligned"] >= fit_confidence.MIN_ALIGNED
            and not fit_confidence.is_ambiguous(c)
        ]
        results[(path, "shipped")] = tally(clips, [c["confidence"] for c in clips], threshold)
        results[(path, "refitted")] = tally(clips, refitted_confidences(clips), threshold)
    names = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    for scoring in ("shipped", "refitted"):
        print("== %s weights, threshold %.2f: right answers where the dumps differ" % (scoring, threshold))
        print("%-18s" % "", " ".join("%12s" % name[:12] for name in names))
        cells = sorted({cell for (_, s), (right, _, _) in results.items() if s == scoring for cell in right})
        for cell in cells:
            row = [results[(path, scoring)][0][cell] for path in paths]
            if len(set(row)) > 1:
                print("%-12s %4.0f s" % cell, " ".join("%12d" % value for value in row))
        for label, index in (("false positives", 1), ("wrong songs", 2)):
            print("%-18s" % label, " ".join("%12d" % results[(path, scoring)][index] for path in paths))
        print("%-18s" % "right", " ".join("%12d" % sum(results[(path, scoring)][0].values()) for path in paths))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    threshold = DEFAULT_THRESHOLD
    if arguments[:1] == ["--threshold"] and len(arguments) >= 2:
        threshold = float(arguments[1])
        arguments = arguments[2:]
    if not arguments:
        sys.exit(__doc__)
    main(arguments, threshold)
