#!/usr/bin/env python
"""Speed of the input side of an evaluation: the hashing featurizer and the stream readers.

Measures, on one core (single-threaded code):

- HashingFeaturizer (default settings: 2**18 columns, word uni+bigrams, 1+log tf, L2) on all 10,789
  Reuters-21578 documents: ``transform_many`` (vectorised batches) and ``transform_one`` per document,
  as documents per second of wall time and per second of process CPU time (the CPU figure is what
  the code costs; wall time also counts waiting for a busy machine);
- read_arff on Tmc2007-500 (28,596 rows) and 20NG (19,300 rows), and read_jsonl on Reuters.

Every figure is the median of ``--repeats`` runs (the token-hash memo is warm after the first
featurizer run; the first, cold run is reported separately). Writes RESULTS.md beside this file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from labelflow.operators.embedders.hashing import HashingFeaturizer
from labelflow.operators.io.arff import read_arff
from labelflow.operators.io.jsonl import read_jsonl

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/, for the module below

from benchmark_modules import load_benchmark  # noqa: E402

# The machine and git-commit lines are the accuracy benchmark's, so that both headers read the same.
_accuracy = load_benchmark("accuracy")
machine_description, git_commit = _accuracy.machine_description, _accuracy.git_commit


def timed(work: Callable[[], int]) -> tuple[int, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    n = work()
    return n, time.perf_counter() - wall, time.process_time() - cpu


def median_rates(work: Callable[[], int], repeats: int) -> tuple[int, float, float]:
    runs = [timed(work) for _ in range(repeats)]
    n = runs[0][0]
    return n, statistics.median(n / w for _, w, _ in runs), statistics.median(n / c for _, _, c in runs)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--datasets-dir",
        type=Path,
        default=Path(os.environ.get("LABELFLOW_DATASETS", REPO.parent / "shared" / "datasets")),
    )
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    data = args.datasets_dir
    reuters = data / "reuters21578_modapte" / "reuters21578_modapte.jsonl"
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_description()
    texts = [doc.text for doc in read_jsonl(reuters)]
    chars = statistics.mean(len(t) for t in texts)

    rows = []
    cold = HashingFeaturizer()
    n, wall, cpu = timed(lambda: len(cold.transform_many(texts)))
    rows.append(("HashingFeaturizer.transform_many, first run (cold token memo)", n, n / wall, n / cpu))
    warm = HashingFeaturizer()
    warm.transform_many(texts)
    rows.append(
        (
            "HashingFeaturizer.transform_many",
            *median_rates(lambda: len(warm.transform_many(texts)), args.repeats),
        )
    )
    batches = [texts[i : i + 64] for i in range(0, len(texts), 64)]
    rows.append(
        (
            "HashingFeaturizer.transform_many, batches of 64 (as the evaluator calls it)",
            *median_rates(lambda: sum(len(warm.transform_many(b)) for b in batches), args.repeats),
        )
    )
    rows.append(
        (
            "HashingFeaturizer.transform_one, one call per document",
            *median_rates(lambda: sum(1 for t in texts if warm.transform_one(t).dim), args.repeats),
        )
    )

    readers = [
        (
            "read_arff Tmc2007-500 (sparse, gzip)",
            lambda: sum(1 for _ in read_arff(data / "tmc2007_500" / "tmc2007-500.arff.gz")),
        ),
        ("read_arff 20NG (sparse, gzip)", lambda: sum(1 for _ in read_arff(data / "20ng" / "20NG.arff.gz"))),
        (
            "read_arff Scene (dense, gzip)",
            lambda: sum(1 for _ in read_arff(data / "scene" / "Scene.arff.gz")),
        ),
        ("read_jsonl Reuters", lambda: sum(1 for _ in read_jsonl(reuters))),
    ]
    reader_rows = [(name, *median_rates(work, args.repeats)) for name, work in readers]

    lines = [
        "# Input speed: hashing featurizer and stream readers",
        "",
        f"- Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        f"- Machine: {machine}",
        f"- Date: {started}",
        f"- Git commit: {git_commit()}",
        f"- Median of {args.repeats} runs; single-threaded code. 'CPU' divides by process CPU time, 'wall' by "
        "elapsed time (lower when other work shares the cores).",
        "",
        f"## Hashing featurizer on Reuters-21578 ({len(texts):,} documents, mean {chars:,.0f} characters)",
        "",
        f"Settings: `{warm.identity}`.",
        "",
        "| operation | documents | docs/s (CPU) | docs/s (wall) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {n:,} | {cpu_rate:,.0f} | {wall_rate:,.0f} |" for name, n, wall_rate, cpu_rate in rows
    ]
    lines += [
        "",
        "## Stream readers",
        "",
        "| reader | rows | rows/s (CPU) | rows/s (wall) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {n:,} | {cpu_rate:,.0f} | {wall_rate:,.0f} |"
        for name, n, wall_rate, cpu_rate in reader_rows
    ]
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
