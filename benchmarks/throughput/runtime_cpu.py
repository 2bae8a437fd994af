#!/usr/bin/env python
"""The worker's own CPU per document, outside the learner, before and after a change.

The throughput benchmark (``run.py``) measures the whole pipeline in wall time, with the broker, its
producer and its collectors sharing the machine's cores; this one measures what the worker itself spends
per document, in CPU time, on the same stream (the labelled mix, ``run.MIXED``) with the near-free
``no-change`` learner, so that only the runtime is measured:

processor
    ``BatchProcessor.process`` over batches of 500 records, in this process, no broker: decoding,
    hashing, predicting and publishing (serializing) each document, learning, the feedback join and the
    bookkeeping. CPU per document (``time.process_time``), and the stages' own timers.
worker
    A ``Worker`` in this process over the stream, produced to the embedded broker beforehand: everything
    the worker process does (polling and parsing records, processing, producing and flushing, committing,
    metrics), CPU per document of the whole process (all its threads) and of its main thread, and wall
    time per document, from its first batch to its last prediction. The garbage collector is tuned as
    ``labelflow run`` tunes it.

With ``--baseline PATH`` (another source tree, e.g. ``git worktree add --detach PATH COMMIT``) every repeat
runs that tree's code in one process and then this tree's in another; the table puts the medians side by
side with their ratio (the load of the shared machine moves both).

    .venv/bin/python benchmarks/throughput/runtime_cpu.py --baseline /tmp/base --repeats 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BATCH = 500
LEARNER = "no-change"
STAGES = ("decode", "embed", "predict", "learn")


def _use_source_tree(root: Path) -> None:
    """Import labelflow's code from the tree at ``root`` (as ``benchmarks/ablation/speed.py`` does)."""
    sys.path.insert(0, str(HERE.parent))
    from benchmark_modules import load_benchmark

    load_benchmark("ablation", "speed")._use_source_tree(root)


def _records(n: int, documents_topic: str, labels_topic: str) -> list[Any]:
    from labelflow.stream.feed import encode
    from labelflow.stream.processor import InputRecord

    sys.path.insert(0, str(HERE))
    import run as throughput

    topics = {"document": documents_topic, "feedback": labels_topic}
    offsets: dict[str, int] = {}
    records = []
    for i, (kind, message) in enumerate(throughput.messages(n, throughput.MIXED)):
        key, value = encode(message)
        topic = topics[kind]
        offsets[topic] = offsets.get(topic, -1) + 1
        records.append(InputRecord(topic, 0, offsets[topic], key, value, 1_700_000_000_000 + i))
    return records


def measure_processor(n: int) -> dict[str, float]:
    """CPU per document of ``BatchProcessor.process`` over the stream, and its stages' timers."""
    from labelflow.stream.config import load_settings
    from labelflow.stream.heap import tune_garbage_collection
    from labelflow.stream.model_runtime import ModelRuntime
    from labelflow.stream.processor import BatchProcessor
    from labelflow.stream.runtime_state import RuntimeState

    settings = load_settings(None, {"brokers": "127.0.0.1:9", "model.learner": LEARNER})
    records = _records(n, settings.topics.documents, settings.topics.labels)
    documents = sum(r.topic == settings.topics.documents for r in records)
    runtime = ModelRuntime.from_settings(settings.model)
    state = RuntimeState.new(settings)
    processor = BatchProcessor(settings, runtime, state.store, state.counters, state.quality, "bench")
    tune_garbage_collection()
    stages = dict.fromkeys(STAGES, 0.0)
    started = time.process_time()
    for start in range(0, len(records), BATCH):
        out = processor.process(records[start : start + BATCH])
        for stage in STAGES:
            stages[stage] += out.stage_seconds.get(stage, 0.0)
    cpu = time.process_time() - started
    return {
        "processor_cpu_us": cpu / documents * 1e6,
        **{f"{k}_us": v / documents * 1e6 for k, v in stages.items()},
    }


def measure_worker(n: int) -> dict[str, float]:
    """CPU and wall time per document of a ``Worker`` over the stream on the embedded broker."""
    from labelflow.stream.broker import EmbeddedBroker
    from labelflow.stream.heap import tune_garbage_collection
    from labelflow.stream.testing import create_topics, isolated_settings, send
    from labelflow.stream.worker import Worker, WorkerProgress

    with tempfile.TemporaryDirectory(prefix="labelflow-runtime-cpu-") as tmp:
        work = Path(tmp)
        with EmbeddedBroker(log_file=work / "broker.log") as broker:
            settings = isolated_settings(
                broker.bootstrap_servers,
                work,
                "runtime-cpu",
                model__learner=LEARNER,
                checkpoint__interval_s=60.0,
                batch__max_wait_ms=100,
            )
            create_topics(settings)
            records = _records(n, settings.topics.documents, settings.topics.labels)
            send(settings, ((r.topic, r.key, r.value) for r in records))
            marks: dict[str, float] = {}

            def on_batch(progress: WorkerProgress) -> None:
                # From the end of the first batch (the model and the clients are warm) to the last prediction.
                if progress.batches == 1 and "cpu" not in marks:
                    marks.update(
                        cpu=time.process_time(),
                        thread=time.thread_time(),
                        wall=time.perf_counter(),
                        done=progress.predictions_out,
                    )
                if progress.predictions_out >= n and "cpu_end" not in marks:
                    marks.update(
                        cpu_end=time.process_time(),
                        thread_end=time.thread_time(),
                        wall_end=time.perf_counter(),
                        done_end=progress.predictions_out,
                    )
                    worker.stop()

            worker = Worker(settings, handle_signals=False, on_batch=on_batch)
            tune_garbage_collection()
            worker.run()
    documents = marks["done_end"] - marks["done"]
    return {
        "worker_cpu_us": (marks["cpu_end"] - marks["cpu"]) / documents * 1e6,
        "worker_main_thread_us": (marks["thread_end"] - marks["thread"]) / documents * 1e6,
        "worker_wall_us": (marks["wall_end"] - marks["wall"]) / documents * 1e6,
    }


def _child(code: Path | None, n: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", "--documents", str(n)]
    if code is not None:
        command += ["--code", str(code)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def report(runs: dict[str, list[dict[str, float]]], meta: dict[str, str]) -> str:
    trees = list(runs)
    lines = [
        "# The worker's own CPU per document (outside the learner)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}  ",
        f"Date: {meta['date']}  ",
        f"Commit: {meta['commit']}{'; baseline: ' + meta['baseline'] if meta.get('baseline') else ''}  ",
        f"Load average (1 min) at start and end: {meta['load']} (other processes shared the machine)  ",
        f"Setup: the throughput benchmark's labelled mix ({meta['documents']} documents, seed 11), learner "
        f"`{LEARNER}`, hashing features, batches of {BATCH}; medians of {len(runs[trees[-1]])} repeats, "
        "each tree in its own process, alternately. 'processor': BatchProcessor in-process without a broker, "
        "CPU per document and its stages' timers; 'worker': a Worker over the pre-loaded stream on the "
        "embedded broker, CPU of the whole process (all threads), of its main thread, and wall time.",
        "",
        "| µs per document | " + " | ".join(trees) + (" | after / before |" if len(trees) == 2 else " |"),
        "|---|" + "---:|" * (len(trees) + (1 if len(trees) == 2 else 0)),
    ]
    for key in runs[trees[-1]][0]:
        medians = [statistics.median(r[key] for r in runs[tree]) for tree in trees]
        row = f"| {key.removesuffix('_us').replace('_', ' ')} | " + " | ".join(f"{m:,.1f}" for m in medians)
        if len(trees) == 2:
            row += f" | {medians[1] / medians[0]:.2f}"
        lines.append(row + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another source tree of labelflow to compare with")
    parser.add_argument("--out", type=Path, default=HERE / "RUNTIME_CPU.md")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.code is not None:
            _use_source_tree(args.code)
        result = {**measure_processor(args.documents), **measure_worker(args.documents)}
        print(json.dumps(result))
        return 0
    from labelflow.operators.evaluation.machine import describe_machine

    trees: dict[str, Path | None] = {"this tree": None}
    if args.baseline is not None:
        trees = {"baseline": args.baseline.resolve(), "this tree": None}
    meta = {
        "command": "python benchmarks/throughput/runtime_cpu.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": describe_machine(),
        "date": dt.date.today().isoformat(),
        "commit": _commit(),
        "baseline": str(args.baseline or ""),
        "documents": f"{args.documents:,}",
        "load": f"{os.getloadavg()[0]:.1f}",
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for repeat in range(args.repeats):
        for name, code in trees.items():
            runs[name].append(_child(code, args.documents))
            print(f"repeat {repeat + 1} {name}: {json.dumps(runs[name][-1])}", file=sys.stderr, flush=True)
    meta["load"] += f" / {os.getloadavg()[0]:.1f}"
    text = report(runs, meta)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
