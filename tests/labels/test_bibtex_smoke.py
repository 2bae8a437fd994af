"""Smoke run over the label sets of a real stream (Bibtex, 7,395 instances, 159 labels)."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from labelflow.operators.labels import LabelClusterer


def first_appearance_ids(rows: list[list[int]]) -> list[list[int]]:
    """Re-number labels in order of first appearance, as the classifier assigns ids."""
    ids: dict[int, int] = {}
    return [[ids.setdefault(label, len(ids)) for label in row] for row in rows]


def share_inside(rows: list[list[int]], cluster_of: list[int]) -> float:
    pairs = [(a, b) for row in rows for a, b in itertools.combinations(row, 2)]
    return sum(cluster_of[a] == cluster_of[b] for a, b in pairs) / len(pairs)


@pytest.mark.parametrize("fading_factor", [0.999, 1.0])
def test_bibtex_label_stream(bibtex_labels: list[list[int]], fading_factor: float) -> None:
    rows = first_appearance_ids(bibtex_labels)
    assert len(rows) == 7395
    clusterer = LabelClusterer(fading_factor=fading_factor)
    events = []
    announced: list[int] = []
    for i, row in enumerate(rows):
        clusterer.learn_one(row)
        new = clusterer.drain_events()
        events.extend(new)
        announced.extend(label for e in new if e.action == "new_label" for label in e.labels)
        assert clusterer.partition.n_labels == len(announced)  # every label known from its first instance
        if i % 1000 == 0:
            clusterer.check_consistency()
    clusterer.check_consistency()
    partition = clusterer.partition
    assert announced == list(range(159))
    assert partition.version == len(events)
    assert max(partition.cluster_sizes()) <= 16
    changes = Counter((e.action, e.reason) for e in events if e.action != "new_label")
    # structure follows evidence, it does not thrash: a few dozen changes at most over the stream
    assert sum(changes.values()) <= 60, changes
    if fading_factor == 1.0:
        assert changes, "with full memory, Bibtex's frequent labels carry enough evidence to restructure"
    for event in events:
        if event.action != "new_label":
            assert event.statistic > event.threshold
    # the clusters hold far more of the stream's co-occurrence than random clusters of the same sizes
    cluster_of = [partition.cluster_of(label) for label in range(159)]
    shuffled = cluster_of[:]
    random.Random(0).shuffle(shuffled)
    inside, by_chance = share_inside(rows, cluster_of), share_inside(rows, shuffled)
    assert inside > 3 * by_chance, (inside, by_chance)
    # only co-occurring pairs are stored
    distinct_pairs = {pair for row in rows for pair in itertools.combinations(sorted(set(row)), 2)}
    assert clusterer.cooccurrence.n_pair_entries <= len(distinct_pairs)
    restored = LabelClusterer.from_state(clusterer.state())
    assert restored.partition == partition
