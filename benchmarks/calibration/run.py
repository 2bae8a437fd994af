#!/usr/bin/env python
"""Calibration of the default learner's per-label probabilities (issue 14): ECE and reliability tables.

Runs the default learner (``make_learner("partitioned")``) prequentially (predict, then learn, every
document, file order, no warm-up) on the 9 shared ARFF streams and Reuters-21578 (hashing features),
through the same evaluator as the accuracy benchmark, and records every probability the learner
publishes (one per label it knows when it predicts) with whether the label turned out relevant.

Per stream it reports the expected calibration error (ECE, ``--bins`` equal-width bins over all
emitted probabilities, and over the bins above the first one: the region where labels are decided),
Brier score and log loss, the reliability table (bins: mean predicted, observed frequency, count), and
subset accuracy / micro-F1 of the run. ``--learner-kwargs`` passes settings to the learner (e.g.
``'{"calibration": "none"}'`` for the learner without its calibrator), so one invocation per setting
gives the before / after tables. The ``adagrad-ovr`` rival of issue 16 (its raw heads' probabilities)
runs on every stream too and gets its own summary table (``--no-rival``: not).

Writes ``RESULTS.md`` and ``results.json`` into ``--output-dir`` (default: beside this script), and
``reliability.png`` when matplotlib (the ``plots`` extra) is installed.
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "OPENBLAS_NUM_THREADS", "1"
)  # see labelflow.stream.cli: BLAS threads slow small products

import argparse
import concurrent.futures
import datetime as dt
import json
import multiprocessing
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/, for the module below

from benchmark_modules import load_benchmark  # noqa: E402

_ACCURACY = load_benchmark("accuracy")
ARFF_DATASETS: dict[str, tuple[str, str, str]] = _ACCURACY.ARFF_DATASETS
TEXT_DATASETS: dict[str, tuple[str, str]] = _ACCURACY.TEXT_DATASETS
git_commit = _ACCURACY.git_commit
machine_description = _ACCURACY.machine_description
STREAMS = (*ARFF_DATASETS, "reuters")
DEFAULT = "partitioned"
RIVAL: str = _ACCURACY.RIVAL  # the simplest strong rival (issue 16), reported beside the default


def datasets_dir() -> Path:
    return Path(os.environ.get("LABELFLOW_DATASETS", REPO.parent / "shared" / "datasets"))


def _recording(model: Any, n_bins: int) -> Any:
    """``model`` wrapped so that every published probability is paired with its outcome when it learns."""
    import numpy as np

    from labelflow.operators.base import Features, Label, MultiLabelClassifier, ScoredLabels
    from labelflow.operators.evaluation.calibration import ReliabilityBins

    class Recorder(MultiLabelClassifier):
        def __init__(self) -> None:
            self.inner = model
            self.bins = ReliabilityBins(n_bins)
            self.unscored_positives = 0  # relevant labels the model did not know yet (no probability)
            self._last: tuple[Features, dict[Label, float]] | None = None

        def predict_with_scores(self, x: Features) -> ScoredLabels:
            decided, scores = self.inner.predict_with_scores(x)
            self._last = (x, scores)
            return decided, scores

        def predict_proba_one(self, x: Features) -> dict[Label, float]:
            return self.predict_with_scores(x)[1]

        def learn_one(self, x: Features, y: Iterable[Label]) -> None:
            y = list(y)
            if self._last is not None and self._last[0] is x:
                scores = self._last[1]
                relevant = set(y)
                p = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
                outcome = np.fromiter(
                    (label in relevant for label in scores), dtype=np.float64, count=len(scores)
                )
                self.bins.add(np.clip(p, 0.0, 1.0), outcome)
                self.unscored_positives += sum(1 for label in relevant if label not in scores)
            self._last = None
            self.inner.learn_one(x, y)

        def drain_events(self) -> list[Any]:
            return self.inner.drain_events()

        @property
        def partition(self) -> Any:
            return self.inner.partition

    return Recorder()


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One stream, one learner setting (in a child process): metrics and the reliability table."""
    from labelflow.operators.evaluation.prequential import evaluate_prequential
    from labelflow.operators.io.streams import open_stream
    from labelflow.operators.learners.registry import make_learner
    from labelflow.stream.commands.evaluate import make_text_embedder

    name = spec["dataset"]
    if name in ARFF_DATASETS:
        folder, file_name, _ = ARFF_DATASETS[name]
        featurizer = None
    else:
        folder, file_name = TEXT_DATASETS[name]
        featurizer = make_text_embedder("hashing")
    stream = open_stream(datasets_dir() / folder / file_name)
    learner = spec["learner"]
    kwargs = spec["learner_kwargs"] if learner == DEFAULT else {}
    recorder = _recording(make_learner(learner, **kwargs), spec["bins"])
    started = time.process_time()
    result = evaluate_prequential(
        stream,
        recorder,
        featurize=featurizer,
        limit=spec["limit"],
        progress=False,
        p_at_k=(1,),  # asks the learner for its scores (predict_with_scores)
        dataset=name,
        segment=None,
    )
    bins = recorder.bins
    return {
        "dataset": name,
        "learner": learner,
        "learner_kwargs": kwargs,
        "n": result.n_instances,
        "cpu_seconds": time.process_time() - started,
        "subset_accuracy": result.metrics["subset_accuracy"],
        "micro_f1": result.metrics["micro_f1"],
        "n_probabilities": bins.n,
        "unscored_positives": recorder.unscored_positives,
        "ece": bins.ece(),
        "ece_upper": bins.ece(min_bin=1),
        "brier": bins.brier(),
        "log_loss": bins.log_loss(),
        "bins": bins.table(),
    }


def run_all(specs: list[dict[str, Any]], jobs: int) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    results = []
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, max_tasks_per_child=1) as pool:
        futures = {pool.submit(run_one, spec): spec for spec in specs}
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            print(
                f"done {r['dataset']:<12} {r['learner']:<12} n={r['n']:<6} ECE={r['ece']:.4f} ECE>1/{len(r['bins'])}="
                f"{r['ece_upper']:.4f} S={r['subset_accuracy']:.4f} μF1={r['micro_f1']:.4f} "
                f"cpu={r['cpu_seconds']:.0f}s",
                file=sys.stderr,
            )
            results.append(r)
    order = {(spec["learner"], spec["dataset"]): i for i, spec in enumerate(specs)}
    return sorted(results, key=lambda r: order[r["learner"], r["dataset"]])


def _f(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _summary(results: list[dict[str, Any]], n_bins: int) -> list[str]:
    lines = [
        f"| stream | documents | probabilities | ECE | ECE above 1/{n_bins} | Brier | log loss | unscored positives"
        " | S | μF1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['dataset']} | {r['n']:,} | {r['n_probabilities']:,} | {_f(r['ece'])} | {_f(r['ece_upper'])} | "
            f"{_f(r['brier'])} | {_f(r['log_loss'])} | {r['unscored_positives']:,} | {_f(r['subset_accuracy'])} | "
            f"{_f(r['micro_f1'])} |"
        )
    return lines


def render(all_results: list[dict[str, Any]], header: dict[str, Any]) -> str:
    n_bins = header["bins"]
    results = [r for r in all_results if r["learner"] == DEFAULT]
    rival = [r for r in all_results if r["learner"] == RIVAL]
    lines = [
        "# Calibration of the default learner's probabilities",
        "",
        f"Command: `{header['command']}`  ",
        f"Machine: {header['machine']}  ",
        f"Date: {header['date']}; commit {header['commit']}; learner settings {header['learner_kwargs'] or 'default'}"
        + (f"; first {header['limit']:,} documents of each stream" if header["limit"] else "; full streams"),
        "",
        f"Prequential (predict, then learn), file order. Every probability the learner publishes (one per label it"
        f" knows at prediction time) is paired with the label's outcome. ECE: {n_bins} equal-width bins over"
        f" all of them; ECE above 1/{n_bins}: the same over the probabilities >= 1/{n_bins} only (where labels"
        " are decided; most probabilities are tiny). Unscored positives: relevant labels the learner had never"
        " seen (no probability to judge).",
        "",
        *_summary(results, n_bins),
    ]
    if rival:
        lines += [
            "",
            f"## The `{RIVAL}` rival",
            "",
            "The simplest strong rival of issue 16 (AdaGrad one-vs-rest heads, one pooled threshold): its raw"
            " heads' probabilities, same protocol, no calibrator.",
            "",
            *_summary(rival, n_bins),
        ]
    lines += ["", "## Reliability tables (the default learner)", ""]
    for r in results:
        lines += [
            f"### {r['dataset']}",
            "",
            "| bin | mean predicted | observed | count |",
            "|---|---|---|---|",
        ]
        for row in r["bins"]:
            lines.append(
                f"| {row['low']:.3f}-{row['high']:.3f} | {_f(row['mean_predicted'])} | {_f(row['observed'])} | "
                f"{row['count']:,} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> bool:
    """The reliability diagrams as one PNG (False when matplotlib is not installed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cols = 5
    rows = (len(results) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax, r in zip(axes.flat, results, strict=False):
        filled = [row for row in r["bins"] if row["count"]]
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
        ax.plot([row["mean_predicted"] for row in filled], [row["observed"] for row in filled], marker="o")
        ax.set_title(f"{r['dataset']} (ECE {r['ece']:.3f})", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    for ax in list(axes.flat)[len(results) :]:
        ax.axis("off")
    fig.supxlabel("mean predicted probability")
    fig.supylabel("observed frequency")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(STREAMS), choices=STREAMS)
    parser.add_argument("--limit", type=int, default=None, help="first N documents of each stream")
    parser.add_argument("--bins", type=int, default=15)
    parser.add_argument(
        "--learner-kwargs", default="{}", help="JSON settings for make_learner('partitioned')"
    )
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--no-rival", action="store_true", help=f"do not run the {RIVAL} rival")
    parser.add_argument("--output-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)
    learner_kwargs = json.loads(args.learner_kwargs)
    learners = [DEFAULT] if args.no_rival else [DEFAULT, RIVAL]
    specs = [
        {
            "dataset": name,
            "learner": learner,
            "limit": args.limit,
            "bins": args.bins,
            "learner_kwargs": learner_kwargs,
        }
        for learner in learners
        for name in args.datasets
    ]
    results = run_all(specs, args.jobs)
    header = {
        "command": "python benchmarks/calibration/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_description(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "limit": args.limit,
        "bins": args.bins,
        "learner_kwargs": learner_kwargs,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "results.json").write_text(
        json.dumps({"header": header, "results": results}, indent=1)
    )
    (args.output_dir / "RESULTS.md").write_text(render(results, header) + "\n")
    plot([r for r in results if r["learner"] == DEFAULT], args.output_dir / "reliability.png")
    print(f"wrote {args.output_dir / 'RESULTS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
