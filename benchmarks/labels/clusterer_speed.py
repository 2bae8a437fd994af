"""Micro-benchmark of LabelClusterer.learn_one on the label sets of real streams (labels only).

For each stream: label names are mapped to ids in order of first appearance (as the classifier does),
then the whole stream is learned ``--repeats`` times by a fresh clusterer with default settings.
Printed per stream: the whole-stream mean cost per instance as CPU time of this process (other jobs
on a shared machine do not inflate it) and as wall-clock time, from a pass without per-call timers;
the median / p99 / max wall-clock time of single calls, from a second pass timing each call; each
figure the median over the repeats; the final partition
(clusters, sizes), the structure changes by rule, the stored pair entries, and how much of the
stream's label co-occurrence falls inside the clusters compared with random partitions of the same
cluster sizes (a sanity check of quality).

    .venv/bin/python benchmarks/labels/clusterer_speed.py [--datasets DIR] [--repeats 3] [--markdown]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from labelflow.operators.labels import LabelClusterer

REPO = Path(__file__).resolve().parents[2]


def bibtex_label_sets(datasets: Path) -> list[list[str]]:
    """Label names of each Bibtex row (MEKA sparse ARFF, labels = the last 159 attributes)."""
    path = datasets / "bibtex" / "Bibtex.arff.gz"
    attributes: list[str] = []
    rows: list[list[str]] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("@attribute"):
                attributes.append(line.split()[1])
            elif line.startswith("@data"):
                break
        first_label = len(attributes) - 159
        for line in fh:
            line = line.strip()
            if not line.startswith("{"):
                continue
            labels = []
            for item in line[1:-1].split(","):
                index, value = item.split()
                if int(index) >= first_label and value == "1":
                    labels.append(attributes[int(index)])
            rows.append(labels)
    return rows


def eurlex_label_sets(datasets: Path) -> list[list[str]]:
    with gzip.open(datasets / "eurlex57k" / "eurlex57k.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line)["labels"] for line in fh]


def to_ids(rows: list[list[str]]) -> list[list[int]]:
    ids: dict[str, int] = {}
    return [[ids.setdefault(name, len(ids)) for name in row] for row in rows]


def whole_stream(rows: list[list[int]], settings: dict) -> tuple[LabelClusterer, float, float, list]:
    """One pass as a model runs it: (clusterer, CPU seconds, wall seconds, events)."""
    clusterer = LabelClusterer(**settings)
    events = []
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for row in rows:
        clusterer.learn_one(row)
        events.extend(clusterer.drain_events())
    return clusterer, time.process_time() - cpu_start, time.perf_counter() - wall_start, events


def per_call(rows: list[list[int]], settings: dict) -> list[int]:
    """Wall-clock nanoseconds of each learn_one call."""
    clusterer = LabelClusterer(**settings)
    clock = time.perf_counter_ns
    timings = []
    for row in rows:
        t0 = clock()
        clusterer.learn_one(row)
        timings.append(clock() - t0)
    return timings


def captured_cooccurrence(rows: list[list[int]], cluster_of: list[int]) -> float:
    """Share of co-occurring label pairs (counted per instance) whose labels share a cluster."""
    inside = total = 0
    for row in rows:
        for i, a in enumerate(row):
            for b in row[i + 1 :]:
                total += 1
                inside += cluster_of[a] == cluster_of[b]
    return inside / total if total else float("nan")


def random_baseline(rows: list[list[int]], sizes: list[int], n_labels: int, seed: int) -> float:
    rng = random.Random(seed)
    labels = list(range(n_labels))
    rng.shuffle(labels)
    cluster_of = [0] * n_labels
    start = 0
    for index, size in enumerate(sizes):
        for label in labels[start : start + size]:
            cluster_of[label] = index
        start += size
    return captured_cooccurrence(rows, cluster_of)


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench(name: str, rows: list[list[int]], repeats: int, settings: dict) -> dict:
    per_instance, wall_per_instance, medians, p99s, maxima = [], [], [], [], []
    clusterer = events = None
    for _ in range(repeats):
        clusterer, cpu, wall, events = whole_stream(rows, settings)
        timings = per_call(rows, settings)
        per_instance.append(cpu / len(rows) * 1e6)
        wall_per_instance.append(wall / len(rows) * 1e6)
        medians.append(statistics.median(timings) / 1e3)
        p99s.append(percentile(timings, 0.99) / 1e3)
        maxima.append(max(timings) / 1e6)
    assert clusterer is not None and events is not None
    partition = clusterer.partition
    sizes = list(partition.cluster_sizes())
    cluster_of = [partition.cluster_of(label) for label in range(partition.n_labels)]
    by_rule = collections.Counter(f"{e.action}:{e.reason}" for e in events)
    return {
        "stream": name,
        "instances": len(rows),
        "labels": partition.n_labels,
        "mean_labels": sum(map(len, rows)) / len(rows),
        "us_per_instance": statistics.median(per_instance),
        "wall_us_per_instance": statistics.median(wall_per_instance),
        "call_median_us": statistics.median(medians),
        "call_p99_us": statistics.median(p99s),
        "call_max_ms": statistics.median(maxima),
        "clusters": partition.n_clusters,
        "singletons": sum(1 for s in sizes if s == 1),
        "largest": max(sizes),
        "size_histogram": dict(sorted(collections.Counter(sizes).items())),
        "events": dict(sorted(by_rule.items())),
        "pair_entries": clusterer.cooccurrence.n_pair_entries,
        "captured": captured_cooccurrence(rows, cluster_of),
        "captured_random": statistics.median(
            random_baseline(rows, sizes, partition.n_labels, seed) for seed in range(5)
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("LABELFLOW_DATASETS", REPO.parent / "shared" / "datasets"))
    parser.add_argument("--datasets", type=Path, default=default_data)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["bibtex", "eurlex57k"], default=None)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a LabelClusterer setting other than its default (repeatable)",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    args = parser.parse_args(argv)
    settings = {name: json.loads(value) for name, value in (item.split("=", 1) for item in args.set)}
    streams: Iterator[tuple[str, list[list[int]]]] = (
        (name, to_ids(load(args.datasets)))
        for name, load in (("bibtex", bibtex_label_sets), ("eurlex57k", eurlex_label_sets))
        if args.only in (None, name)
    )
    results = []
    for name, rows in streams:
        result = bench(name, rows, args.repeats, settings)
        results.append(result)
        print(json.dumps(result), flush=True)
    if args.markdown:
        print(
            f"\nPython {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d')}, repeats={args.repeats}, "
            f"settings={settings or 'defaults'}\n"
        )
        print(
            "| stream | instances | labels | mean labels/instance | CPU µs/instance (whole stream) "
            "| wall µs/instance | learn_one median µs | p99 µs | max ms | clusters | singletons "
            "| largest | structure changes | co-occurrence inside clusters (random partition) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            changes = ", ".join(f"{k} {v}" for k, v in r["events"].items())
            print(
                f"| {r['stream']} | {r['instances']} | {r['labels']} | {r['mean_labels']:.2f} "
                f"| {r['us_per_instance']:.1f} | {r['wall_us_per_instance']:.1f} | {r['call_median_us']:.1f} "
                f"| {r['call_p99_us']:.1f} "
                f"| {r['call_max_ms']:.2f} | {r['clusters']} | {r['singletons']} | {r['largest']} "
                f"| {changes} | {r['captured']:.3f} ({r['captured_random']:.3f}) |"
            )


if __name__ == "__main__":
    sys.exit(main())
