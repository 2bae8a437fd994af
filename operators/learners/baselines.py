"""Reference learners every result is compared against.

* :class:`NoChangeClassifier` predicts the previous instance's label set, and
  :class:`MajorityLabelSetClassifier` the most frequent label set so far: the two trivial baselines
  of the evaluation protocol (a result only counts as learning where it beats them).
* :class:`RiverMultiLabel` adapts river's online multi-label classifiers (binary relevance and
  classifier chains of logistic regressions) to our interface, as the in-house comparison.
* :class:`AdaGradOneVsRest` is the simplest strong rival of the default learner: a few vectorized
  numpy operations per instance (one AdaGrad logistic head per label and one pooled threshold).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from labelflow.operators.base import Features, Label, MultiLabelClassifier, SparseVector
from labelflow.operators.learners.feature_scaling import FeatureScaler
from labelflow.operators.learners.label_index import LabelIndex
from labelflow.operators.learners.linear import LinearHeads
from labelflow.operators.learners.thresholds import AdaptiveThresholds
from labelflow.operators.state import State, Stateful

ADAGRAD_OVR_FORMAT = "labelflow.adagrad-ovr/1"


class _KnownLabels:
    """Label names in order of first appearance (what ``labels`` reports)."""

    def __init__(self) -> None:
        self.names: dict[Label, None] = {}

    def add(self, labels: Iterable[Label]) -> list[Label]:
        """Register ``labels``; return the ones not seen before, in order."""
        new = [label for label in labels if label not in self.names]
        for label in new:
            self.names[label] = None
        return new


class NoChangeClassifier(Stateful, MultiLabelClassifier):
    """Predicts the label set of the previous instance (the "no-change" baseline).

    Strong on ordered streams: in Scene, 87.6% of consecutive instances share their label set.
    Scores are 1.0 for the labels of the previous instance and 0.0 for every other known label.

    Examples
    --------

    >>> model = NoChangeClassifier()
    >>> model.predict_one(None)
    set()
    >>> model.learn_one(None, ["sport", "news"])
    >>> sorted(model.predict_one(None)), model.predict_proba_one(None)
    (['news', 'sport'], {'sport': 1.0, 'news': 1.0})
    >>> model.learn_one(None, ["weather"])
    >>> model.predict_with_scores(None)
    ({'weather'}, {'sport': 0.0, 'news': 0.0, 'weather': 1.0})
    """

    state_header = {"kind": "no-change"}

    def __init__(self) -> None:
        self._known = _KnownLabels()
        self._last: frozenset = frozenset()

    def learn_one(self, x: Features | None, y: Iterable[Label]) -> None:
        labels = list(dict.fromkeys(y))
        self._known.add(labels)
        self._last = frozenset(labels)

    def predict_one(self, x: Features | None) -> set[Label]:
        return set(self._last)

    def predict_proba_one(self, x: Features | None) -> dict[Label, float]:
        last = self._last
        return {label: 1.0 if label in last else 0.0 for label in self._known.names}

    def predict_with_scores(self, x: Features | None) -> tuple[set[Label], dict[Label, float]]:
        return self.predict_one(x), self.predict_proba_one(x)

    @property
    def labels(self) -> list[Label]:
        return list(self._known.names)

    def _save_state(self, state: State) -> None:
        state.meta.update(labels=self.labels, last=sorted(self._last, key=str))

    def _load_state(self, state: State) -> None:
        self._known.add(state.meta["labels"])
        self._last = frozenset(state.meta["last"])


class MajorityLabelSetClassifier(MultiLabelClassifier):
    """Predicts the most frequent label set seen so far (the "majority label set" baseline).

    Ties keep the label set that reached the top count first. Scores are the fraction of instances
    so far that carried each label (the label's prior), so that P@k ranks by frequency.

    Examples
    --------

    >>> model = MajorityLabelSetClassifier()
    >>> for labels in (["a"], ["b", "c"], ["b", "c"], ["a"], ["a"]):
    ...     model.learn_one(None, labels)
    >>> model.predict_one(None)
    {'a'}
    >>> model.predict_proba_one(None)
    {'a': 0.6, 'b': 0.4, 'c': 0.4}
    """

    def __init__(self) -> None:
        self._known = _KnownLabels()
        self._set_counts: dict[frozenset, int] = {}
        self._label_counts: dict[Label, int] = {}
        self._n = 0
        self._best: frozenset = frozenset()
        self._best_count = 0

    def learn_one(self, x: Features | None, y: Iterable[Label]) -> None:
        labels = list(dict.fromkeys(y))
        self._known.add(labels)
        key = frozenset(labels)
        count = self._set_counts.get(key, 0) + 1
        self._set_counts[key] = count
        if count > self._best_count:
            self._best, self._best_count = key, count
        for label in labels:
            self._label_counts[label] = self._label_counts.get(label, 0) + 1
        self._n += 1

    def predict_one(self, x: Features | None) -> set[Label]:
        return set(self._best)

    def predict_proba_one(self, x: Features | None) -> dict[Label, float]:
        n = self._n or 1
        return {label: self._label_counts.get(label, 0) / n for label in self._known.names}

    def predict_with_scores(self, x: Features | None) -> tuple[set[Label], dict[Label, float]]:
        return self.predict_one(x), self.predict_proba_one(x)

    @property
    def labels(self) -> list[Label]:
        return list(self._known.names)

    @property
    def n_label_sets(self) -> int:
        """Distinct label sets seen so far."""
        return len(self._set_counts)


def to_river_features(x: Features) -> dict[int, float]:
    """Our feature vector as river's ``{feature: value}`` dict (sparse: only the stored entries).

    >>> to_river_features(np.array([0.5, 0.0, 2.0], dtype=np.float32))
    {0: 0.5, 1: 0.0, 2: 2.0}
    >>> to_river_features(SparseVector.from_dict({7: 1.5}, dim=10))
    {7: 1.5}
    """
    if isinstance(x, SparseVector):
        return dict(zip(x.indices.tolist(), x.values.tolist(), strict=True))
    array = np.asarray(x)
    if array.ndim != 1:
        raise ValueError(f"expected a 1-D feature vector, got shape {array.shape}")
    return dict(enumerate(array.tolist()))


class RiverMultiLabel(MultiLabelClassifier):
    """A river multi-label classifier behind our interface.

    ``factory()`` builds the river model (e.g. ``river.multioutput.ClassifierChain(
    river.linear_model.LogisticRegression())`` or ``PerOutputClassifier``); it is called on the first
    instance, when it is known whether the features are dense. Dense inputs go through
    ``river.preprocessing.StandardScaler`` first (river's linear models need scaled inputs); sparse
    bag-of-words inputs are passed as they are (scaling would densify them).

    The label space grows online: every ``learn_one`` passes river the full ``{label: bool}`` dict
    over all labels known so far, so a new label gets a fresh per-label model and old labels keep
    learning negatives. Classifier chains are ordered by first appearance: a new label is appended
    to the end of the chain *before* the instance that introduced it is learned (river itself would
    append it only afterwards, losing that first positive example); labels earlier in the chain never
    see the new label's prediction as a feature, labels after it do.

    A label is decided when its probability is strictly above ``threshold`` (river's own decision:
    a fresh logistic regression scores 0.5 and predicts nothing).

    Examples
    --------

    >>> model = RiverMultiLabel.binary_relevance()
    >>> for _ in range(30):
    ...     model.learn_one(np.array([1.0, 0.0]), ["a"])
    ...     model.learn_one(np.array([0.0, 1.0]), ["b"])
    >>> model.predict_one(np.array([1.0, 0.0])), model.labels
    ({'a'}, ['a', 'b'])
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        scale_dense: bool = True,
        threshold: float = 0.5,
        name: str = "river",
    ) -> None:
        self.factory = factory
        self.scale_dense = scale_dense
        self.threshold = threshold
        self.name = name
        self._known = _KnownLabels()
        self._model: Any = None
        self._inner: Any = None

    @classmethod
    def binary_relevance(cls, **kwargs: Any) -> RiverMultiLabel:
        """One independent river ``LogisticRegression`` per label (``PerOutputClassifier``)."""
        from river import linear_model, multioutput

        return cls(
            lambda: multioutput.PerOutputClassifier(linear_model.LogisticRegression()),
            name="river-br",
            **kwargs,
        )

    @classmethod
    def classifier_chain(cls, **kwargs: Any) -> RiverMultiLabel:
        """A river ``ClassifierChain`` of ``LogisticRegression``, ordered by first appearance."""
        from river import linear_model, multioutput

        return cls(
            lambda: multioutput.ClassifierChain(linear_model.LogisticRegression(), order=[]),
            name="river-cc",
            **kwargs,
        )

    def _build(self, x: Features) -> None:
        self._inner = self.factory()
        if self.scale_dense and not isinstance(x, SparseVector):
            from river import preprocessing

            self._model = preprocessing.StandardScaler() | self._inner
        else:
            self._model = self._inner

    def learn_one(self, x: Features, y: Iterable[Label]) -> None:
        if self._model is None:
            self._build(x)
        labels = list(dict.fromkeys(y))
        new = self._known.add(labels)
        order = getattr(self._inner, "order", None)
        if new and isinstance(order, list):
            order.extend(new)
        positive = set(labels)
        targets = {label: label in positive for label in self._known.names}
        self._model.learn_one(to_river_features(x), targets)

    def predict_proba_one(self, x: Features) -> dict[Label, float]:
        if self._model is None or not self._known.names:
            return {}
        raw = self._model.predict_proba_one(to_river_features(x))
        scores = {}
        for label in self._known.names:
            probabilities = raw.get(label)
            scores[label] = float(probabilities.get(True, 0.0)) if probabilities else 0.0
        return scores

    def predict_with_scores(self, x: Features) -> tuple[set[Label], dict[Label, float]]:
        scores = self.predict_proba_one(x)
        return {label for label, p in scores.items() if p > self.threshold}, scores

    def predict_one(self, x: Features) -> set[Label]:
        return self.predict_with_scores(x)[0]

    @property
    def labels(self) -> list[Label]:
        return list(self._known.names)

    def __repr__(self) -> str:
        return f"RiverMultiLabel({self.name})"


class AdaGradOneVsRest(Stateful, MultiLabelClassifier):
    """One-vs-rest AdaGrad logistic regressions with one pooled decision threshold.

    The simplest strong rival of the default learner, reported beside it in every benchmark table:
    inputs scaled online to unit norm (:class:`FeatureScaler`), one logistic head per label updated
    together (:class:`LinearHeads`, AdaGrad per feature), and a single threshold shared by all labels
    that tracks the micro-F1-optimal cut of recent scores (:class:`AdaptiveThresholds` with infinite
    shrinkage). Per instance this is a handful of numpy operations and no per-label Python.

    Parameters
    ----------
    learning_rate
        Base AdaGrad step size of the heads (4 measured best over the ARFF streams in issue 16).
    idf
        Online inverse-document-frequency weighting of sparse features.

    >>> model = AdaGradOneVsRest()
    >>> for _ in range(100):
    ...     model.learn_one(np.array([1.0, 0.0], dtype=np.float32), ["a"])
    ...     model.learn_one(np.array([0.0, 1.0], dtype=np.float32), ["b"])
    >>> model.predict_one(np.array([1.0, 0.0], dtype=np.float32))
    {'a'}
    """

    state_header = {"format": ADAGRAD_OVR_FORMAT}
    state_settings = ("learning_rate", "idf")
    state_children = ("label_index", "scaler", "heads", "thresholds")
    state_keys = {"label_index": "labels"}

    def __init__(self, *, learning_rate: float = 4.0, idf: bool = True) -> None:
        self.learning_rate = learning_rate
        self.idf = idf
        self.label_index = LabelIndex()
        self.scaler = FeatureScaler(idf=idf)
        self.heads = LinearHeads(learning_rate=learning_rate)
        self.thresholds = AdaptiveThresholds()
        # The last instance's scaled features and probabilities: learn_one after predicting the same
        # instance (the prequential protocol, the worker) reuses them instead of recomputing.
        self._cached: tuple[Features, Features, np.ndarray] | None = None

    def _forward(self, x: Features) -> tuple[Features, np.ndarray]:
        if self._cached is not None and self._cached[0] is x:
            return self._cached[1], self._cached[2]
        scaled = self.scaler.transform(x)
        p = self.heads.probabilities(scaled, len(self.label_index))
        self._cached = (x, scaled, p)
        return scaled, p

    def predict_with_scores(self, x: Features) -> tuple[set[Label], dict[Label, float]]:
        _, p = self._forward(x)
        names = self.label_index.names
        decided = np.flatnonzero(p > self.thresholds.values(p.shape[0])).tolist()
        return {names[i] for i in decided}, dict(zip(names, p.tolist(), strict=True))

    def predict_one(self, x: Features) -> set[Label]:
        return self.predict_with_scores(x)[0]

    def predict_proba_one(self, x: Features) -> dict[Label, float]:
        return self.predict_with_scores(x)[1]

    def learn_one(self, x: Features, y: Iterable[Label]) -> None:
        scaled, p = self._forward(x)
        label_ids = self.label_index.ids(y)
        n = len(self.label_index)
        target = np.zeros(n, dtype=np.float32)
        target[label_ids] = 1.0
        if p.shape[0]:
            self.thresholds.update(p, target[: p.shape[0]])
        if p.shape[0] < n:
            p = np.concatenate([p, np.full(n - p.shape[0], 0.5, dtype=p.dtype)])
        self.heads.learn(scaled, target, p)
        self.scaler.learn_one(x)
        self._cached = None

    @property
    def labels(self) -> list[Label]:
        return self.label_index.names
