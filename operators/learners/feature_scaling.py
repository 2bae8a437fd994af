"""Online feature scaling so one learner configuration fits dense and sparse streams alike."""

from __future__ import annotations

import math

import numpy as np

from labelflow.operators.base import Features, SparseVector
from labelflow.operators.compiled import kernel
from labelflow.operators.state import Stateful


@kernel
def _standardized(
    x: np.ndarray, mean: np.ndarray, m2: np.ndarray, n: int, clip: float, out: np.ndarray
) -> None:
    """``out`` = the standardised, clipped ``x`` over ``sqrt(dim)``, in float64 as the numpy form was
    (``(x - mean) / std``, 0 where ``std <= 1e-12``), so the values are the same to the bit."""
    root = math.sqrt(x.shape[0])
    for i in range(x.shape[0]):
        std = math.sqrt(m2[i] / (n - 1))
        z = (x[i] - mean[i]) / max(std, 1e-12) if std > 1e-12 else 0.0
        out[i] = min(max(z, -clip), clip) / root


@kernel
def _welford_step(x: np.ndarray, mean: np.ndarray, m2: np.ndarray, n: int) -> None:
    """One Welford update of the running ``mean`` and ``m2`` with ``x`` (the ``n``-th instance)."""
    for i in range(x.shape[0]):
        delta = x[i] - mean[i]
        mean[i] += delta / n
        m2[i] += delta * (x[i] - mean[i])


@kernel
def _idf_weighted(
    indices: np.ndarray,
    values: np.ndarray,
    df: np.ndarray,
    n: int,
    idf: bool,
    scale: np.float32,
    out: np.ndarray,
) -> np.float32:
    """``out`` = ``values / scale`` weighted by ``log((1 + n) / (1 + df)) + 1`` (when ``idf``); their sum
    of squares, in float32 (dividing by a scale of 1 is exact: the plain weighting)."""
    seen = np.float32(1.0 + n)
    one = np.float32(1.0)
    squares = np.float32(0.0)
    for k in range(indices.shape[0]):
        value = values[k] / scale
        if idf:
            value = value * (np.log(seen / (one + df[indices[k]])) + one)
        out[k] = value
        squares += value * value
    return squares


@kernel
def _idf_unit(
    indices: np.ndarray, values: np.ndarray, df: np.ndarray, n: int, idf: bool, out: np.ndarray
) -> None:
    """``out`` = the sparse ``values`` weighted by ``log((1 + n) / (1 + df)) + 1`` (when ``idf``) and
    divided by their L2 norm (a zero vector stays zero), in float32 as the numpy form computes it
    (LLVM's log and a sequential sum of squares where numpy used its own log and BLAS's dot)."""
    norm = np.sqrt(_idf_weighted(indices, values, df, n, idf, np.float32(1.0), out))
    if not norm < np.inf or norm == 0:
        # The squares overflowed float32 (a value above ~1e19) or underflowed (all below ~1e-19): the
        # direction is the same after dividing by the largest magnitude, whose squares cannot overflow.
        # Without this a single huge value made the vector NaN and the model with it.
        largest = np.float32(0.0)
        for k in range(indices.shape[0]):
            largest = max(largest, abs(values[k]))
        if not 0 < largest < np.inf:
            return  # all zero (it stays zero), or not a float32 number (refused before the model)
        norm = np.sqrt(_idf_weighted(indices, values, df, n, idf, largest, out))
    for k in range(indices.shape[0]):
        out[k] = out[k] / norm


@kernel
def _count_documents(indices: np.ndarray, df: np.ndarray) -> None:
    for k in range(indices.shape[0]):
        df[indices[k]] += np.float32(1.0)


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
            _count_documents(x.indices, df)
        else:
            mean, m2 = self._moments(x)
            self.n += 1
            _welford_step(x, mean, m2, self.n)

    def transform(self, x: Features) -> Features:
        if isinstance(x, SparseVector):
            df = self._document_frequency(x)
            values = x.values
            if values.dtype == np.float32:
                scaled = np.empty(values.shape[0], dtype=np.float32)
                _idf_unit(x.indices, values, df, self.n, self.idf, scaled)
                return SparseVector(x.indices, scaled, x.dim)
            if self.idf:
                values = values * (np.log((1.0 + self.n) / (1.0 + df[x.indices])) + 1.0)
            norm = float(np.sqrt(np.dot(values, values)))
            if norm > 0:
                values = values / norm
            return SparseVector(x.indices, values.astype(np.float32, copy=False), x.dim)
        mean, m2 = self._moments(x)
        if self.n < 2:
            return np.zeros(x.shape[0], dtype=np.float32)
        out = np.empty(x.shape[0], dtype=np.float32)
        _standardized(x, mean, m2, self.n, float(self.clip), out)
        return out
