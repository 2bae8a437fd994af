#!/usr/bin/env python
"""A fingerprint of the drift events and adaptations of the default learner, to check that a change of the
drift bookkeeping's code changes none of them.

Test-then-train over the nine ARFF streams (all of each, or the first ``--limit`` instances) and over
synthetic hashed streams with one sudden drift of each kind the generator has (the drift at half the
stream); half-way through each stream the model goes through a checkpoint, so the state round trip is
part of the fingerprint. Every event drained (kind, level, labels, detector, position, severity, action,
the statistic's and threshold's float bits) and every decided label set go into a SHA-256 per stream.
Two versions of the code detect and adapt the same exactly when their fingerprints are equal (on the
same machine: BLAS results may differ across CPUs).

    .venv/bin/python benchmarks/drift/event_digest.py [--limit N] [--synthetic-documents N] [-v]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import struct
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labelflow.operators.datasets.synthetic import DriftEventConfig, SyntheticStream, SyntheticStreamConfig
from labelflow.operators.embedders.hashing import HashingFeaturizer
from labelflow.operators.io.streams import open_stream
from labelflow.operators.learners.registry import make_learner
from labelflow.operators.state import State

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/, for the module below

from benchmark_modules import load_benchmark  # noqa: E402

DATASETS = Path(os.environ.get("LABELFLOW_DATASETS", HERE.parent.parent.parent / "shared" / "datasets"))
ARFF_STREAMS = tuple(
    f"{folder}/{file}" for folder, file, _ in load_benchmark("accuracy").ARFF_DATASETS.values()
)
SYNTHETIC_KINDS = ("label_prior", "label_correlation", "new_label", "vocabulary", "label_swap")


def digest_run(instances: Sequence[tuple[Any, Sequence[Any]]], verbose: bool) -> tuple[bytes, str]:
    """The fingerprint of one prequential run and a count of its events by kind and action."""
    model = make_learner()
    digest = hashlib.sha256()
    counts: collections.Counter[str] = collections.Counter()
    for i, (x, labels) in enumerate(instances):
        if i == len(instances) // 2:
            with tempfile.TemporaryDirectory() as directory:
                model.state().save(Path(directory))
                model = type(model).from_state(State.load(Path(directory)))
        decided = model.predict_one(x)
        digest.update(repr(sorted(map(str, decided))).encode())
        model.learn_one(x, labels)
        for event in model.drain_events():
            key = (event.kind, event.level, tuple(map(str, event.labels)), event.detector, event.position)
            digest.update(repr((*key, event.severity, event.action)).encode())
            digest.update(struct.pack("<dd", event.statistic, event.threshold))
            counts[f"{event.kind}:{event.severity}:{event.action}"] += 1
            if verbose:
                print("   ", *key, event.severity, event.action, f"{event.statistic:.6g}")
    return digest.digest(), ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))


def synthetic(kind: str, n: int) -> list[tuple[Any, Sequence[Any]]]:
    drift = DriftEventConfig(kind=kind, position=n // 2, magnitude=None, mode="sudden")
    docs = list(SyntheticStream(SyntheticStreamConfig(seed=0, n_documents=n, drift_events=[drift])))
    xs = HashingFeaturizer().transform_many([d.text for d in docs])
    return list(zip(xs, [d.labels for d in docs], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="the first N instances of every ARFF stream")
    parser.add_argument("--synthetic-documents", type=int, default=6000, help="0: no synthetic streams")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every event")
    args = parser.parse_args()
    total = hashlib.sha256()
    runs: list[tuple[str, Any]] = [(relative, None) for relative in ARFF_STREAMS]
    if args.synthetic_documents:
        runs += [(f"synthetic {kind}", kind) for kind in SYNTHETIC_KINDS]
    for name, kind in runs:
        if kind is None:
            instances = [(inst.x, inst.labels) for inst in open_stream(DATASETS / name, limit=args.limit)]
        else:
            instances = synthetic(kind, args.synthetic_documents)
        digest, summary = digest_run(instances, args.verbose)
        print(f"{name:<36} n={len(instances):<6} {digest.hex()[:16]}  {summary}", flush=True)
        total.update(digest)
    print("all", total.hexdigest())


if __name__ == "__main__":
    main()
