"""The errors of a block of decisions per label cluster, in one compiled pass.

A cluster's error on an instance is ``1 - F1`` of its predicted against its true labels, counted only
where the cluster is involved (a true or predicted label in it); the global error is the same over all
labels (0 where neither side has a label). The per-cluster detectors add each error to their open block
(a sum and a sum of squares) and test only when a block closes, so most instances need just those two
sums: they are accumulated here in stream order, exactly as the detectors would add the errors one by
one (same floating-point operations in the same order, so the detectors' state is bit for bit the same).
"""

from __future__ import annotations

import numpy as np

from labelflow.operators.compiled import kernel


@kernel
def _cluster_errors(
    predicted: np.ndarray,
    truth: np.ndarray,
    owner: np.ndarray,
    hits: np.ndarray,
    sizes: np.ndarray,
    global_error: np.ndarray,
    sums: np.ndarray,
    squares: np.ndarray,
    counts: np.ndarray,
) -> None:
    n_rows, width = predicted.shape
    n_clusters = hits.shape[1]
    for row in range(n_rows):
        row_hits = 0
        row_size = 0
        for label in range(width):
            p = predicted[row, label]
            t = truth[row, label]
            if p or t:
                both = 1 if p and t else 0
                size = (1 if p else 0) + (1 if t else 0)
                row_hits += both
                row_size += size
                if n_clusters > 0:
                    cluster = owner[label]
                    hits[row, cluster] += both
                    sizes[row, cluster] += size
        global_error[row] = 1.0 - 2.0 * row_hits / row_size if row_size > 0 else 0.0
        for cluster in range(n_clusters):
            size = sizes[row, cluster]
            if size > 0:
                error = 1.0 - 2.0 * hits[row, cluster] / size
                sums[cluster] += error
                squares[cluster] += error * error
                counts[cluster] += 1


class ClusterErrors:
    """Per-cluster and global errors of a block of ``(predicted, truth)`` indicator rows.

    ``owner[label]`` is the cluster of each label column. After construction:

    * ``global_error``: one error per row;
    * ``hits``, ``sizes``: per row and cluster, the true positives and ``|predicted| + |true|`` (a cluster
      is involved in a row where its size is positive);
    * ``sums``, ``squares``, ``counts``: per cluster, the sum of its errors (added in row order from 0),
      of their squares, and the number of rows it is involved in.

    >>> predicted = np.array([[1, 0, 1], [0, 0, 0]], dtype=bool)
    >>> truth = np.array([[1, 1, 0], [0, 0, 1]], dtype=bool)
    >>> block = ClusterErrors(predicted, truth, owner=np.array([0, 0, 1]), n_clusters=2)
    >>> block.global_error.tolist(), block.counts.tolist(), block.errors(1).tolist()
    ([0.5, 1.0], [1, 2], [1.0, 1.0])
    >>> block.errors(0).tolist(), block.rows(1).tolist()
    ([0.33333333333333337], [0, 1])
    """

    def __init__(self, predicted: np.ndarray, truth: np.ndarray, owner: np.ndarray, n_clusters: int) -> None:
        n_rows = predicted.shape[0]
        self.hits = np.zeros((n_rows, n_clusters), dtype=np.int64)
        self.sizes = np.zeros((n_rows, n_clusters), dtype=np.int64)
        self.global_error = np.zeros(n_rows)
        self.sums = np.zeros(n_clusters)
        self.squares = np.zeros(n_clusters)
        self.counts = np.zeros(n_clusters, dtype=np.int64)
        _cluster_errors(
            predicted,
            truth,
            owner,
            self.hits,
            self.sizes,
            self.global_error,
            self.sums,
            self.squares,
            self.counts,
        )

    def rows(self, cluster: int) -> np.ndarray:
        """The rows where ``cluster`` is involved."""
        return np.flatnonzero(self.sizes[:, cluster])

    def errors(self, cluster: int) -> np.ndarray:
        """The errors of ``cluster`` on the rows where it is involved, in row order."""
        rows = self.rows(cluster)
        return 1.0 - 2.0 * self.hits[rows, cluster] / self.sizes[rows, cluster]
