"""Binary-relevance logistic heads for every label, updated together in one vectorized step."""

from __future__ import annotations

import numpy as np

from labelflow.operators.base import Features, SparseVector
from labelflow.operators.learners.growth import grow_last_axis
from labelflow.operators.learners.sparse_batch import compact_rows
from labelflow.operators.state import State


class LinearHeads:
    """One online logistic regression per label, stored as a single ``(dim + 1, labels)`` matrix.

    A step costs ``O(nnz(x) * labels)`` with no Python loop over labels. Learning rates adapt per
    feature (AdaGrad on the squared feature values, shared by all labels), which suits both dense
    embeddings and sparse bag-of-words whose rare terms need larger steps.

    Parameters
    ----------
    learning_rate
        Base step size of the per-feature AdaGrad rate.
    l2
        L2 penalty applied to the touched weights at each step.
    adagrad_offset
        Added to the squared-gradient sum in the step size ``learning_rate / sqrt(offset + sum)``.

    >>> heads = LinearHeads()
    >>> x = np.array([1.0, 0.0], dtype=np.float32)
    >>> for _ in range(20):
    ...     p = heads.probabilities(x, n_labels=2)
    ...     heads.learn(x, np.array([1.0, 0.0], dtype=np.float32), p)
    >>> (heads.probabilities(x, n_labels=2) > 0.5).tolist()
    [True, False]
    """

    def __init__(self, *, learning_rate: float = 0.5, l2: float = 0.0, adagrad_offset: float = 1.0) -> None:
        self.learning_rate = learning_rate
        self.adagrad_offset = adagrad_offset
        self.l2 = l2
        self.dim: int | None = None
        self.weights = np.zeros((0, 0), dtype=np.float32)  # last row is the bias
        self._g2 = np.zeros(0, dtype=np.float32)  # AdaGrad accumulators per feature (+ bias)

    def _ensure(self, dim: int, n_labels: int) -> None:
        if self.dim is None:
            self.dim = dim
            self.weights = np.zeros((dim + 1, max(n_labels, 8)), dtype=np.float32)
            self._g2 = np.zeros(dim + 1, dtype=np.float32)
        elif dim != self.dim:
            raise ValueError(f"feature dimension changed from {self.dim} to {dim}")
        self.weights = grow_last_axis(self.weights, n_labels)

    def logits(self, x: Features, n_labels: int) -> np.ndarray:
        """Raw scores ``w_l . x + b_l`` for the first ``n_labels`` labels."""
        dim = x.dim if isinstance(x, SparseVector) else x.shape[0]
        self._ensure(dim, n_labels)
        w = self.weights
        if isinstance(x, SparseVector):
            z = x.values @ w[x.indices, :n_labels] if x.nnz else np.zeros(n_labels, dtype=np.float32)
        else:
            z = x @ w[:-1, :n_labels]
        return z + w[-1, :n_labels]

    def logits_many(self, xs: list[Features], n_labels: int) -> np.ndarray:
        """:meth:`logits` of a batch, ``(len(xs), n_labels)``, in one matrix product."""
        if not xs:
            return np.zeros((0, n_labels), dtype=np.float32)
        dims = {x.dim if isinstance(x, SparseVector) else x.shape[0] for x in xs}
        if len(dims) > 1:
            raise ValueError(f"a batch mixes feature dimensions {sorted(dims)}")
        self._ensure(dims.pop(), n_labels)
        w = self.weights
        if isinstance(xs[0], SparseVector):
            batch, columns = compact_rows([(x.indices, x.values) for x in xs])
            z = np.asarray(batch @ w[columns, :n_labels])
        else:
            z = np.stack(xs) @ w[:-1, :n_labels]
        return z + w[-1, :n_labels]

    def probabilities(self, x: Features, n_labels: int) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(self.logits(x, n_labels), -30.0), 30.0)))

    def learn(self, x: Features, y: np.ndarray, p: np.ndarray) -> None:
        """One logistic-loss step given targets ``y`` and the probabilities ``p`` predicted for ``x``."""
        n_labels = y.shape[0]
        dim = x.dim if isinstance(x, SparseVector) else x.shape[0]
        self._ensure(dim, n_labels)
        gradient = (y - p).astype(np.float32)
        w = self.weights
        if isinstance(x, SparseVector):
            idx, values = x.indices, x.values
        else:
            idx = np.flatnonzero(x)
            values = x[idx]
        self._g2[idx] += values * values
        self._g2[-1] += 1.0
        rates = self.learning_rate / np.sqrt(self.adagrad_offset + self._g2[idx])
        block = w[idx, :n_labels]
        if self.l2:
            block *= 1.0 - (rates * self.l2)[:, None]
        block += np.outer(rates * values, gradient)
        w[idx, :n_labels] = block
        w[-1, :n_labels] += (self.learning_rate / np.sqrt(self.adagrad_offset + self._g2[-1])) * gradient

    def state(self) -> State:
        return State(
            meta={"learning_rate": self.learning_rate, "l2": self.l2, "adagrad_offset": self.adagrad_offset,
                  "dim": self.dim},
            arrays={"weights": self.weights, "g2": self._g2},
        )

    @classmethod
    def from_state(cls, state: State) -> "LinearHeads":
        heads = cls(learning_rate=state.meta["learning_rate"], l2=state.meta["l2"],
                    adagrad_offset=state.meta["adagrad_offset"])
        heads.dim = state.meta["dim"]
        heads.weights = state.arrays["weights"].astype(np.float32)
        heads._g2 = state.arrays["g2"].astype(np.float32)
        return heads
