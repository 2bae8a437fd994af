"""Any labelflow learner as a river multi-label classifier, for river's evaluation loop and pipelines.

river's multi-label protocol passes features as a dict (``{name: value}``) and labels as a dict
(``{label: bool}``), and its metrics read predictions as ``{label: bool}``; labelflow's learners take
vectors (``np.ndarray`` or ``SparseVector``) and label lists. ``RiverMultiLabel`` translates at the
boundary and leaves the learner untouched, so no subclass is needed:

>>> from river import metrics
>>> from labelflow.operators.learners.registry import make_learner
>>> model = RiverMultiLabel(make_learner("partitioned"))
>>> metric = metrics.multioutput.MicroAverage(metrics.F1())
>>> for x, y in [({"wheat": 1.0}, {"grain": True, "oil": False}), ({"crude": 2.0}, {"grain": False, "oil": True})] * 20:
...     y_pred = model.predict_one(x)
...     metric.update(y, y_pred)
...     model.learn_one(x, y)
>>> model.predict_one({"wheat": 1.0})["grain"], model.predict_one({"crude": 1.0})["oil"]
(True, True)

Feature names become column indices: a non-negative integer below ``n_features`` is used as it is,
any other name is hashed (BLAKE2b, stable across processes) into ``[0, n_features)``. A string ``x`` is
a text for the ``embedder`` (a ``labelflow.operators.embedders`` embedder, e.g. hashing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from river import base

from labelflow.operators.base import Features, Label, MultiLabelClassifier, SparseVector
from labelflow.operators.embedders.base import Embedder

DEFAULT_N_FEATURES = 2**18


class Decisions(dict):
    """``{label: bool}`` for the known labels; a label never seen reads as False (river indexes by y_true)."""

    def __missing__(self, key: Any) -> bool:
        return False


def _column(name: Any, n_features: int) -> int:
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool) and 0 <= int(name) < n_features:
        return int(name)
    digest = hashlib.blake2b(repr(name).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n_features


def features_from_dict(x: Mapping[Any, Any], n_features: int) -> SparseVector:
    """A river feature dict as a ``SparseVector`` (zero and non-numeric values left out; collisions add).

    >>> v = features_from_dict({3: 1.5, "colour": 2.0, "skip": 0.0}, n_features=16)
    >>> v.dim, sorted(v.to_dense().nonzero()[0].tolist())[:1], float(v.to_dense().sum())
    (16, [3], 3.5)
    """
    columns: dict[int, float] = {}
    for name, value in x.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value == 0:
            continue
        column = _column(name, n_features)
        columns[column] = columns.get(column, 0.0) + float(value)
    return SparseVector.from_dict(columns, n_features)


def labels_from_river(y: Mapping[Label, Any] | Iterable[Label]) -> list[Label]:
    """The positive labels of a river label dict (or a plain collection of labels).

    >>> labels_from_river({"a": True, "b": False, "c": 1})
    ['a', 'c']
    """
    if isinstance(y, Mapping):
        return [label for label, value in y.items() if value]
    return list(y)


class RiverMultiLabel(base.MultiLabelClassifier):
    """river's ``MultiLabelClassifier`` protocol around a labelflow learner.

    Parameters
    ----------
    model
        Any labelflow ``MultiLabelClassifier`` (e.g. ``make_learner("partitioned")``).
    n_features
        Columns that feature names are mapped to (dict inputs).
    embedder
        Turns string inputs into vectors; None refuses text.
    """

    def __init__(
        self,
        model: MultiLabelClassifier,
        n_features: int = DEFAULT_N_FEATURES,
        embedder: Embedder | None = None,
    ) -> None:
        if n_features < 1:
            raise ValueError(f"n_features must be at least 1, got {n_features}")
        self.model = model
        self.n_features = n_features
        self.embedder = embedder

    def _vector(self, x: Any) -> Features:
        if isinstance(x, Mapping):
            return features_from_dict(x, self.n_features)
        if isinstance(x, str):
            if self.embedder is None:
                raise TypeError("a text input needs an embedder: RiverMultiLabel(model, embedder=...)")
            return self.embedder.embed_one(x)
        if isinstance(x, (np.ndarray, SparseVector)):
            return x
        raise TypeError(f"features must be a dict, a text or a vector, got {type(x).__name__}")

    def learn_one(self, x: Any, y: Any) -> None:
        self.model.learn_one(self._vector(x), labels_from_river(y))

    def predict_one(self, x: Any, **kwargs: Any) -> dict[Label, bool]:
        decided = self.model.predict_one(self._vector(x))
        out = Decisions({label: False for label in self.model.labels})
        out.update({label: True for label in decided})
        return out

    def predict_proba_one(self, x: Any, **kwargs: Any) -> dict[Label, dict[bool, float]]:
        scores = self.model.predict_proba_one(self._vector(x))
        return {label: {False: 1.0 - float(p), True: float(p)} for label, p in scores.items()}

    @property
    def labels(self) -> list[Label]:
        return list(self.model.labels)
