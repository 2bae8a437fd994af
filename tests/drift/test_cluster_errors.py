"""Per-cluster errors of a block of decisions (compiled) against the same errors computed row by row."""

from __future__ import annotations

import numpy as np

from labelflow.operators.drift import PerformanceDriftMonitor
from labelflow.operators.drift.cluster_errors import ClusterErrors


def row_by_row(predicted: np.ndarray, truth: np.ndarray, owner: np.ndarray, n_clusters: int):
    """Per row: the global error and a {cluster: error} dict of the involved clusters, in plain Python."""
    out = []
    for p, t in zip(predicted.tolist(), truth.tolist(), strict=True):
        size = sum(p) + sum(t)
        hits = sum(a and b for a, b in zip(p, t, strict=True))
        clusters = {}
        for c in range(n_clusters):
            labels = [j for j in range(len(p)) if owner[j] == c]
            c_size = sum(p[j] for j in labels) + sum(t[j] for j in labels)
            if c_size:
                clusters[c] = 1.0 - 2.0 * sum(p[j] and t[j] for j in labels) / c_size
        out.append((1.0 - 2.0 * hits / size if size else 0.0, clusters))
    return out


def test_block_errors_and_sums_equal_the_row_by_row_errors():
    rng = np.random.default_rng(0)
    n_clusters, width = 5, 17
    owner = rng.integers(n_clusters, size=width)
    predicted, truth = rng.random((40, width)) < 0.15, rng.random((40, width)) < 0.15
    block = ClusterErrors(predicted, truth, owner, n_clusters)
    expected = row_by_row(predicted, truth, owner, n_clusters)
    assert block.global_error.tolist() == [g for g, _ in expected]
    for c in range(n_clusters):
        errors = [clusters[c] for _, clusters in expected if c in clusters]
        assert block.errors(c).tolist() == errors
        assert block.rows(c).tolist() == [r for r, (_, clusters) in enumerate(expected) if c in clusters]
        # The sums are the detectors' own: added in row order from 0, bit for bit.
        assert (block.sums[c], block.squares[c], block.counts[c]) == (
            sum(errors),
            sum(e * e for e in errors),
            len(errors),
        )
    assert ClusterErrors(predicted, truth, owner, 0).global_error.tolist() == [g for g, _ in expected]


def test_monitor_fed_blocks_equals_monitor_fed_each_clusters_errors():
    # Cluster 0 degrades half way; blocks of uneven sizes close the detectors' 32-error blocks at
    # every possible offset.
    rng = np.random.default_rng(1)
    n_clusters, width, n = 4, 12, 6000
    owner = np.arange(width) % n_clusters
    levels = [str(c) for c in range(n_clusters)]
    truth = rng.random((n, width)) < 0.2
    flip = rng.random((n, width)) < np.where(np.arange(n)[:, None] < n // 2, 0.05, 0.05 + 0.4 * (owner == 0))
    predicted = truth ^ flip
    blocked, per_cluster = (PerformanceDriftMonitor(delta=1e-3, warning_delta=1e-2) for _ in range(2))
    for monitor in (blocked, per_cluster):
        monitor.set_clusters({level: [level] for level in levels})
    blocked_events, expected = [], []
    start = 0
    while start < n:
        stop = min(n, start + int(rng.integers(1, 80)))
        positions = list(range(start, stop))
        block = ClusterErrors(predicted[start:stop], truth[start:stop], owner, n_clusters)
        blocked_events += blocked.update_clusters(levels, block, positions)
        for c in np.flatnonzero(block.counts).tolist():
            rows = block.rows(c).tolist()
            expected += per_cluster.update_many(
                levels[c], block.errors(c), positions=[positions[r] for r in rows]
            )
        start = stop
    assert any(e.level == "0" and e.severity == "drift" for e in expected)
    assert [e.to_dict() for e in blocked_events] == [e.to_dict() for e in expected]
    for level in levels:
        a, b = blocked.detectors[level].state(), per_cluster.detectors[level].state()
        assert a.meta == b.meta
        assert all(np.array_equal(a.arrays[key], b.arrays[key]) for key in a.arrays)
