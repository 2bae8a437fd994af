#!/usr/bin/env python
"""Ablation of the default learner: each component switched off in turn, its cost against its worth.

For every stream (the 9 shared ARFF streams, Reuters-21578 with hashing features and, with
``--eurlex-limit``, a prefix of EUR-Lex 57k) and every variant of the default learner (one component
off; see ``VARIANTS``), the stream is run prequentially (every instance predicted, then learned, in
file order) and the run reports

* speed: documents per CPU-second (``time.process_time`` inside the model's predict and learn calls,
  the median of ``--repeats`` runs; the variants of a repeat run one after another, so a load change on
  the shared machine hits them alike), and the CPU time against the default's in the same process;
* quality: subset accuracy and micro-F1 (deterministic: the first repeat's).

The numpy AdaGrad one-vs-rest rival (``adagrad-ovr``) runs beside them as the reference for speed.
Writes ``RESULTS.md`` and ``results.json`` beside this script (or into ``--output-dir``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # BLAS threads slow the small products down

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Hashable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

#: Benchmark name -> path under the datasets folder (the accuracy benchmark's streams, in its order).
STREAMS: dict[str, str] = {
    "emotions": "emotions/emotions.arff",
    "yeast": "yeast/yeast.arff.gz",
    "scene": "scene/Scene.arff.gz",
    "medical": "medical/Medical.arff",
    "slashdot": "slashdot/Slashdot.arff",
    "enron": "enron/Enron.arff",
    "tmc2007_500": "tmc2007_500/tmc2007-500.arff.gz",
    "20ng": "20ng/20NG.arff.gz",
    "bibtex": "bibtex/Bibtex.arff.gz",
    "reuters": "reuters21578_modapte/reuters21578_modapte.jsonl",
    "eurlex": "eurlex57k/eurlex57k.jsonl.gz",
}
ARFF = tuple(list(STREAMS)[:9])
EURLEX_HASHING_FEATURES = 2**16  # as the accuracy benchmark: 4,271 labels x 2**18 would not fit


def _frozen_clusterer() -> dict[str, Any]:
    from labelflow.operators.labels.clustering import LabelClusterer

    # Labels still join clusters as they first appear (with the labels they co-occur with), but the
    # clusters are never evaluated, so never split or merged.
    return {"clusterer": LabelClusterer(grace_period=2**62)}


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    learner: str = "partitioned"
    kwargs: Callable[[], dict[str, Any]] = dict


VARIANTS: tuple[Variant, ...] = (
    Variant("default", "the default learner, every component on"),
    Variant("no-neighbours", "no neighbour vote", kwargs=lambda: {"neighbours_k": 0}),
    Variant(
        "no-stacker",
        "stacker not learned (fixed half head, half neighbours)",
        kwargs=lambda: {"stack_learning_rate": 0.0},
    ),
    Variant(
        "no-temporal", "latest label set not used as evidence", kwargs=lambda: {"temporal_context": False}
    ),
    Variant(
        "no-decoding", "no subset decoding (per-label decisions)", kwargs=lambda: {"label_set_prior": 0.0}
    ),
    Variant(
        "no-clustering", "clusters frozen as labels arrive (no splits or merges)", kwargs=_frozen_clusterer
    ),
    Variant(
        "no-performance-drift",
        "no per-cluster performance drift (no adaptation)",
        kwargs=lambda: {"drift_detectors": ("label_prior", "label_dependence", "input")},
    ),
    Variant(
        "no-label-prior-drift",
        "no label prior drift detector",
        kwargs=lambda: {"drift_detectors": ("performance", "label_dependence", "input")},
    ),
    Variant(
        "no-dependence-drift",
        "no label dependence drift detector",
        kwargs=lambda: {"drift_detectors": ("performance", "label_prior", "input")},
    ),
    Variant(
        "no-input-drift",
        "no input drift detector",
        kwargs=lambda: {"drift_detectors": ("performance", "label_prior", "label_dependence")},
    ),
    Variant("no-drift", "no drift detector at all", kwargs=lambda: {"drift_detectors": ()}),
    Variant(
        "no-thresholds",
        "fixed threshold 0.5 instead of the adaptive one",
        kwargs=lambda: {"adaptive_thresholds": False},
    ),
    Variant("adagrad-ovr", "the rival: AdaGrad one-vs-rest with a pooled threshold", learner="adagrad-ovr"),
)


# -- one stream ----------------------------------------------------------------------------------


def load_stream(name: str, datasets_dir: Path, limit: int | None) -> list[tuple[Any, list[Hashable]]]:
    """The instances of a stream as (features, labels), featurized once for every variant."""
    import itertools

    from labelflow.operators.io.streams import open_stream

    stream = open_stream(datasets_dir / STREAMS[name])
    instances = list(itertools.islice(stream, limit) if limit else stream)
    if name in ARFF:
        return [(inst.x, list(inst.labels)) for inst in instances]
    from labelflow.operators.embedders.registry import make_embedder

    kwargs = {"n_features": EURLEX_HASHING_FEATURES} if name == "eurlex" else {}
    embedder = make_embedder("hashing", **kwargs)
    embed = getattr(embedder, "embed_many", None) or embedder.transform_many
    out = []
    for start in range(0, len(instances), 256):
        chunk = instances[start : start + 256]
        out += list(
            zip(embed([inst.text for inst in chunk]), [list(inst.labels) for inst in chunk], strict=True)
        )
    return out


#: Documents a throwaway model learns before any timed run: it loads the compiled kernels (numba sets
#: itself up on the first compiled call of a process, about a second, and compiles a kernel missing from
#: its disk cache) for the stream's kind of input, a cost of the process, not of the documents. Some
#: kernels are first called late (the threshold pooling at document 50, the performance detector's quiet
#: window near 130, the input detector's reference fit after 512 inputs), each load 5-10 ms: 600
#: documents reach them all (a stream shorter than that is warmed up on all of it).
WARM_UP = 600


def warm_up(variant: Variant, instances: Sequence[tuple[Any, list[Hashable]]]) -> None:
    """Run ``variant`` untimed on the first :data:`WARM_UP` documents (every timed model is fresh)."""
    run_variant(variant, instances[:WARM_UP])


def run_variant(variant: Variant, instances: Sequence[tuple[Any, list[Hashable]]]) -> dict[str, float]:
    """One prequential run: CPU seconds in the model's calls, subset accuracy, micro-F1."""
    from labelflow.operators.learners.registry import make_learner

    model = make_learner(variant.learner, **variant.kwargs())
    cpu = time.process_time
    spent = 0.0
    exact = tp = fp = fn = 0
    for x, labels in instances:
        c0 = cpu()
        predicted, _ = model.predict_with_scores(x)  # type: ignore[attr-defined]
        model.learn_one(x, labels)
        spent += cpu() - c0
        truth = set(labels)
        exact += predicted == truth
        hits = len(predicted & truth)
        tp, fp, fn = tp + hits, fp + len(predicted) - hits, fn + len(truth) - hits
    n = len(instances)
    return {
        "cpu_seconds": spent,
        "subset_accuracy": exact / n if n else 0.0,
        "micro_f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
    }


def run_stream(
    name: str, datasets_dir: Path, limit: int | None, repeats: int, variants: Sequence[Variant]
) -> dict[str, Any]:
    instances = load_stream(name, datasets_dir, limit)
    runs: dict[str, list[dict[str, float]]] = {v.name: [] for v in variants}
    if not variants:  # --breakdown alone
        return {"stream": name, "n": len(instances), "limit": limit, "repeats": 0, "variants": {}}
    for variant in variants:
        warm_up(variant, instances)
    for _ in range(repeats):
        for variant in variants:
            runs[variant.name].append(run_variant(variant, instances))
    results = {}
    for variant in variants:
        first = runs[variant.name][0]
        cpu_seconds = statistics.median(r["cpu_seconds"] for r in runs[variant.name])
        results[variant.name] = {
            "cpu_seconds": cpu_seconds,
            "cpu_seconds_runs": [r["cpu_seconds"] for r in runs[variant.name]],
            "docs_per_cpu_second": len(instances) / cpu_seconds if cpu_seconds > 0 else None,
            "subset_accuracy": first["subset_accuracy"],
            "micro_f1": first["micro_f1"],
        }
        print(
            f"{name:<12} {variant.name:<22} S={first['subset_accuracy']:.4f} μF1={first['micro_f1']:.4f} "
            f"{results[variant.name]['docs_per_cpu_second']:,.0f} docs/CPU-s",
            file=sys.stderr,
            flush=True,
        )
    return {"stream": name, "n": len(instances), "limit": limit, "repeats": repeats, "variants": results}


# -- where the default's time goes ----------------------------------------------------------------

#: (module, class, methods) timed by ``--breakdown``; nested calls are counted in their callers too.
TIMED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "labelflow.operators.learners.partitioned",
        "PartitionedClassifier",
        ("_forward", "_decide_shifted", "_named", "_learn"),
    ),
    ("labelflow.operators.learners.feature_scaling", "FeatureScaler", ("transform", "learn_one")),
    ("labelflow.operators.learners.linear", "LinearHeads", ("products", "learn_gradient")),
    ("labelflow.operators.learners.neighbours", "RecentNeighbours", ("embed", "votes", "learn")),
    ("labelflow.operators.learners.powerset", "LabelSetDecoder", ("decode_one", "learn", "_compile")),
    ("labelflow.operators.learners.thresholds", "AdaptiveThresholds", ("update",)),
    (
        "labelflow.operators.learners.drift_handling",
        "DriftHandler",
        ("observe", "flush", "_performance_events"),
    ),
    ("labelflow.operators.drift.input", "InputDriftDetector", ("update_many",)),
    ("labelflow.operators.drift.dependence", "LabelDependenceDriftDetector", ("update_many",)),
    ("labelflow.operators.drift.label_prior", "LabelPriorDriftDetector", ("update_many",)),
    ("labelflow.operators.labels.clustering", "LabelClusterer", ("learn_one",)),
)


def breakdown(instances: Sequence[tuple[Any, list[Hashable]]]) -> dict[str, float]:
    """CPU microseconds per document in each timed method of the flat default learner.

    Every timed call adds two ``process_time`` reads (about a microsecond): the figures are for
    telling where the time goes, the speed columns of the tables are measured without them.
    """
    import importlib

    from labelflow.operators.learners.partitioned import PartitionedClassifier

    warm_up(VARIANTS[0], instances)
    spent: dict[str, float] = {}
    originals = []
    for module_name, class_name, methods in TIMED:
        cls = getattr(importlib.import_module(module_name), class_name)
        for method in methods:
            original = getattr(cls, method)
            originals.append((cls, method, original))

            def timed(
                *args: Any, _original: Any = original, _key: str = f"{class_name}.{method}", **kw: Any
            ) -> Any:
                started = time.process_time()
                try:
                    return _original(*args, **kw)
                finally:
                    spent[_key] = spent.get(_key, 0.0) + time.process_time() - started

            setattr(cls, method, timed)
    try:
        model = PartitionedClassifier()
        started = time.process_time()
        for x, labels in instances:
            model.predict_with_scores(x)
            model.learn_one(x, labels)
        spent["total (predict + learn)"] = time.process_time() - started
    finally:
        for cls, method, original in originals:
            setattr(cls, method, original)
    return {key: 1e6 * value / len(instances) for key, value in spent.items()}


# -- report --------------------------------------------------------------------------------------


def _describe_machine() -> str:
    from labelflow.operators.evaluation.machine import describe_machine

    return (
        describe_machine() + f"; load average {os.getloadavg()[0]:.1f} when the run started (shared machine)"
    )


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_report(payload: dict[str, Any], variants: Sequence[Variant]) -> str:
    streams = payload["streams"]
    lines = [
        "# Ablation of the default learner",
        "",
        f"- Command: `{payload['command']}`",
        f"- Machine: {payload['machine']}",
        f"- Date: {payload['date']}",
        f"- Git commit: {payload['git_commit']}",
        "- Protocol: prequential (every instance predicted, then learned), file order; compiled kernels loaded "
        f"by an untimed throwaway model on the first {WARM_UP} documents, every timed model fresh. "
        "Speed: documents per CPU-second of the model's predict + learn calls (`time.process_time`), "
        "median of the repeats; 'cost' is the variant's CPU time over the default's in the same process. "
        "Quality: subset accuracy (S) and micro-F1 (μF1), deterministic. Δ = variant minus default.",
        "",
        "## Variants",
        "",
        *[f"- `{v.name}`: {v.what}" for v in variants],
        "",
        "## Summary over the streams",
        "",
        "A component pays for itself where switching it off costs quality. 'Cost vs default' is the "
        "variant's CPU time over the default's (median over the streams): 1 minus it is the share of the "
        "default's time spent on the component.",
        "",
        "| variant | median docs/CPU-s | median cost vs default | mean ΔS | mean ΔμF1 | streams with ΔS < -0.005 | streams with ΔμF1 < -0.005 | worst ΔS | worst ΔμF1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        rates, costs, ds, df = [], [], [], []
        for s in streams:
            r, d = s["variants"].get(v.name), s["variants"].get("default")
            if not r or not d:
                continue
            rates.append(r["docs_per_cpu_second"])
            costs.append(r["cpu_seconds"] / d["cpu_seconds"])
            ds.append(r["subset_accuracy"] - d["subset_accuracy"])
            df.append(r["micro_f1"] - d["micro_f1"])
        if not rates:
            continue
        lines.append(
            f"| {v.name} | {statistics.median(rates):,.0f} | {statistics.median(costs):.2f} "
            f"| {statistics.fmean(ds):+.4f} | {statistics.fmean(df):+.4f} "
            f"| {sum(x < -0.005 for x in ds)}/{len(ds)} | {sum(x < -0.005 for x in df)}/{len(df)} "
            f"| {min(ds):+.4f} | {min(df):+.4f} |"
        )
    breakdowns = [s for s in streams if s.get("breakdown")]
    if breakdowns:
        keys = sorted(
            {k for s in breakdowns for k in s["breakdown"]},
            key=lambda k: -breakdowns[0]["breakdown"].get(k, 0.0),
        )
        lines += [
            "",
            "## Where the default's time goes",
            "",
            "CPU µs per document in each method of the flat default learner (`--breakdown`; one run, every "
            "timed call adds about 1 µs; nested calls count in their callers too, e.g. `_learn` holds the "
            "heads' and drift handler's learning)."
            + (
                f" Measured separately: `{payload['breakdown']['command']}`, {payload['breakdown']['date']}, "
                f"commit {payload['breakdown']['git_commit']}, {payload['breakdown']['machine']}."
                if "breakdown" in payload
                else ""
            ),
            "",
            "| method | " + " | ".join(s["stream"] for s in breakdowns) + " |",
            "|---|" + "---|" * len(breakdowns),
        ]
        for key in keys:
            lines.append(
                f"| {key} | " + " | ".join(f"{s['breakdown'].get(key, 0.0):,.1f}" for s in breakdowns) + " |"
            )
    lines += ["", "## Per stream", ""]
    for s in streams:
        if "default" not in s["variants"]:
            continue
        d = s["variants"]["default"]
        limit = f", first {s['n']}" if s["limit"] else ""
        lines += [
            f"### {s['stream']} ({s['n']} documents{limit}, {s['repeats']} repeats)",
            "",
            "| variant | docs/CPU-s | cost vs default | S | μF1 | ΔS | ΔμF1 |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in variants:
            r = s["variants"].get(v.name)
            if not r:
                continue
            lines.append(
                f"| {v.name} | {r['docs_per_cpu_second']:,.0f} | {r['cpu_seconds'] / d['cpu_seconds']:.2f} "
                f"| {r['subset_accuracy']:.4f} | {r['micro_f1']:.4f} "
                f"| {r['subset_accuracy'] - d['subset_accuracy']:+.4f} | {r['micro_f1'] - d['micro_f1']:+.4f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", nargs="+", default=[*ARFF, "reuters"], choices=list(STREAMS))
    parser.add_argument(
        "--variants", nargs="*", default=[v.name for v in VARIANTS], choices=[v.name for v in VARIANTS]
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant (speed is their median)")
    parser.add_argument("--limit", type=int, help="first N documents of every stream")
    parser.add_argument("--eurlex-limit", type=int, default=0, help="also run the first N EUR-Lex documents")
    parser.add_argument("--eurlex-repeats", type=int, default=1, help="runs per variant on EUR-Lex")
    parser.add_argument(
        "--datasets-dir",
        type=Path,
        default=Path(os.environ.get("LABELFLOW_DATASETS", REPO.parent / "shared" / "datasets")),
    )
    parser.add_argument("--output-dir", type=Path, default=HERE)
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time each component of the default (one run per stream)",
    )
    parser.add_argument(
        "--from-json", type=Path, help="only rewrite RESULTS.md from a results.json this script wrote"
    )
    args = parser.parse_args(argv)
    # The default runs whenever any variant does: every figure is relative to it.
    variants = [v for v in VARIANTS if v.name in args.variants or (args.variants and v.name == "default")]
    if args.from_json:
        payload = json.loads(args.from_json.read_text())
        (args.output_dir / "RESULTS.md").write_text(build_report(payload, variants) + "\n")
        return 0
    payload: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "machine": _describe_machine(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": _git_commit(),
        "streams": [],
    }
    plan = [(name, args.limit, args.repeats) for name in args.streams if name != "eurlex"]
    if args.eurlex_limit:
        plan.append(("eurlex", args.eurlex_limit, args.eurlex_repeats))
    for name, limit, repeats in plan:
        result = run_stream(name, args.datasets_dir, limit, repeats, variants)
        if args.breakdown:
            result["breakdown"] = breakdown(load_stream(name, args.datasets_dir, limit))
        payload["streams"].append(result)
        args.output_dir.mkdir(parents=True, exist_ok=True)  # written after every stream: nothing is lost
        (args.output_dir / "results.json").write_text(json.dumps(payload, indent=1))
        (args.output_dir / "RESULTS.md").write_text(build_report(payload, variants) + "\n")
    print(f"wrote {args.output_dir / 'RESULTS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
