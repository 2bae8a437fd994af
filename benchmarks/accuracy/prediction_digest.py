#!/usr/bin/env python
"""A fingerprint of the default learner's predictions on the accuracy benchmark's nine ARFF streams.

Test-then-train over each stream (all of it, or the first ``--limit`` instances); every decided label set
and every score (the exact float bits) goes into a SHA-256 per stream and one over all. Half-way through
each stream the model goes through a checkpoint (state, save, load, from_state) and the restored model
continues, so the state round trip is part of the fingerprint. Two versions of the code predict the same
exactly when their fingerprints are equal (on the same machine: BLAS results may differ across CPUs).

    .venv/bin/python benchmarks/accuracy/prediction_digest.py [--limit N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
import sys
import tempfile
from pathlib import Path

from labelflow.operators.io.streams import open_stream
from labelflow.operators.learners.registry import make_learner
from labelflow.operators.state import State

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/, for the module below

from benchmark_modules import load_benchmark  # noqa: E402

DATASETS = Path(os.environ.get("LABELFLOW_DATASETS", HERE.parent.parent.parent / "shared" / "datasets"))
STREAMS = tuple(f"{folder}/{file}" for folder, file, _ in load_benchmark("accuracy").ARFF_DATASETS.values())


def stream_digest(path: Path, limit: int | None) -> tuple[int, bytes]:
    model = make_learner()
    instances = list(open_stream(path, limit=limit))
    digest = hashlib.sha256()
    for i, instance in enumerate(instances):
        if i == len(instances) // 2:
            with tempfile.TemporaryDirectory() as directory:
                model.state().save(Path(directory))
                model = type(model).from_state(State.load(Path(directory)))
        decided, scores = model.predict_with_scores(instance.x)
        digest.update(repr(sorted(map(str, decided))).encode())
        for label in sorted(scores, key=str):
            digest.update(str(label).encode() + struct.pack("<d", float(scores[label])))
        model.learn_one(instance.x, instance.labels)
    return len(instances), digest.digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="the first N instances of every stream")
    args = parser.parse_args()
    total = hashlib.sha256()
    for relative in STREAMS:
        n, digest = stream_digest(DATASETS / relative, args.limit)
        print(f"{relative:<36} n={n:<6} {digest.hex()[:16]}", flush=True)
        total.update(digest)
    print("all", total.hexdigest())


if __name__ == "__main__":
    main()
