"""A nearest-neighbour vote over a sliding window of recent labelled instances."""

from __future__ import annotations

import zlib

import numpy as np

from labelflow.operators.base import Features, SparseVector
from labelflow.operators.learners import neighbour_kernels as kernels
from labelflow.operators.learners.growth import grow_last_axis
from labelflow.operators.state import State, Stateful

#: An instance as the window stores it: a unit dense vector, or unit sparse ``(indices, values)``.
Embedded = np.ndarray | tuple[np.ndarray, np.ndarray]


class RecentNeighbours(Stateful):
    """Label frequencies among the ``k`` most similar of the last ``window`` labelled instances.

    Vectors are compared by cosine similarity. Instances are kept as the columns of a ``(width, window)``
    matrix, so a query reads only the rows of its non-zero features (one compiled call scores the window,
    picks the ``k`` nearest and tallies their labels: see ``neighbour_kernels``); sparse inputs wider than
    ``sketch_dim`` are first compressed with a signed feature-hashing sketch (inner products are preserved
    in expectation). The state keeps dense instances as the rows of a ``(window, dim)`` matrix.
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
        #: The stored instances in the state's layout: (window, dim) when dense, (width, window) when sparse.
        self._vectors: np.ndarray | None = None
        self._columns = np.zeros((0, window), dtype=np.float32)  # (width, window): one instance per column
        self._labels = np.zeros((window, 8), dtype=np.float32)
        self._label_totals = np.zeros(8, dtype=np.float64)
        self._sparse = False
        self._slot_indices: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * window
        self._bucket: np.ndarray | None = None
        self._sign: np.ndarray | None = None
        # The kernels' scratch: similarities to the window, the nearest slots, one query's row bounds.
        self._similarities = np.zeros(window, dtype=np.float32)
        self._nearest = np.zeros(max(k, 1), dtype=np.int64)
        self._one_row = np.zeros(2, dtype=np.int64)

    def _setup(self, x: Features) -> None:
        dim = x.dim if isinstance(x, SparseVector) else x.shape[0]
        if self._dim_in is None:
            self._dim_in = dim
            if isinstance(x, SparseVector):
                self._sparse = True
                if dim > self.sketch_dim:
                    self._make_sketch(dim)
            self._use_columns(
                np.zeros((min(dim, self.sketch_dim) if self._sparse else dim, self.window), np.float32)
            )
        elif dim != self._dim_in:
            raise ValueError(f"feature dimension changed from {self._dim_in} to {dim}")

    def _use_columns(self, columns: np.ndarray) -> None:
        """Store instances in ``columns`` (width, window), and in the state's layout as a view of it."""
        self._columns = columns
        self._vectors = columns if self._sparse else columns.T

    def _make_sketch(self, dim: int) -> None:
        # Deterministic (seeded by a constant) so a restored model sketches exactly as before.
        rng = np.random.default_rng(zlib.crc32(b"labelflow-knn-sketch"))
        self._bucket = rng.integers(0, self.sketch_dim, size=dim, dtype=np.int64)
        self._sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=dim)
        # Bucket and sign in one small array for the sketch kernel: abs(code) - 1 is the bucket.
        code_type = np.int16 if self.sketch_dim < 2**15 else np.int64
        self._sketch_code = np.where(self._sign > 0, self._bucket + 1, -(self._bucket + 1)).astype(code_type)
        self._bucket_sums = np.zeros(self.sketch_dim, dtype=np.float64)  # the sketch kernel's scratch
        self._bucket_touched = np.zeros(self.sketch_dim, dtype=bool)

    def embed(self, x: Features) -> Embedded:
        """``x`` as this window stores it (unit norm, sketched when wide); pass it to :meth:`votes` and
        :meth:`learn` so an instance that is predicted and then learned is embedded once."""
        self._setup(x)
        if not isinstance(x, SparseVector):
            return kernels.unit(np.asarray(x, dtype=np.float32))
        if self._bucket is not None and self._sign is not None:
            return kernels.sketch(
                x.indices, x.values, self._sketch_code, self._bucket_sums, self._bucket_touched
            )
        return x.indices, kernels.unit(np.asarray(x.values, dtype=np.float32))

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
        if self.size == 0:
            return self._prior(n_labels)
        out = np.empty((1, n_labels), dtype=np.float32)
        if isinstance(embedded, tuple):
            indices, values = embedded
            self._one_row[1] = indices.shape[0]
            self._votes_sparse(indices, values, self._one_row, out)
        else:
            self._votes_dense(embedded[None, :], out)
        return out[0]

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
        n = len(xs)
        if self.size == 0 or n == 0:
            return np.tile(self._prior(n_labels), (n, 1))
        out = np.empty((n, n_labels), dtype=np.float32)
        if self._sparse:
            rows = _sparse_rows(embedded)
            indptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum([indices.shape[0] for indices, _ in rows], out=indptr[1:])
            indices = np.concatenate([indices for indices, _ in rows]).astype(np.int64, copy=False)
            values = np.concatenate([values for _, values in rows]).astype(np.float32, copy=False)
            self._votes_sparse(indices, values, indptr, out)
        else:
            self._votes_dense(np.stack(_dense_rows(embedded)), out)
        return out

    def _prior(self, n_labels: int) -> np.ndarray:
        """The smoothed label frequencies of every instance seen (the vote of an empty window)."""
        return ((self._label_totals[:n_labels] + 0.5) / (self.n_seen + 1.0)).astype(np.float32)

    def _votes_sparse(
        self, indices: np.ndarray, values: np.ndarray, indptr: np.ndarray, out: np.ndarray
    ) -> None:
        kernels.votes_sparse(
            self._columns,
            self.size,
            self.k,
            self._labels,
            self._label_totals,
            self.n_seen,
            float(self.prior_weight),
            indices,
            values,
            indptr,
            self._similarities,
            self._nearest,
            out,
        )

    def _votes_dense(self, queries: np.ndarray, out: np.ndarray) -> None:
        kernels.votes_dense(
            self._columns,
            self.size,
            self.k,
            self._labels,
            self._label_totals,
            self.n_seen,
            float(self.prior_weight),
            queries,
            self._similarities,
            self._nearest,
            out,
        )

    def forget_labels(self, labels: list[int]) -> None:
        """Stop the stored instances from voting for ``labels`` (after those labels' concept drifted)."""
        self._ensure_labels(max(labels) + 1)
        self._labels[:, labels] = 0.0

    def learn(self, x: Features, y: np.ndarray, embedded: Embedded | None = None) -> None:
        if embedded is None:
            embedded = self.embed(x)
        self._ensure_labels(y.shape[0])
        if isinstance(embedded, tuple):
            indices, values = embedded
            # Clears only the entries the evicted instance wrote: zeroing a whole column is strided.
            kernels.store(
                self._columns,
                self.cursor,
                self._slot_indices[self.cursor],
                indices,
                values,
                self._labels,
                self._label_totals,
                y,
            )
            self.stored(indices)
        else:
            kernels.store_dense(self._columns, self.cursor, embedded, self._labels, self._label_totals, y)
            self.stored(None)

    def stored(self, indices: np.ndarray | None) -> None:
        """Move on to the next slot once an instance is stored at the cursor (``indices``: the stored
        sparse instance's, which the slot's next occupant clears; None for a dense one)."""
        if indices is not None:
            self._slot_indices[self.cursor] = indices
        self.n_seen += 1
        self.cursor = (self.cursor + 1) % self.window
        self.size = min(self.size + 1, self.window)

    def _load_state(self, state: State) -> None:
        if self._vectors is not None:
            self._use_columns(np.ascontiguousarray(self._vectors if self._sparse else self._vectors.T))
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
