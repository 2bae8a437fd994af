"""Large label spaces: the default learner against Vowpal Wabbit's PLT and the flat learner, prequentially.

Streams: the seeded power-law streams of ``operators/datasets/power_law.py`` (1k, 10k, 100k, 1M labels;
~4 labels a document; 2**18 hashed feature columns, ~45 present per document) and EUR-Lex 57k in year
order (hashed word uni- and bigrams, 2**16 columns, as benchmarks/accuracy). Every learner sees the same
feature vectors, in the same order, and is scored on every document before it learns it (prequential).

Learners:

* ``default``: ``make_learner("partitioned")``, the worker's default (``ScalingClassifier``: the flat
  learner on small label spaces, the label tree once the label space is large);
* ``vw-plt``: Vowpal Wabbit ``--plt K --loss_function logistic -b 25`` (K = the size of the label space,
  which VW must know in advance) with ``--top_k 5`` for P@k; micro-F1 from a second VW model in its
  default threshold mode (0.5) on the same stream, timed apart (the throughput is the top-k model's);
* ``flat``: today's dense default learner alone (``PartitionedClassifier``), where it fits in memory.

Measured per run (each run in its own process, one at a time): documents per CPU-second of the
learner's own calls (predict, then learn; features are made outside the timer), peak RSS of the process
(``ru_maxrss``; the process's RSS before the learner is created is shown beside it), checkpoint size
and write time (``state().save`` / VW's ``save``), P@1, P@5 and micro-F1 over every document.

Usage: ``python benchmarks/scale/run.py --runs synthetic-1000:default synthetic-1000:vw-plt ...``
(``--all`` for the committed table). VW is the optional extra ``labelflow[bench-scale]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SYNTHETIC_DOCS = 50_000
SYNTHETIC_FEATURES = 2**18
EURLEX_FEATURES = 2**16
EURLEX_LABELS = 4271
ALL_RUNS = [
    *(
        f"synthetic-{n}:{learner}"
        for n in (1000, 10_000, 100_000, 1_000_000)
        for learner in ("default", "vw-plt")
    ),
    "synthetic-1000:flat",
    "eurlex:default",
    "eurlex:vw-plt",
]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _documents(stream: str, limit: int | None) -> Iterator[tuple[Any, list[str]]]:
    """(SparseVector, label names) in stream order, made lazily (features are not held in memory)."""
    if stream.startswith("synthetic-"):
        from labelflow.operators.datasets.power_law import PowerLawLabelStream, PowerLawStreamConfig

        config = PowerLawStreamConfig(
            n_labels=int(stream.split("-")[1]), n_features=SYNTHETIC_FEATURES, seed=0
        )
        generator = PowerLawLabelStream(config)
        for _ in range(limit or SYNTHETIC_DOCS):
            doc = generator.next_document()
            yield doc.features, doc.labels
        return
    from labelflow.operators.embedders.registry import make_embedder

    featurizer = make_embedder("hashing", n_features=EURLEX_FEATURES)
    path = Path(os.environ.get("LABELFLOW_DATASETS", REPO.parent / "shared" / "datasets"))
    batch: list[dict[str, Any]] = []
    n = 0
    with gzip.open(path / "eurlex57k" / "eurlex57k.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            batch.append(json.loads(line))
            n += 1
            if len(batch) == 256 or (limit is not None and n >= limit):
                yield from zip(
                    featurizer.embed_many([d["text"] for d in batch]),
                    [d["labels"] for d in batch],
                    strict=False,
                )
                batch = []
            if limit is not None and n >= limit:
                return
    yield from zip(
        featurizer.embed_many([d["text"] for d in batch]), [d["labels"] for d in batch], strict=False
    )


class _Scores:
    def __init__(self) -> None:
        self.n = 0
        self.hits1 = self.hits5 = 0.0
        self.tp = self.fp = self.fn = 0

    def add(self, top: list[str], decided: set[str], truth: set[str]) -> None:
        self.n += 1
        self.hits1 += bool(top) and top[0] in truth
        self.hits5 += len(set(top[:5]) & truth) / 5.0
        self.tp += len(decided & truth)
        self.fp += len(decided - truth)
        self.fn += len(truth - decided)

    def result(self) -> dict[str, float]:
        return {
            "p_at_1": self.hits1 / max(self.n, 1),
            "p_at_5": self.hits5 / max(self.n, 1),
            "micro_f1": 2 * self.tp / max(2 * self.tp + self.fp + self.fn, 1),
        }


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _warm_up(stream: str, learner: str) -> None:
    """Compile the learners' kernels (numba compiles on first call, then caches on disk) on a few documents
    of the stream, before the timer starts: the table measures learning, not compiling."""
    from labelflow.operators.learners.registry import make_learner
    from labelflow.operators.learners.tree_classifier import LabelTreeClassifier

    for model in (
        make_learner("partitioned" if learner == "default" else "flat"),
        LabelTreeClassifier(bits=12),
    ):
        for x, labels in _documents(stream, 8):
            model.predict_with_scores(x)
            model.learn_one(x, labels)


def run_ours(stream: str, learner: str, limit: int | None) -> dict[str, Any]:
    from labelflow.operators.learners.registry import make_learner

    _warm_up(stream, learner)
    rss_before = _rss_mb()
    model: Any = make_learner("partitioned" if learner == "default" else "flat")
    scores = _Scores()
    cpu = 0.0
    for x, labels in _documents(stream, limit):
        start = time.process_time()
        decided, probabilities = model.predict_with_scores(x)
        model.learn_one(x, labels)
        cpu += time.process_time() - start
        top = sorted(probabilities, key=lambda k: -probabilities[k])[:5]
        scores.add([str(k) for k in top], {str(k) for k in decided}, set(labels))
    with tempfile.TemporaryDirectory() as tmp:
        wall, start_cpu = time.perf_counter(), time.process_time()
        model.state().save(Path(tmp) / "state")
        write_s, write_cpu = time.perf_counter() - wall, time.process_time() - start_cpu
        size = _dir_bytes(Path(tmp))
    extra = {"active": getattr(model, "active", "flat"), "n_labels": len(model.labels)}
    return {
        **scores.result(),
        "n": scores.n,
        "cpu_s": cpu,
        "docs_per_cpu_s": scores.n / cpu,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _rss_mb(),
        "checkpoint_mb": size / 2**20,
        "checkpoint_write_s": write_s,
        "checkpoint_write_cpu_s": write_cpu,
        **extra,
    }


def run_vw(stream: str, limit: int | None) -> dict[str, Any]:
    import vowpalwabbit

    n_labels = EURLEX_LABELS if stream == "eurlex" else int(stream.split("-")[1])
    rss_before = _rss_mb()
    common = f"--plt {n_labels} --loss_function logistic -b 25 --quiet"
    ranked = vowpalwabbit.Workspace(f"{common} --top_k 5")
    thresholded = vowpalwabbit.Workspace(common)
    ids: dict[str, int] = {}
    names: list[str] = []
    scores = _Scores()
    cpu = cpu_threshold = 0.0
    for x, labels in _documents(stream, limit):
        for label in labels:
            if label not in ids:
                ids[label] = len(names)
                names.append(label)
        features = " ".join(
            f"{i}:{v:.6g}" for i, v in zip(x.indices.tolist(), x.values.tolist(), strict=True)
        )
        unlabelled = f"| {features}"
        labelled = f"{','.join(str(ids[label]) for label in labels)} {unlabelled}"
        start = time.process_time()
        top = ranked.predict(unlabelled)
        ranked.learn(labelled)
        middle = time.process_time()
        decided = thresholded.predict(unlabelled)
        thresholded.learn(labelled)
        cpu_threshold += time.process_time() - middle
        cpu += middle - start
        scores.add(
            [names[i] for i in top if i < len(names)],
            {names[i] for i in decided if i < len(names)},
            set(labels),
        )
    with tempfile.TemporaryDirectory() as tmp:
        wall, start_cpu = time.perf_counter(), time.process_time()
        ranked.save(str(Path(tmp) / "model.vw"))
        write_s, write_cpu = time.perf_counter() - wall, time.process_time() - start_cpu
        size = _dir_bytes(Path(tmp))
    ranked.finish()
    thresholded.finish()
    return {
        **scores.result(),
        "n": scores.n,
        "cpu_s": cpu,
        "docs_per_cpu_s": scores.n / cpu,
        "threshold_model_docs_per_cpu_s": scores.n / cpu_threshold,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _rss_mb(),
        "checkpoint_mb": size / 2**20,
        "checkpoint_write_s": write_s,
        "checkpoint_write_cpu_s": write_cpu,
        "n_labels": len(names),
    }


def run_one(spec: str, limit: int | None) -> dict[str, Any]:
    stream, learner = spec.split(":")
    started = time.perf_counter()
    result = run_vw(stream, limit) if learner == "vw-plt" else run_ours(stream, learner, limit)
    return {
        "run": spec,
        "stream": stream,
        "learner": learner,
        "limit": limit,
        "wall_s": time.perf_counter() - started,
        **result,
    }


def _table(results: list[dict[str, Any]], command: str) -> str:
    from labelflow.operators.evaluation.machine import describe_machine

    lines = [
        "# Large label spaces: prequential throughput, memory and quality",
        "",
        f"- Command: `{command}`",
        f"- Machine: {describe_machine()}",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "- Protocol: every document predicted, then learned, in stream order; one process per run. "
        "docs/CPU-s counts only the learner's calls (CPU seconds of its own process: runs that overlapped "
        "on a loaded machine still count their own work); peak RSS is the process's (RSS before the "
        "learner existed in brackets: Python, numpy, the stream); checkpoint write is wall seconds "
        "(inflated on a loaded machine; the CPU seconds are in results.jsonl). See the docstring of run.py.",
        "",
        "| stream | learner | docs | labels seen | docs/CPU-s | peak RSS MB (before) | checkpoint MB | "
        "checkpoint write s | P@1 | P@5 | micro-F1 | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.get("limit"):
            r = {**r, "stream": f"{r['stream']} (first {r['limit']:,})"}
        if "error" in r:
            lines.append(f"| {r['stream']} | {r['learner']} | | | | | | | | | | failed: {r['error']} |")
            continue
        note = f"active: {r['active']}" if "active" in r else ""
        if "threshold_model_docs_per_cpu_s" in r:
            note = (
                f"micro-F1 from the threshold model ({r['threshold_model_docs_per_cpu_s']:,.0f} docs/CPU-s)"
            )
        if "code" in r:  # rows of one table may come from runs of different commits (--table-from)
            note = f"{note}; {r['code']}" if note else r["code"]
        lines.append(
            f"| {r['stream']} | {r['learner']} | {r['n']:,} | {r['n_labels']:,} | {r['docs_per_cpu_s']:,.0f} "
            f"| {r['peak_rss_mb']:,.0f} ({r['rss_before_mb']:,.0f}) | {r['checkpoint_mb']:,.1f} "
            f"| {r['checkpoint_write_s']:.2f} | {r['p_at_1']:.4f} | {r['p_at_5']:.4f} | {r['micro_f1']:.4f} | {note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="*", default=[], help="STREAM:LEARNER, e.g. synthetic-100000:default")
    parser.add_argument("--all", action="store_true", help="every run of the committed table")
    parser.add_argument("--limit", type=int, help="first N documents of every stream")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: one run, JSON on stdout
    parser.add_argument("--output-dir", type=Path, default=HERE)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per run")
    parser.add_argument(
        "--table-from",
        nargs="+",
        type=Path,
        help="only write RESULTS.md from these results.jsonl files (runs made in separate invocations)",
    )
    parser.add_argument("--command", help="the command to print in RESULTS.md (with --table-from)")
    args = parser.parse_args(argv)
    if args.table_from:
        rows = [
            json.loads(line) for path in args.table_from for line in path.read_text().splitlines() if line
        ]
        order = {spec: i for i, spec in enumerate(ALL_RUNS)}
        rows.sort(key=lambda r: order.get(r["run"], len(order)))
        (args.output_dir / "RESULTS.md").write_text(_table(rows, args.command or "see results.jsonl"))
        return 0
    if args.one:
        print(json.dumps(run_one(args.one, args.limit)))
        return 0
    runs = ALL_RUNS if args.all else args.runs
    results_path = args.output_dir / "results.jsonl"
    results: list[dict[str, Any]] = []
    for spec in runs:
        command = [sys.executable, __file__, "--one", spec] + (
            ["--limit", str(args.limit)] if args.limit else []
        )
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
            if done.returncode != 0:
                raise RuntimeError(
                    done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
                )
            result = json.loads(done.stdout.strip().splitlines()[-1])
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            stream, learner = spec.split(":")
            result = {
                "run": spec,
                "stream": stream,
                "learner": learner,
                "error": f"{type(exc).__name__}: {exc}",
            }
        results.append(result)
        print(json.dumps(result), flush=True)
        with results_path.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
    command = "python benchmarks/scale/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.output_dir / "RESULTS.md").write_text(_table(results, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
