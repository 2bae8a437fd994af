"""Multi-label metrics over a growing label space, cumulative and over a sliding window.

Counts, not objects: per label, true positives, false positives and false negatives; per instance,
running sums of exact match, Hamming loss, example-based precision/recall/F1 and P@k.
Labels are integer ids ``0..n_labels-1`` handed out by the caller; the label space grows whenever an
update names a larger id, or explicitly with :meth:`MultiLabelMetrics.add_labels`.

Conventions (those of river's ``metrics.multioutput``, which the MLHAT paper's published results use,
and cross-checked against it in the tests):

* A ratio with a zero denominator is 0: a label never predicted has precision 0, a label never
  positive has recall 0, and F1 is 0 when precision or recall is.
* Macro averages are over every label known so far, including labels with no positives and no
  predictions (they count as 0). With a label set declared up front (ARFF headers) this is river's
  ``MacroAverage`` with every label in ``y_true``, which is how MLHAT's tables were produced.
* Example-based F1/precision/recall of an instance with an empty true set and an empty predicted set
  are 0 (river's ``SampleAverage(F1)``).
* Hamming loss of an instance: wrong label decisions divided by the labels known at that moment;
  with a fixed label space this is the usual ``1 - MicroAverage(Accuracy)``.
* P@k: hits among the k top-ranked labels divided by k, averaged over the instances that came with
  a ranking (also when fewer than k labels are known yet).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np

_SUMS = ("exact", "hamming", "ex_f1", "ex_precision", "ex_recall")


def _safe_ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


class MultiLabelMetrics:
    """Cumulative multi-label metrics from integer label ids.

    Parameters
    ----------
    n_labels
        Labels known from the start (e.g. declared in an ARFF header); more are added on the fly.
    p_at_k
        The ``k`` values for precision at k.

    Examples
    --------

    >>> m = MultiLabelMetrics(n_labels=3)
    >>> m.update([0, 1], [0, 1])
    >>> m.update([2], [0])
    >>> m.subset_accuracy, round(m.hamming_loss, 4), m.micro_f1
    (0.5, 0.3333, 0.6666666666666666)
    >>> m.update([1], [1], ranking=[1, 0])
    >>> m.precision_at(1)
    1.0
    """

    def __init__(self, n_labels: int = 0, *, p_at_k: Sequence[int] = (1, 3, 5)) -> None:
        if any(k < 1 for k in p_at_k):
            raise ValueError(f"p_at_k values must be >= 1, got {list(p_at_k)}")
        self.p_at_k = tuple(sorted(set(int(k) for k in p_at_k)))
        self._n_labels = 0
        # Plain lists: one instance touches a handful of labels, and list item updates cost a
        # fraction of numpy fancy-index updates at that size. Reports convert them once.
        self._tp: list[int] = []
        self._fp: list[int] = []
        self._fn: list[int] = []
        self.n_instances = 0
        self.n_ranked = 0
        self._sums = dict.fromkeys(_SUMS, 0.0)
        self._hits_at = dict.fromkeys(self.p_at_k, 0.0)
        self.add_labels(n_labels)

    # -- label space --------------------------------------------------------------------------

    @property
    def n_labels(self) -> int:
        return self._n_labels

    def add_labels(self, n_labels: int) -> None:
        """Make sure ids ``0..n_labels-1`` are known (the label space never shrinks)."""
        if n_labels <= self._n_labels:
            return
        extra = [0] * (n_labels - self._n_labels)
        self._tp.extend(extra)
        self._fp.extend(extra)
        self._fn.extend(extra)
        self._n_labels = n_labels

    @property
    def tp(self) -> np.ndarray:
        """True positives per label id."""
        return np.array(self._tp, dtype=np.int64)

    @property
    def fp(self) -> np.ndarray:
        """False positives per label id."""
        return np.array(self._fp, dtype=np.int64)

    @property
    def fn(self) -> np.ndarray:
        """False negatives per label id."""
        return np.array(self._fn, dtype=np.int64)

    # -- updates ------------------------------------------------------------------------------

    def update(
        self,
        y_true: Iterable[int],
        y_pred: Iterable[int],
        ranking: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Score one instance: its true and predicted label ids and, for P@k, the label ids ranked
        by decreasing score (at least ``max(p_at_k)`` of them, or all known labels if fewer)."""
        self.add(self.score_instance(y_true, y_pred, ranking))

    def score_instance(
        self,
        y_true: Iterable[int],
        y_pred: Iterable[int],
        ranking: Sequence[int] | np.ndarray | None = None,
    ) -> ScoredInstance:
        """Score one instance without adding it, so that the same scores can be added to several
        metric sets sharing this label space (cumulative, windowed, per segment)."""
        return ScoredInstance.of(y_true, y_pred, ranking, self)

    def add(self, scored: ScoredInstance) -> None:
        """Add an instance scored by :meth:`score_instance`."""
        self._apply(scored, +1)

    def update_many(self, y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None) -> None:
        """Score a batch given as 0/1 (or boolean) matrices of shape ``(n_instances, n_labels)``
        whose columns are label ids; ``scores`` (same shape) adds P@k."""
        true = np.asarray(y_true).astype(bool)
        pred = np.asarray(y_pred).astype(bool)
        if true.ndim != 2 or true.shape != pred.shape:
            raise ValueError(f"y_true {true.shape} and y_pred {pred.shape} must be equal 2-D shapes")
        n, width = true.shape
        if n == 0:
            return
        self.add_labels(width)
        n_labels = self._n_labels
        for counts, added in (
            (self._tp, (true & pred).sum(axis=0)),
            (self._fp, (~true & pred).sum(axis=0)),
            (self._fn, (true & ~pred).sum(axis=0)),
        ):
            counts[:width] = (np.array(counts[:width], dtype=np.int64) + added).tolist()
        inter = (true & pred).sum(axis=1).astype(np.float64)
        n_true = true.sum(axis=1).astype(np.float64)
        n_pred = pred.sum(axis=1).astype(np.float64)
        both = n_true + n_pred
        self._sums["exact"] += float((true == pred).all(axis=1).sum())
        self._sums["hamming"] += float((true != pred).sum()) / n_labels if n_labels else 0.0
        self._sums["ex_f1"] += float(np.divide(2 * inter, both, out=np.zeros(n), where=both > 0).sum())
        self._sums["ex_precision"] += float(np.divide(inter, n_pred, out=np.zeros(n), where=n_pred > 0).sum())
        self._sums["ex_recall"] += float(np.divide(inter, n_true, out=np.zeros(n), where=n_true > 0).sum())
        self.n_instances += n
        if scores is not None:
            scores = np.asarray(scores, dtype=np.float64)
            if scores.shape != true.shape:
                raise ValueError(f"scores {scores.shape} must have the shape of y_true {true.shape}")
            order = np.argsort(-scores, axis=1, kind="stable")
            for k in self.p_at_k:
                top = order[:, : min(k, width)]
                self._hits_at[k] += float(np.take_along_axis(true, top, axis=1).sum()) / k
            self.n_ranked += n

    def _apply(self, record: ScoredInstance, sign: int) -> None:
        if record.top >= self._n_labels:
            self.add_labels(record.top + 1)
        tp, fp, fn = self._tp, self._fp, self._fn
        for i in record.tp:
            tp[i] += sign
        for i in record.fp:
            fp[i] += sign
        for i in record.fn:
            fn[i] += sign
        sums = self._sums
        sums["exact"] += sign * record.exact
        sums["hamming"] += sign * record.hamming
        sums["ex_f1"] += sign * record.ex_f1
        sums["ex_precision"] += sign * record.ex_precision
        sums["ex_recall"] += sign * record.ex_recall
        self.n_instances += sign
        if record.hits is not None:
            for k, hits in zip(self.p_at_k, record.hits, strict=True):
                self._hits_at[k] += sign * hits / k
            self.n_ranked += sign

    # -- results ------------------------------------------------------------------------------

    def _mean(self, key: str) -> float:
        return _safe_ratio(self._sums[key], self.n_instances)

    @property
    def subset_accuracy(self) -> float:
        return self._mean("exact")

    @property
    def hamming_loss(self) -> float:
        return self._mean("hamming")

    @property
    def example_f1(self) -> float:
        return self._mean("ex_f1")

    @property
    def example_precision(self) -> float:
        return self._mean("ex_precision")

    @property
    def example_recall(self) -> float:
        return self._mean("ex_recall")

    def _counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.tp, self.fp, self.fn

    @property
    def micro_precision(self) -> float:
        tp, fp, _ = self._counts()
        return _safe_ratio(tp.sum(), tp.sum() + fp.sum())

    @property
    def micro_recall(self) -> float:
        tp, _, fn = self._counts()
        return _safe_ratio(tp.sum(), tp.sum() + fn.sum())

    @property
    def micro_f1(self) -> float:
        tp, fp, fn = self._counts()
        return _safe_ratio(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())

    def per_label_f1(self) -> np.ndarray:
        """F1 of every known label (0 where it has no true positive)."""
        tp, fp, fn = self._counts()
        den = 2 * tp + fp + fn
        return np.divide(2 * tp, den, out=np.zeros(tp.shape[0]), where=den > 0)

    @property
    def macro_precision(self) -> float:
        tp, fp, _ = self._counts()
        if tp.size == 0:
            return 0.0
        den = tp + fp
        return float(np.divide(tp, den, out=np.zeros(tp.shape[0]), where=den > 0).mean())

    @property
    def macro_recall(self) -> float:
        tp, _, fn = self._counts()
        if tp.size == 0:
            return 0.0
        den = tp + fn
        return float(np.divide(tp, den, out=np.zeros(tp.shape[0]), where=den > 0).mean())

    @property
    def macro_f1(self) -> float:
        f1 = self.per_label_f1()
        return float(f1.mean()) if f1.size else 0.0

    def precision_at(self, k: int) -> float:
        if k not in self._hits_at:
            raise KeyError(f"P@{k} is not tracked; tracked: {list(self.p_at_k)}")
        return _safe_ratio(self._hits_at[k], self.n_ranked)

    def report(self) -> dict[str, float | int]:
        """Every metric by name (plus counts), ready for JSON."""
        out: dict[str, float | int] = {
            "n_instances": self.n_instances,
            "n_labels": self._n_labels,
            "subset_accuracy": self.subset_accuracy,
            "hamming_loss": self.hamming_loss,
            "micro_f1": self.micro_f1,
            "macro_f1": self.macro_f1,
            "example_f1": self.example_f1,
            "micro_precision": self.micro_precision,
            "micro_recall": self.micro_recall,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "example_precision": self.example_precision,
            "example_recall": self.example_recall,
        }
        if self.n_ranked:
            for k in self.p_at_k:
                out[f"p_at_{k}"] = self.precision_at(k)
        return out


class WindowedMultiLabelMetrics(MultiLabelMetrics):
    """The same metrics over the last ``window`` instances only (older ones are subtracted).

    Macro averages still run over every label known so far, as river's ``Rolling(MacroAverage)``
    does. ``update_many`` is accepted but goes row by row.

    >>> w = WindowedMultiLabelMetrics(window=2, n_labels=2)
    >>> for true, pred in [([0], [1]), ([1], [1]), ([0], [0])]:
    ...     w.update(true, pred)
    >>> w.n_instances, w.subset_accuracy
    (2, 1.0)
    """

    def __init__(self, window: int, n_labels: int = 0, *, p_at_k: Sequence[int] = (1, 3, 5)) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        super().__init__(n_labels, p_at_k=p_at_k)
        self.window = window
        self._records: deque[ScoredInstance] = deque()

    def add(self, scored: ScoredInstance) -> None:
        self._apply(scored, +1)
        self._records.append(scored)
        if len(self._records) > self.window:
            self._apply(self._records.popleft(), -1)

    def update_many(self, y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None) -> None:
        true = np.asarray(y_true).astype(bool)
        pred = np.asarray(y_pred).astype(bool)
        if true.ndim != 2 or true.shape != pred.shape:
            raise ValueError(f"y_true {true.shape} and y_pred {pred.shape} must be equal 2-D shapes")
        self.add_labels(true.shape[1])
        for i in range(true.shape[0]):
            ranking = None
            if scores is not None:
                ranking = np.argsort(-np.asarray(scores[i], dtype=np.float64), kind="stable")[
                    : max(self.p_at_k)
                ]
            self.update(np.flatnonzero(true[i]), np.flatnonzero(pred[i]), ranking)


class ScoredInstance:
    """One scored instance: which label counters it touches and its per-instance scores (kept by
    windows so that they can subtract it again)."""

    __slots__ = ("tp", "fp", "fn", "exact", "hamming", "ex_f1", "ex_precision", "ex_recall", "hits", "top")
    tp: tuple[int, ...]
    fp: tuple[int, ...]
    fn: tuple[int, ...]
    exact: float
    hamming: float
    ex_f1: float
    ex_precision: float
    ex_recall: float
    hits: tuple[int, ...] | None  # hits within the top k, per k of ``p_at_k`` (None: no ranking)
    top: int  # the largest label id it touches (-1: none)

    @classmethod
    def of(
        cls,
        y_true: Iterable[int],
        y_pred: Iterable[int],
        ranking: Sequence[int] | np.ndarray | None,
        metrics: MultiLabelMetrics,
    ) -> ScoredInstance:
        true = y_true if isinstance(y_true, (set, frozenset)) else {int(i) for i in y_true}
        pred = y_pred if isinstance(y_pred, (set, frozenset)) else {int(i) for i in y_pred}
        ranked = None
        if ranking is not None and metrics.p_at_k:
            ranked = [int(i) for i in ranking[: max(metrics.p_at_k)]]
        every = true | pred
        if ranked:
            every = every.union(ranked)
        top = max(every, default=-1)
        if every and min(every) < 0:
            raise ValueError(f"label ids must be >= 0, got {min(every)}")
        if top >= metrics.n_labels:
            metrics.add_labels(top + 1)
        record = cls()
        record.top = top
        inter = true & pred
        fp = pred - true
        fn = true - pred
        record.tp = tuple(inter)
        record.fp = tuple(fp)
        record.fn = tuple(fn)
        n_inter, n_true, n_pred = len(inter), len(true), len(pred)
        record.exact = 1.0 if true == pred else 0.0
        n_labels = metrics.n_labels
        record.hamming = (len(fp) + len(fn)) / n_labels if n_labels else 0.0
        record.ex_f1 = 2.0 * n_inter / (n_true + n_pred) if n_true + n_pred else 0.0
        record.ex_precision = n_inter / n_pred if n_pred else 0.0
        record.ex_recall = n_inter / n_true if n_true else 0.0
        if ranked is None:
            record.hits = None
        else:
            record.hits = tuple(sum(1 for i in ranked[:k] if i in true) for k in metrics.p_at_k)
        return record
