"""The roles every operator plays, and the feature vector type they exchange.

Operators follow river's verbs: ``learn_one`` / ``predict_one`` / ``predict_proba_one`` for a single
instance and ``learn_many`` / ``predict_many`` / ``predict_proba_many`` for micro-batches. Labels are
hashable names (strings in the product); the classifier grows its label space when a new name appears.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np

Label = Hashable


@dataclass(frozen=True, slots=True)
class SparseVector:
    """A sparse feature vector: sorted unique ``indices`` with their ``values`` in a space of ``dim``.

    >>> v = SparseVector.from_dict({3: 1.0, 1: 2.0}, dim=8)
    >>> v.indices.tolist(), v.values.tolist(), v.dim
    ([1, 3], [2.0, 1.0], 8)
    >>> v.to_dense().tolist()
    [0.0, 2.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    """

    indices: np.ndarray  # int64, sorted, unique
    values: np.ndarray  # float32
    dim: int

    @classmethod
    def from_dict(cls, mapping: dict[int, float], dim: int) -> SparseVector:
        if not mapping:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), dim)
        keys = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
        vals = np.fromiter(mapping.values(), dtype=np.float32, count=len(mapping))
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], vals[order], dim)

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])

    def to_dense(self) -> np.ndarray:
        dense = np.zeros(self.dim, dtype=np.float32)
        dense[self.indices] = self.values
        return dense


#: What a classifier consumes: a dense float vector (an embedding, a numeric ARFF row) or a sparse one.
Features = Union[np.ndarray, SparseVector]


def feature_dim(x: Features) -> int:
    """The dimension of a feature vector, dense or sparse."""
    return x.dim if isinstance(x, SparseVector) else int(np.shape(x)[0])


class MultiLabelClassifier(abc.ABC):
    """An online multi-label classifier over a growing set of label names.

    Subclasses implement ``learn_one`` and ``predict_proba_one``; batch methods default to loops and
    are overridden where vectorizing pays off. ``predict_one`` returns the decided label set.
    """

    @abc.abstractmethod
    def learn_one(self, x: Features, y: Iterable[Label]) -> None:
        """Update the model with one instance and its full label set (an empty set is allowed)."""

    @abc.abstractmethod
    def predict_proba_one(self, x: Features) -> dict[Label, float]:
        """Per-label probability for every label known so far."""

    def predict_one(self, x: Features) -> set[Label]:
        """The decided label set (thresholded; subclasses may decode jointly)."""
        return {label for label, p in self.predict_proba_one(x).items() if p >= 0.5}

    def learn_many(self, xs: Sequence[Features], ys: Sequence[Iterable[Label]]) -> None:
        for x, y in zip(xs, ys):
            self.learn_one(x, y)

    def predict_many(self, xs: Sequence[Features]) -> list[set[Label]]:
        return [self.predict_one(x) for x in xs]

    def predict_proba_many(self, xs: Sequence[Features]) -> list[dict[Label, float]]:
        return [self.predict_proba_one(x) for x in xs]

    @property
    def labels(self) -> list[Label]:
        """Known label names, in the order the classifier indexes them."""
        return []
