#!/usr/bin/env python3
"""More clips of unindexed music: a tighter estimate of the false-positive rate.

Usage:
    python3 scripts/more-negatives.py [--corpus DIR] [--out DIR] [--per-cell N] [--seed S] [-j N]
    audiofp bench --corpus OUT --cold-runs 0 --speed-rounds 1 --no-listening --clips --json > neg.json
    python3 scripts/more-negatives.py [--out DIR] --report neg.json

The dev corpus has 120 clips of its 14 unindexed tracks (2 per distortion x length), so one
false positive moves its rate by 0.8 %, more than the 0.5 % target. This script cuts N more
clips per distortion x length from the same unindexed tracks (`negrefs/`), with the corpus
builder's own distortions (`../shared/corpus/make-corpus.py`, loaded from there), into a
corpus directory OUT whose `refs/` and `negrefs/` are links to the dev corpus's and whose
manifest lists only the new clips (truth null). `bench --corpus OUT` indexes the same songs,
identifies the clips, and, as on the dev corpus, plays each unindexed track whole to tell
answers that name audio the track really contains from false positives. `--report` counts the
answers of such a run by clip length and distortion.

Nothing here is committed audio: OUT is built on the machine, like the dev corpus.
"""
import argparse
import collections
import importlib.util
import json
import multiprocessing
import os
import random
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BUILDER = os.path.join(HERE, "..", "..", "shared", "corpus", "make-corpus.py")


def load_builder(path):
    spec = importlib.util.spec_from_file_location("make_corpus", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_builders = {}


def make_one(job):
    builder_path, src, dist, start, length, base, seed = job
    # Loaded once per worker process, not once per clip.
    if builder_path not in _builders:
        _builders[builder_path] = load_builder(builder_path)
    builder = _builders[builder_path]
    with tempfile.TemporaryDirectory() as tmp:
        made = builder.make_query(src, dist, start, length, base, tmp, random.Random(seed))
        if builder.rms(made) < 1e-3:
            os.remove(made)
            return None
    return made


def build(args):
    builder = load_builder(args.builder)
    corpus = os.path.abspath(args.corpus)
    out = os.path.abspath(args.out)
    if os.path.exists(os.path.join(out, "manifest.jsonl")):
        sys.exit(f"{out} already holds a manifest; remove it to rebuild")
    os.makedirs(os.path.join(out, "queries"), exist_ok=True)
    for sub in ("refs", "negrefs"):
        link = os.path.join(out, sub)
        if not os.path.exists(link):
            os.symlink(os.path.join(corpus, sub), link)
    negrefs = os.path.join(corpus, "negrefs")
    tracks = sorted(os.listdir(negrefs))
    durations = {t: builder.duration(os.path.join(negrefs, t)) for t in tracks}
    rnd = random.Random(args.seed)
    jobs = []
    for dist in builder.DISTORTIONS:
        for length in builder.LENGTHS:
            for _ in range(args.per_cell):
                track = rnd.choice(tracks)
                span = length * 1.05
                dur = durations[track]
                start = rnd.uniform(builder.EDGE_S, max(builder.EDGE_S, dur - builder.EDGE_S - span))
                base = os.path.join(out, "queries", f"n{len(jobs) + 1:05d}_{dist}_{length}s")
                jobs.append((args.builder, os.path.join(negrefs, track), dist, start, length, base,
                             rnd.getrandbits(32)))
    with multiprocessing.Pool(args.jobs) as pool:
        made = pool.map(make_one, jobs, chunksize=8)
    with open(os.path.join(out, "manifest.jsonl"), "w") as manifest:
        for (_, src, dist, start, length, _, _), path in zip(jobs, made):
            if path is None:
                continue
            manifest.write(json.dumps({
                "query": os.path.relpath(path, out), "truth": None, "offset_s": round(start, 3),
                "length_s": length, "distortion": dist,
                "track": os.path.splitext(os.path.basename(src))[0],
            }) + "\n")
    print(f"{sum(p is not None for p in made)} clips of {len(tracks)} unindexed tracks in {out}")


def report(path, out):
    dump = json.load(open(path))
    clips = dump["clips"]
    track_of = {}
    with open(os.path.join(out, "manifest.jsonl")) as manifest:
        for line in manifest:
            if line.strip():
                entry = json.loads(line)
                track_of[entry["query"]] = entry["track"]
    # Answers that name an indexed song the clip's unindexed track contains (the bench plays
    # each unindexed track whole to find them) are right about the audio.
    contained = {(rel["unindexed"], rel["indexed"]) for rel in dump.get("shared_audio", [])}
    by_length = collections.defaultdict(lambda: [0, 0, 0])
    by_dist = collections.defaultdict(lambda: [0, 0, 0])
    named = []
    for c in clips:
        shared = (track_of[c["query"]], c["answer"]) in contained
        false = c["answer"] is not None and not shared
        for table, key in ((by_length, c["length_s"]), (by_dist, c["distortion"])):
            table[key][0] += 1
            table[key][1] += false
            table[key][2] += shared
        if c["answer"] is not None:
            named.append((c["confidence"], c["query"], track_of[c["query"]], c["answer"], shared))
    total = len(clips)
    false = sum(v[1] for v in by_length.values())
    shared = sum(v[2] for v in by_length.values())
    print(f"clips: {total}; false positives: {false} ({100.0 * false / max(total, 1):.2f} %); "
          f"answers naming a song the clip's track contains: {shared}")
    for title, table in (("by length", by_length), ("by distortion", by_dist)):
        print(title + ":")
        for key in sorted(table):
            n, f, s = table[key]
            print(f"  {key!s:>12}: {f}/{n} false positives, {s} in shared audio")
    print("false positives (confidence, clip, its track, song named):")
    for conf, query, track, answer, is_shared in sorted(named, reverse=True):
        if not is_shared:
            print(f"  {conf:.3f} {query} ({track}) -> {answer}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.environ.get("DEV_CORPUS", "/var/tmp/audiofp-dev-corpus"))
    ap.add_argument("--out", default="/var/tmp/audiofp-negatives")
    ap.add_argument("--per-cell", type=int, default=40, help="clips per distortion x length")
    ap.add_argument("--seed", type=int, default=29)
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--builder", default=DEFAULT_BUILDER, help="path of make-corpus.py")
    ap.add_argument("--report", metavar="BENCH_JSON", help="count the answers of a bench --clips --json run")
    args = ap.parse_args()
    if args.report:
        report(args.report, args.out)
    else:
        build(args)


if __name__ == "__main__":
    main()
