"""A nearest-neighbour vote over a sliding window of recent labelled instances."""

from __future__ import annotations

import zlib

import numpy as np

from labelflow.operators.base import Features, SparseVector
from labelflow.operators.learners.growth import grow_last_axis
from labelflow.operators.learners.sparse_batch import compact_rows
from labelflow.operators.state import State, Stateful

#: An instance as the window stores it: a unit dense vector, or unit sparse ``(indices, values)``.
Embedded = np.ndarray | tuple[np.ndarray, np.ndarray]


class RecentNeighbours(Stateful):
    """Label frequencies among the ``k`` most similar of the last ``window`` labelled instances.

    Vectors are compared by cosine similarity. Dense inputs are kept as a ``(window, dim)`` matrix and a
    query is one matrix-vector product. Sparse inputs are kept transposed, ``(width, window)``, so a query
    reads only the rows of its non-zero features; inputs wider than ``sketch_dim`` are first compressed
    with a signed feature-hashing sketch (inner products are preserved in expectation).
    Early in a stream, before linear models have converged, and on streams whose recent past resembles
    the present, these votes are informative; a learned stacker decides how much to trust them.

    Parameters
    ----------
    window
        Number of recent labelled instances kept.
    k
        Number of neighbours that vote.
    sketch_dim
        Width of the sketch for wide sparse inputs.
    prior_weight
        Pseudo-count of the label prior mixed into each vote, so one neighbour is not a certainty.

    >>> knn = RecentNeighbours(window=10, k=2)
    >>> knn.learn(np.array([1.0, 0.0], dtype=np.float32), np.array([1.0, 0.0], dtype=np.float32))
    >>> knn.learn(np.array([0.0, 1.0], dtype=np.float32), np.array([0.0, 1.0], dtype=np.float32))
    >>> votes = knn.votes(np.array([0.9, 0.1], dtype=np.float32), n_labels=2)
    >>> bool(votes[0] > votes[1])
    True
    """

    state_settings = ("window", "k", "sketch_dim", "prior_weight")
    state_fields = ("size", "cursor", "n_seen", "_dim_in", "_sparse")
    state_arrays = ("_labels", "_label_totals", "_vectors")

    def __init__(
        self, *, window: int = 1000, k: int = 15, sketch_dim: int = 2048, prior_weight: float = 1.0
    ) -> None:
        self.window = window
        self.k = k
        self.sketch_dim = sketch_dim
        self.prior_weight = prior_weight
        self.size = 0
        self.cursor = 0
        self.n_seen = 0
        self._dim_in: int | None = None
        self._vectors: np.ndarray | None = None
        self._labels = np.zeros((window, 8), dtype=np.float32)
        self._label_totals = np.zeros(8, dtype=np.float64)
        self._sparse = False
        self._slot_indices: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * window
        self._bucket: np.ndarray | None = None
        self._sign: np.ndarray | None = None

    def _setup(self, x: Features) -> None:
        dim = x.dim if isinstance(x, SparseVector) else x.shape[0]
        if self._dim_in is None:
            self._dim_in = dim
            if isinstance(x, SparseVector):
                self._vectors = np.zeros((min(dim, self.sketch_dim), self.window), dtype=np.float32)
                self._sparse = True
                if dim > self.sketch_dim:
                    self._make_sketch(dim)
            else:
                self._vectors = np.zeros((self.window, dim), dtype=np.float32)
        elif dim != self._dim_in:
            raise ValueError(f"feature dimension changed from {self._dim_in} to {dim}")

    @property
    def _stored(self) -> np.ndarray:
        """The stored instances (set up by the first instance seen)."""
        if self._vectors is None:
            raise RuntimeError("RecentNeighbours has not seen an instance yet")
        return self._vectors

    def _make_sketch(self, dim: int) -> None:
        # Deterministic (seeded by a constant) so a restored model sketches exactly as before.
        rng = np.random.default_rng(zlib.crc32(b"labelflow-knn-sketch"))
        self._bucket = rng.integers(0, self.sketch_dim, size=dim, dtype=np.int64)
        self._sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=dim)

    def embed(self, x: Features) -> Embedded:
        """``x`` as this window stores it (unit norm, sketched when wide); pass it to :meth:`votes` and
        :meth:`learn` so an instance that is predicted and then learned is embedded once."""
        self._setup(x)
        if not isinstance(x, SparseVector):
            dense = np.asarray(x, dtype=np.float32)
            norm = float(np.sqrt(np.dot(dense, dense)))
            return dense / norm if norm > 0 else dense
        indices, values = x.indices, x.values
        if self._bucket is not None and self._sign is not None:
            buckets = self._bucket[indices]
            summed = np.bincount(buckets, weights=self._sign[indices] * values, minlength=self.sketch_dim)
            indices = np.unique(buckets)
            values = summed[indices].astype(np.float32)
        norm = float(np.sqrt(np.dot(values, values)))
        return indices, (values / norm if norm > 0 else values)

    def _ensure_labels(self, n_labels: int) -> None:
        if n_labels <= self._labels.shape[1] and n_labels <= self._label_totals.shape[0]:
            return
        self._labels = grow_last_axis(self._labels, n_labels)
        self._label_totals = grow_last_axis(self._label_totals, n_labels)

    def votes(self, x: Features, n_labels: int, embedded: Embedded | None = None) -> np.ndarray:
        """Smoothed label frequencies among the neighbours of ``x`` (label prior when the window is empty)."""
        if embedded is None:
            embedded = self.embed(x)
        self._ensure_labels(n_labels)
        prior = (self._label_totals[:n_labels] + 0.5) / (self.n_seen + 1.0)
        if self.size == 0:
            return prior.astype(np.float32)
        if isinstance(embedded, tuple):
            indices, values = embedded
            similarities = values @ self._stored[indices, : self.size]
        else:
            similarities = self._stored[: self.size] @ embedded
        return self._vote(similarities, prior)

    def votes_many(
        self, xs: list[Features], n_labels: int, embedded: list[Embedded] | None = None
    ) -> np.ndarray:
        """:meth:`votes` of every instance of a batch as rows of one ``(len(xs), n_labels)`` array.

        One sparse (or dense) matrix product gives every similarity and another every tally, instead of
        a few dozen small operations per instance.
        """
        if embedded is None:
            embedded = [self.embed(x) for x in xs]
        self._ensure_labels(n_labels)
        prior = (self._label_totals[:n_labels] + 0.5) / (self.n_seen + 1.0)
        n = len(xs)
        if self.size == 0 or n == 0:
            return np.tile(prior.astype(np.float32), (n, 1))
        if self._sparse:
            query, columns = compact_rows(_sparse_rows(embedded))
            similarities = np.asarray(query @ self._stored[columns, : self.size])
        else:
            similarities = np.stack(_dense_rows(embedded)) @ self._stored[: self.size].T
        return self._vote(similarities, prior)

    def _vote(self, similarities: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """Smoothed label frequencies among the ``k`` most similar, from the similarities to the window of
        one instance (1-d) or of a batch (2-d, a row each)."""
        n_labels = prior.shape[0]
        k = min(self.k, self.size)
        if similarities.ndim == 1:  # the one-instance path is hot: methods, in-place steps, one product
            nearest = (-similarities).argpartition(k - 1)[:k] if k < self.size else np.arange(self.size)
            weights = similarities[nearest]  # a copy: squared in place
            np.maximum(weights, 0.0, out=weights)
            weights *= weights
            tally = weights @ self._labels[nearest, :n_labels]
            if self.prior_weight > 0.0:
                return ((tally + self.prior_weight * prior) / (weights.sum() + self.prior_weight)).astype(
                    np.float32
                )
            return self._unsmoothed(tally, weights.sum(keepdims=True), prior)
        if k < self.size:
            nearest = np.argpartition(-similarities, k - 1, axis=-1)[..., :k]
        else:
            nearest = np.broadcast_to(np.arange(self.size), similarities.shape)
        weights = np.maximum(np.take_along_axis(similarities, nearest, axis=1), 0.0) ** 2
        tally = np.zeros((similarities.shape[0], n_labels), dtype=np.float64)
        for j in range(k):  # k gathers of (batch, labels): bounded memory whatever the label count
            tally += weights[:, j, None] * self._labels[nearest[:, j], :n_labels]
        denominator = weights.sum(axis=-1, keepdims=True) + self.prior_weight
        if self.prior_weight > 0.0:  # weights are >= 0: the denominator is positive
            return ((tally + self.prior_weight * prior) / denominator).astype(np.float32)
        return self._unsmoothed(tally, denominator, prior)

    @staticmethod
    def _unsmoothed(tally: np.ndarray, denominator: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """Votes without prior mass: a query no neighbour resembles at all gets the prior."""
        votes = tally / np.where(denominator > 0.0, denominator, 1.0)
        return np.where(denominator > 0.0, votes, prior).astype(np.float32)

    def forget_labels(self, labels: list[int]) -> None:
        """Stop the stored instances from voting for ``labels`` (after those labels' concept drifted)."""
        self._ensure_labels(max(labels) + 1)
        self._labels[:, labels] = 0.0

    def learn(self, x: Features, y: np.ndarray, embedded: Embedded | None = None) -> None:
        if embedded is None:
            embedded = self.embed(x)
        n_labels = y.shape[0]
        self._ensure_labels(n_labels)
        stored = self._stored
        if isinstance(embedded, tuple):
            indices, values = embedded
            # Clear only the entries the evicted instance wrote: zeroing a whole column is strided.
            stored[self._slot_indices[self.cursor], self.cursor] = 0.0
            stored[indices, self.cursor] = values
            self._slot_indices[self.cursor] = indices
        else:
            stored[self.cursor] = embedded
        self._labels[self.cursor] = 0.0
        self._labels[self.cursor, :n_labels] = y
        self._label_totals[:n_labels] += y
        self.n_seen += 1
        self.cursor = (self.cursor + 1) % self.window
        self.size = min(self.size + 1, self.window)

    def _load_state(self, state: State) -> None:
        if self._sparse and self._vectors is not None:
            columns = self._vectors.T
            self._slot_indices = [np.flatnonzero(columns[i]) for i in range(self.window)]
        if self._sparse and self._dim_in is not None and self._dim_in > self.sketch_dim:
            self._make_sketch(self._dim_in)


def _sparse_rows(embedded: list[Embedded]) -> list[tuple[np.ndarray, np.ndarray]]:
    rows = [row for row in embedded if isinstance(row, tuple)]
    if len(rows) != len(embedded):
        raise ValueError("a dense instance in a window of sparse ones")
    return rows


def _dense_rows(embedded: list[Embedded]) -> list[np.ndarray]:
    rows = [row for row in embedded if not isinstance(row, tuple)]
    if len(rows) != len(embedded):
        raise ValueError("a sparse instance in a window of dense ones")
    return rows
