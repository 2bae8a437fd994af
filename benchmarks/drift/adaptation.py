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
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from labelflow.operators.datasets.synthetic import DriftEventConfig, SyntheticStream, SyntheticStreamConfig
from labelflow.operators.evaluation.machine import describe_machine
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


def synthetic(kind: str | None, seed: int, n: int, position: int, magnitude: float | None = None):
    events = [] if kind is None else [DriftEventConfig(kind=kind, position=position, magnitude=magnitude)]
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
    # The strongest concept drift the generator has: every label's meaning moves to another label.
    cases = [(kind, None, kind) for kind in KINDS] + [("label_swap", 1.0, "label_swap (every label)"), (None, None, "stationary")]
    for kind, magnitude, stream in cases:
        for seed in range(args.seeds):
            texts, labels = synthetic(kind, seed, args.documents, args.drift_at, magnitude)
            xs = featurizer.transform_many(texts)
            split = args.drift_at if kind else None
            with_, without = run(xs, labels, "background", split), run(xs, labels, "none", split)
            rows.append({"stream": stream, "seed": seed, "with": with_, "without": without})
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
        f"- Machine: {describe_machine()}",
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
    stationary = by_stream.get("stationary")
    if stationary:
        level = statistics.median(r["without"]["micro_f1"] for r in stationary)
        worst = min(
            (statistics.median(r["without"]["micro_f1_after_drift"] for r in group), stream)
            for stream, group in by_stream.items() if group[0]["without"]["micro_f1_after_drift"] is not None
        )
        lines += [
            "",
            "Reading: the room adaptation has is what the model loses without it. Without adaptation the worst "
            f"after-drift micro-F1 is {worst[0]:.4f} ({worst[1]}) against {level:.4f} on the stationary stream: "
            "the default learner follows drift by itself (a recent-window neighbour vote, the latest label set, "
            "faded subset counts and thresholds, AdaGrad heads), so detector-triggered adaptation can only add "
            "what is left of that gap over the documents after the drift.",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
