"""Structure changes of LabelClusterer on stationary synthetic streams: how many, how late, undone or not.

On a stream whose label correlations never change, every split or merge after the warm-up is noise
the partition follows, and a change that undoes an earlier one (the same two groups split after
being merged, or merged after being split) is an oscillation. For each seed, a drift-free
``SyntheticStream`` (12 labels in 4 topics unless ``--set`` says otherwise) is generated, its label
names numbered in sorted order, and learned once by a fresh ``LabelClusterer()``. Printed per
seed, then in total: the splits and merges, those after ``--warm-up`` documents, the reversals, and
whether the final partition is exactly the generator's topics (label ``i`` in topic
``i % n_topics``).

    .venv/bin/python benchmarks/labels/stationary_stability.py [--seeds 1000-1019] [--documents 30000]
        [--warm-up 5000] [--set n_labels=40 --set n_topics=8] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig
from labelflow.operators.labels import LabelClusterer


def two_groups(
    clusters: tuple[tuple[int, ...], ...], labels: tuple[int, ...]
) -> frozenset[frozenset[int]] | None:
    """The two clusters that make up ``labels`` exactly: the line of a split or merge."""
    inside = [frozenset(c) for c in clusters if set(c) <= set(labels)]
    if len(inside) == 2 and sum(map(len, inside)) == len(labels):
        return frozenset(inside)
    return None


def run_stream(seed: int, documents: int, warm_up: int, settings: dict) -> dict:
    config = SyntheticStreamConfig(seed=seed, n_documents=documents, drift_events=[], **settings)
    docs = list(SyntheticStream(config))
    names = sorted({label for doc in docs for label in doc.labels})
    index = {name: i for i, name in enumerate(names)}
    rows = [[index[label] for label in doc.labels] for doc in docs]
    clusterer = LabelClusterer()
    changes: list[tuple[str, str, int, frozenset[frozenset[int]] | None]] = []
    cpu = time.process_time()
    for row in rows:
        before = clusterer.partition.clusters
        clusterer.learn_one(row)
        for event in clusterer.drain_events():
            if event.action == "new_label":
                continue
            after = clusterer.partition.clusters
            line = two_groups(after if event.action == "split" else before, event.labels)
            changes.append((event.action, event.reason, event.position, line))
    cpu = time.process_time() - cpu
    last_action: dict[frozenset[frozenset[int]], str] = {}
    reversals = 0
    for action, _, _, line in changes:
        if line is None:
            continue
        reversals += last_action.get(line, action) != action
        last_action[line] = action
    topics = sorted(
        tuple(i for i in range(len(names)) if i % config.n_topics == t) for t in range(config.n_topics)
    )
    return {
        "seed": seed,
        "documents": len(rows),
        "changes": len(changes),
        "late": [(action, reason, position) for action, reason, position, _ in changes if position > warm_up],
        "reversals": reversals,
        "topics_recovered": sorted(clusterer.partition.clusters) == topics,
        "cpu_us_per_document": cpu / len(rows) * 1e6,
    }


def seed_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=seed_range, default=seed_range("1000-1019"))
    parser.add_argument("--documents", type=int, default=30_000)
    parser.add_argument("--warm-up", type=int, default=5_000)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a SyntheticStreamConfig field other than its default (repeatable)",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown summary row too")
    args = parser.parse_args(argv)
    settings = {name: json.loads(value) for name, value in (item.split("=", 1) for item in args.set)}
    results = []
    for seed in args.seeds:
        result = run_stream(seed, args.documents, args.warm_up, settings)
        results.append(result)
        print(json.dumps(result), flush=True)
    after_warm_up = sum(r["documents"] - args.warm_up for r in results)
    late = sum(len(r["late"]) for r in results)
    summary = {
        "streams": len(results),
        "changes": sum(r["changes"] for r in results),
        "late_changes": late,
        "late_per_100k_documents": late / after_warm_up * 1e5,
        "reversals": sum(r["reversals"] for r in results),
        "topics_recovered": sum(r["topics_recovered"] for r in results),
    }
    print(json.dumps(summary))
    if args.markdown:
        print(
            f"\nPython {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
            f"{time.strftime('%Y-%m-%d')}, seeds {args.seeds[0]}-{args.seeds[-1]}, {args.documents} documents, "
            f"warm-up {args.warm_up}, stream settings={settings or 'defaults'}\n"
        )
        print(
            "| streams | splits + merges | after warm-up | per 100,000 documents after warm-up "
            "| reversals (same line undone) | partition = topics |"
        )
        print("|---|---|---|---|---|---|")
        print(
            f"| {summary['streams']} | {summary['changes']} | {late} | {summary['late_per_100k_documents']:.1f} "
            f"| {summary['reversals']} | {summary['topics_recovered']}/{summary['streams']} |"
        )


if __name__ == "__main__":
    main()
