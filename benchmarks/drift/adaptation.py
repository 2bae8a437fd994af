"""Does drift adaptation pay? The default learner with and without it, on drifting and stationary streams.

For each kind of sudden drift of the synthetic generator (and a stationary stream), the same
``PartitionedClassifier`` runs prequentially twice over the same hashed documents: with its default drift
handling (``drift_adaptation="background"``) and with detection only (``"none"``: the model is never
changed by a detector). Reported: micro-F1 over the whole stream and after the drift, the difference,
and the adaptations made. Also the same on the time-ordered Reuters stream.

    .venv/bin/python benchmarks/drift/adaptation.py --out benchmarks/drift/adaptation.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from labelflow.operators.datasets.synthetic import DriftEventConfig, SyntheticStream, SyntheticStreamConfig
from labelflow.operators.features.hashing import HashingFeaturizer
from labelflow.operators.learners.partitioned import PartitionedClassifier

REPO = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("LABELFLOW_DATASETS", REPO.parent / "shared" / "datasets"))
KINDS = ("label_prior", "label_correlation", "new_label", "vocabulary", "label_swap")


def micro_f1(counts: np.ndarray) -> float:
    tp, fp, fn = counts
    return 2 * tp / max(2 * tp + fp + fn, 1)


def run(xs, ys, adaptation: str, split_at: int | None) -> dict:
    model = PartitionedClassifier(drift_adaptation=adaptation)
    whole, after = np.zeros(3), np.zeros(3)
    kinds: dict[str, int] = {}
    started = time.process_time()
    for position, (x, y) in enumerate(zip(xs, ys)):
        truth = set(y)
        predicted = model.predict_one(x)
        model.learn_one(x, y)
        counts = np.array([len(predicted & truth), len(predicted - truth), len(truth - predicted)])
        whole += counts
        if split_at is not None and position >= split_at:
            after += counts
        for event in model.drain_events():
            key = f"{event.kind}:{event.action}"
            kinds[key] = kinds.get(key, 0) + 1
    return {
        "micro_f1": micro_f1(whole),
        "micro_f1_after_drift": micro_f1(after) if split_at is not None else None,
        "adaptations": model.drift.n_adaptations,
        "events": kinds,
        "cpu_seconds": time.process_time() - started,
    }


def synthetic(kind: str | None, seed: int, n: int, position: int):
    events = [] if kind is None else [DriftEventConfig(kind=kind, position=position)]
    docs = list(SyntheticStream(SyntheticStreamConfig(seed=seed, n_documents=n, drift_events=events)))
    return [d.text for d in docs], [d.labels for d in docs]


def reuters():
    path = DATASETS / "reuters21578_modapte" / "reuters21578_modapte.jsonl"
    docs = [json.loads(line) for line in path.open(encoding="utf-8")]
    return [d["text"] for d in docs], [d["labels"] for d in docs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=8000)
    parser.add_argument("--drift-at", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-reuters", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    featurizer = HashingFeaturizer()
    rows = []
    for kind in (*KINDS, None):
        for seed in range(args.seeds):
            texts, labels = synthetic(kind, seed, args.documents, args.drift_at)
            xs = featurizer.transform_many(texts)
            split = args.drift_at if kind else None
            with_, without = run(xs, labels, "background", split), run(xs, labels, "none", split)
            rows.append({"stream": kind or "stationary", "seed": seed, "with": with_, "without": without})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if not args.skip_reuters:
        texts, labels = reuters()
        xs = featurizer.transform_many(texts)
        with_, without = run(xs, labels, "background", None), run(xs, labels, "none", None)
        rows.append({"stream": "reuters (time order)", "seed": "-", "with": with_, "without": without})
    lines = [
        "# Drift adaptation: the default learner with and without it",
        "",
        f"- Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
        f"- Date: {dt.date.today().isoformat()}",
        f"- Streams: synthetic generator, {args.documents} documents, one sudden drift at {args.drift_at} "
        f"(default magnitude), seeds 0..{args.seeds - 1}; hashing features; prequential micro-F1.",
        "- 'with': `drift_adaptation=\"background\"` (default); 'without': `\"none\"` (detection only).",
        "",
        "| stream | micro-F1 with / without (median over seeds) | difference (points) | after drift with / without | adaptations (median) |",
        "|---|---|---|---|---|",
    ]
    by_stream: dict[str, list[dict]] = {}
    for row in rows:
        by_stream.setdefault(row["stream"], []).append(row)
    for stream, group in by_stream.items():
        w = statistics.median(r["with"]["micro_f1"] for r in group)
        wo = statistics.median(r["without"]["micro_f1"] for r in group)
        after = [r for r in group if r["with"]["micro_f1_after_drift"] is not None]
        after_text = (
            f"{statistics.median(r['with']['micro_f1_after_drift'] for r in after):.4f} / "
            f"{statistics.median(r['without']['micro_f1_after_drift'] for r in after):.4f}" if after else "-"
        )
        adaptations = statistics.median(r["with"]["adaptations"] for r in group)
        lines.append(f"| {stream} | {w:.4f} / {wo:.4f} | {100 * (w - wo):+.2f} | {after_text} | {adaptations:g} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
