#!/usr/bin/env python
"""The default learner's speed against its rival, before and after a change, on the 9 shared ARFF streams.

Each stream is run prequentially (every document predicted, then learned, one at a time, in file order) by
the default learner and by the ``adagrad-ovr`` rival, alternately in one process, and each run reports
documents per CPU-second (``time.process_time`` inside the model's calls, as ``run.py``). The ratio of the
two, measured in the same process, is the figure that survives the load of the shared machine.

With ``--baseline PATH`` (another source tree of labelflow, e.g. ``git worktree add --detach PATH COMMIT``)
every repeat runs that tree's code in one process and then this tree's in another, and the table puts
them side by side: the speed-up is the ratio of the two trees' ratios to the rival. Writes ``SPEED.md``
(or ``--output``) with the command at its top.

    .venv/bin/python benchmarks/ablation/speed.py --baseline /tmp/base --repeats 3
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as run.py: BLAS threads slow the small products down

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).resolve().parent
LEARNERS = ("partitioned", "adagrad-ovr")


def _use_source_tree(root: Path) -> None:
    """Import ``labelflow.operators`` and ``labelflow.stream`` from the tree at ``root`` (its ``operators/``
    and ``stream/`` folders, as the editable install maps this tree's), before anything imports them."""
    import importlib.abc
    import importlib.machinery
    import importlib.util

    folders = {"labelflow.operators": root / "operators", "labelflow.stream": root / "stream"}

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(
            self, fullname: str, path: Any, target: Any = None
        ) -> importlib.machinery.ModuleSpec | None:
            for package, folder in folders.items():
                if fullname == package:
                    return importlib.util.spec_from_file_location(
                        fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
                    )
            return None

    sys.meta_path.insert(0, _Finder())


def measure(streams: list[str], datasets: Path, limit: int | None) -> dict[str, Any]:
    """One repeat in this process: per stream and learner, docs per CPU-second, S and micro-F1."""
    sys.path.insert(0, str(HERE))
    import run as ablation  # this folder's ablation benchmark: the same loop and stream loading

    out: dict[str, Any] = {}
    for name in streams:
        instances = ablation.load_stream(name, datasets, limit)
        variants = [ablation.Variant(learner, learner, learner=learner) for learner in LEARNERS]
        for variant in variants:
            ablation.warm_up(variant, instances)
        result = {}
        for variant in variants:
            run = ablation.run_variant(variant, instances)
            result[variant.learner] = {
                "docs_per_cpu_second": len(instances) / run["cpu_seconds"],
                "subset_accuracy": run["subset_accuracy"],
                "micro_f1": run["micro_f1"],
            }
        # The process's peak so far (both learners, this stream and the ones before it): the last
        # stream's is the peak of the whole repeat.
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        out[name] = {"n": len(instances), **result, "peak_rss_mb": peak_rss_mb}
        progress = ", ".join(f"{k} {v['docs_per_cpu_second']:,.0f}" for k, v in result.items())
        print(f"  {name}: {progress}", file=sys.stderr, flush=True)
    return out


def _worker(code: Path | None, streams: list[str], datasets: Path, limit: int | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", "--datasets", str(datasets), "--streams", *streams]
    if code is not None:
        command += ["--code", str(code)]
    if limit:
        command += ["--limit", str(limit)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    sys.stdout.write(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _medians(repeats: list[dict[str, Any]], stream: str, learner: str) -> float:
    return statistics.median(r[stream][learner]["docs_per_cpu_second"] for r in repeats)


def _ratio(repeats: list[dict[str, Any]], stream: str) -> float:
    """The median over repeats of the default's speed over the rival's in the same process."""
    return statistics.median(
        r[stream]["partitioned"]["docs_per_cpu_second"] / r[stream]["adagrad-ovr"]["docs_per_cpu_second"]
        for r in repeats
    )


def _warm_up() -> int:
    """The documents of the untimed warm-up (this folder's ``run.WARM_UP``)."""
    sys.path.insert(0, str(HERE))
    import run as ablation

    return int(ablation.WARM_UP)


def report(runs: dict[str, list[dict[str, Any]]], command: str, describe: str, commit: str) -> str:
    trees = list(runs)
    streams = list(runs[trees[-1]][0])
    lines = [
        "# Default learner speed against the adagrad-ovr rival",
        "",
        f"- Command: `{command}`",
        f"- Machine: {describe}",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Git commit: {commit}",
        "- Protocol: prequential, one document at a time (predict_with_scores, then learn_one), file order, "
        "whole streams; documents per CPU-second inside the model's calls (`time.process_time`), after a "
        f"{_warm_up()}-document warm-up of each learner; median of {len(runs[trees[-1]])} repeats. 'ratio' is the "
        "default's speed over the rival's in the same process (the median of the per-repeat ratios): the "
        "figure that survives the load of the shared machine.",
        "",
    ]
    header = "| stream | docs |"
    rule = "|---|---|"
    for tree in trees:
        header += f" {tree} default | {tree} rival | {tree} ratio |"
        rule += "---|---|---|"
    if len(trees) == 2:
        header += " speed-up (ratio of ratios) | S, μF1 |"
        rule += "---|---|"
    lines += [header, rule]
    for stream in streams:
        row = f"| {stream} | {runs[trees[-1]][0][stream]['n']:,} |"
        for tree in trees:
            reps = runs[tree]
            row += (
                f" {_medians(reps, stream, 'partitioned'):,.0f} | {_medians(reps, stream, 'adagrad-ovr'):,.0f} |"
                f" {_ratio(reps, stream):.3f} |"
            )
        if len(trees) == 2:
            before, after = runs[trees[0]][0][stream]["partitioned"], runs[trees[1]][0][stream]["partitioned"]
            same = (
                "same"
                if (before["subset_accuracy"], before["micro_f1"])
                == (
                    after["subset_accuracy"],
                    after["micro_f1"],
                )
                else "DIFFERENT"
            )
            row += (
                f" {_ratio(runs[trees[1]], stream) / _ratio(runs[trees[0]], stream):.2f}x |"
                f" {after['subset_accuracy']:.4f}, {after['micro_f1']:.4f} ({same}) |"
            )
        lines.append(row)
    summary = "| median |  |"
    for tree in trees:
        reps = runs[tree]
        summary += (
            f" {statistics.median(_medians(reps, s, 'partitioned') for s in streams):,.0f} |"
            f" {statistics.median(_medians(reps, s, 'adagrad-ovr') for s in streams):,.0f} |"
            f" {statistics.median(_ratio(reps, s) for s in streams):.3f} |"
        )
    if len(trees) == 2:
        summary += f" {statistics.median(_ratio(runs[trees[1]], s) / _ratio(runs[trees[0]], s) for s in streams):.2f}x |  |"
    lines.append(summary)
    peaks = []
    for tree in trees:
        last = [r[streams[-1]].get("peak_rss_mb") for r in runs[tree]]
        if None not in last:
            peaks.append(f"{tree} {statistics.median(last):,.0f} MB")
    if peaks:
        lines += [
            "",
            "Peak RSS of a measuring process (one per repeat and tree: both learners over every stream above, "
            "one stream loaded at a time), median over the repeats: " + ", ".join(peaks) + ".",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", nargs="+", default=None, help="default: the 9 shared ARFF streams")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="the first N documents of every stream")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another labelflow source tree to compare"
    )
    parser.add_argument("--datasets", type=Path, default=HERE.parent.parent.parent / "shared" / "datasets")
    parser.add_argument("--output", type=Path, default=HERE / "SPEED.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.code is not None:
            _use_source_tree(args.code.resolve())
        print(json.dumps(measure(args.streams, args.datasets, args.limit)))
        return 0
    sys.path.insert(0, str(HERE))
    import run as ablation

    streams = args.streams or list(ablation.ARFF)
    describe, commit = ablation._describe_machine(), ablation._git_commit()
    trees: dict[str, Path | None] = {}
    if args.baseline is not None:
        baseline_commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=args.baseline, capture_output=True, text=True
        ).stdout.strip()
        trees[f"before ({baseline_commit or args.baseline})"] = args.baseline.resolve()
    trees[f"after ({commit})" if args.baseline is not None else commit] = None
    runs: dict[str, list[dict[str, Any]]] = {tree: [] for tree in trees}
    started = time.time()
    for repeat in range(args.repeats):
        for tree, code in trees.items():
            print(f"repeat {repeat + 1}/{args.repeats}, {tree}", flush=True)
            runs[tree].append(_worker(code, streams, args.datasets, args.limit))
    command = "python benchmarks/ablation/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    args.output.write_text(report(runs, command.strip(), describe, commit))
    (args.output.with_suffix(".json")).write_text(json.dumps(runs, indent=1) + "\n")
    print(f"wrote {args.output} in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
