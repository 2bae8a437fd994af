"""Online feature scaling so one learner configuration fits dense and sparse streams alike."""

from __future__ import annotations

import math

import numpy as np

from labelflow.operators.base import Features, SparseVector
from labelflow.operators.state import Stateful


class FeatureScaler(Stateful):
    """Scales features online, with statistics learned from the stream itself.

    Dense vectors are standardised with running means and variances (Welford), clipped to
    ``[-clip, clip]`` and divided by ``sqrt(dim)`` so their norm is about 1 whatever the dimension.
    Sparse vectors (bag of words, hashed n-grams) keep their sparsity: each value is multiplied by an
    online inverse document frequency ``log((1 + n) / (1 + df)) + 1`` when ``idf`` is on, and the
    vector is L2-normalised. Statistics change only in ``learn_one``, so ``transform`` is pure.

    Parameters
    ----------
    idf
        Weight sparse features by online inverse document frequency.
    clip
        Bound on standardised dense values; protects the learners from outliers early in a stream.

    >>> scaler = FeatureScaler()
    >>> for row in ([1.0, 10.0], [3.0, 30.0]):
    ...     scaler.learn_one(np.array(row, dtype=np.float32))
    >>> np.round(scaler.transform(np.array([3.0, 10.0], dtype=np.float32)), 3).tolist()
    [0.5, -0.5]
    """

    state_settings = ("idf", "clip")
    state_fields = ("n",)
    state_arrays = ("_mean", "_m2", "_df")

    def __init__(self, *, idf: bool = True, clip: float = 5.0) -> None:
        self.idf = idf
        self.clip = clip
        self.n = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None
        self._df: np.ndarray | None = None

    def _document_frequency(self, x: SparseVector) -> np.ndarray:
        """Per-feature document counts, created by the first sparse instance."""
        if self._df is None:
            self._df = np.zeros(x.dim, dtype=np.float32)
        elif x.dim != self._df.shape[0]:
            raise ValueError(f"feature dimension changed from {self._df.shape[0]} to {x.dim}")
        return self._df

    def _moments(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Running mean and sum of squared deviations (Welford), created by the first dense instance."""
        if self._mean is None or self._m2 is None:
            self._mean = np.zeros(x.shape[0], dtype=np.float64)
            self._m2 = np.zeros(x.shape[0], dtype=np.float64)
        elif x.shape[0] != self._mean.shape[0]:
            raise ValueError(f"feature dimension changed from {self._mean.shape[0]} to {x.shape[0]}")
        return self._mean, self._m2

    def learn_one(self, x: Features) -> None:
        if isinstance(x, SparseVector):
            df = self._document_frequency(x)
            self.n += 1
            df[x.indices] += 1.0
        else:
            mean, m2 = self._moments(x)
            self.n += 1
            delta = x - mean
            mean += delta / self.n
            m2 += delta * (x - mean)

    def transform(self, x: Features) -> Features:
        if isinstance(x, SparseVector):
            df = self._document_frequency(x)
            values = x.values
            if self.idf:
                values = values * (np.log((1.0 + self.n) / (1.0 + df[x.indices])) + 1.0)
            norm = float(np.sqrt(np.dot(values, values)))
            if norm > 0:
                values = values / norm
            return SparseVector(x.indices, values.astype(np.float32, copy=False), x.dim)
        mean, m2 = self._moments(x)
        if self.n < 2:
            return np.zeros(x.shape[0], dtype=np.float32)
        std = np.sqrt(m2 / (self.n - 1))
        z = np.where(std > 1e-12, (x - mean) / np.maximum(std, 1e-12), 0.0)
        # minimum/maximum rather than np.clip, whose Python wrapper costs more than the work here
        np.minimum(np.maximum(z, -self.clip, out=z), self.clip, out=z)
        return (z / math.sqrt(x.shape[0])).astype(np.float32)
