"""The roles every operator plays, and the feature vector type they exchange.

Operators follow river's verbs: ``learn_one`` / ``predict_one`` / ``predict_proba_one`` for a single
instance and ``learn_many`` / ``predict_many`` / ``predict_proba_many`` for micro-batches. Labels are
hashable names (strings in the product); the classifier grows its label space when a new name appears.

:class:`StreamingModel` is everything the runtime (``stream/``) calls on a model; every
:class:`MultiLabelClassifier` is one.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np

if TYPE_CHECKING:  # type names only: operators.base is imported by every other operator module
    from labelflow.operators.drift.events import DriftEvent
    from labelflow.operators.state import State

Label = Hashable

#: A prediction: the decided label set and a probability per known label.
ScoredLabels = tuple[set[Label], dict[Label, float]]


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
Features = np.ndarray | SparseVector


def feature_dim(x: Features) -> int:
    """The dimension of a feature vector, dense or sparse."""
    return x.dim if isinstance(x, SparseVector) else int(np.shape(x)[0])


def dense_rows(rows: Sequence[Features]) -> list[np.ndarray]:
    """A batch that must be all dense, as arrays (a ``SparseVector`` among them is a ``TypeError``)."""
    dense = [row for row in rows if not isinstance(row, SparseVector)]
    if len(dense) != len(rows):
        raise TypeError("a batch of dense feature vectors contains a SparseVector")
    return dense


def sparse_rows(rows: Sequence[Features]) -> list[SparseVector]:
    """A batch that must be all sparse (a dense vector among them is a ``TypeError``)."""
    sparse = [row for row in rows if isinstance(row, SparseVector)]
    if len(sparse) != len(rows):
        raise TypeError("a batch of sparse feature vectors contains a dense vector")
    return sparse


class StateNotSupportedError(NotImplementedError):
    """The model cannot be written as a ``State`` (so it cannot be checkpointed or restored)."""


class PartitionInfo(Protocol):
    """What the runtime reports of a model's label clusters (``Partition``, or a label tree's shape)."""

    @property
    def version(self) -> int:
        """Changes whenever the clusters change."""
        ...

    @property
    def n_clusters(self) -> int: ...

    @property
    def clusters(self) -> Sequence[Sequence[int]]:
        """The label ids of each cluster."""
        ...


class StreamingModel(Protocol):
    """What the runtime calls on a model: predict (one document or a run of them), learn, drift events,
    the label space and its partition, and state for checkpoints.

    Every :class:`MultiLabelClassifier` implements it (with defaults for what a learner lacks); the
    worker (``labelflow.stream.model_runtime``) depends on this protocol only.
    """

    @property
    def labels(self) -> list[Label]:
        """Known label names, in the order the model indexes them."""
        ...

    @property
    def partition(self) -> PartitionInfo | None:
        """The model's current clusters of labels (None: the model has none)."""
        ...

    def learn_one(self, x: Features, y: Iterable[Label]) -> None: ...

    def predict_with_scores(self, x: Features) -> ScoredLabels:
        """The decided label set and every known label's probability."""
        ...

    def predict_with_scores_many(self, xs: Sequence[Features]) -> list[ScoredLabels]:
        """:meth:`predict_with_scores` of a run of documents, with no learning in between."""
        ...

    def drain_events(self) -> list[DriftEvent]:
        """Drift events since the last call."""
        ...

    def state(self) -> State:
        """The model as plain arrays and JSON (raises :class:`StateNotSupportedError` if it cannot)."""
        ...

    @classmethod
    def from_state(cls, state: State) -> Self:
        """The model written by :meth:`state` (raises :class:`StateNotSupportedError` if it cannot)."""
        ...


class MultiLabelClassifier(abc.ABC):
    """An online multi-label classifier over a growing set of label names: a :class:`StreamingModel`.

    Subclasses implement ``learn_one`` and ``predict_proba_one``; batch methods default to loops and
    are overridden where vectorizing pays off. ``predict_one`` returns the decided label set. The rest
    of :class:`StreamingModel` defaults to: no partition, no drift events, no state. A mixin that
    provides ``state()`` (``Stateful``) is listed before this class, or the default would hide it.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        later = mro[mro.index(MultiLabelClassifier) + 1 :]
        for name in ("state", "from_state"):
            owner = next(klass for klass in mro if name in vars(klass))
            if owner is MultiLabelClassifier and any(name in vars(klass) for klass in later):
                raise TypeError(
                    f"{cls.__qualname__}: list the base that provides {name}() before MultiLabelClassifier"
                )

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
        for x, y in zip(xs, ys, strict=True):
            self.learn_one(x, y)

    def predict_many(self, xs: Sequence[Features]) -> list[set[Label]]:
        return [self.predict_one(x) for x in xs]

    def predict_proba_many(self, xs: Sequence[Features]) -> list[dict[Label, float]]:
        return [self.predict_proba_one(x) for x in xs]

    def predict_with_scores(self, x: Features) -> ScoredLabels:
        return self.predict_one(x), self.predict_proba_one(x)

    def predict_with_scores_many(self, xs: Sequence[Features]) -> list[ScoredLabels]:
        return [self.predict_with_scores(x) for x in xs]

    @property
    def labels(self) -> list[Label]:
        """Known label names, in the order the classifier indexes them."""
        return []

    @property
    def partition(self) -> PartitionInfo | None:
        return None

    def drain_events(self) -> list[DriftEvent]:
        return []

    def state(self) -> State:
        raise StateNotSupportedError(f"{type(self).__qualname__} has no state(): it cannot be checkpointed")

    @classmethod
    def from_state(cls, state: State) -> Self:
        raise StateNotSupportedError(f"{cls.__qualname__} has no from_state(): it cannot be restored")
