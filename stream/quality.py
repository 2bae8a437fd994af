"""Prequential quality of the live model: each labelled document is scored on the prediction made
before its labels were learned (test-then-train), over a sliding window and cumulatively."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from labelflow.operators.state import State


def _f1(tp: int, fp: int, fn: int) -> float:
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else 2 * tp / denominator


class QualityTracker:
    """Windowed and cumulative micro-F1 and subset accuracy of predictions against true label sets.

    Parameters
    ----------
    window
        Number of most recent labelled documents in the windowed scores.

    Examples
    --------
    >>> q = QualityTracker(window=2)
    >>> q.add({"a"}, {"a", "b"})   # tp=1, fn=1
    >>> q.add({"c"}, {"c"})        # exact
    >>> round(q.micro_f1_window, 3), q.subset_accuracy_window
    (0.8, 0.5)
    >>> q.add(set(), {"d"})        # the first document leaves the window
    >>> round(q.micro_f1_window, 3), round(q.micro_f1_cumulative, 3)
    (0.667, 0.667)
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.window = window
        self._rows: deque[tuple[int, int, int, int]] = deque()
        # Plain ints, not numpy arrays: adding a 4-tuple to an array costs more than the whole update.
        self._sum = [0, 0, 0, 0]  # tp, fp, fn, exact over the window
        self._total = [0, 0, 0, 0]  # the same since the model started
        self.scored = 0

    @property
    def total(self) -> np.ndarray:
        """tp, fp, fn and exact matches since the model started."""
        return np.array(self._total, dtype=np.int64)

    def add(self, predicted: Iterable[str], actual: Iterable[str]) -> None:
        p, a = set(predicted), set(actual)
        tp = len(p & a)
        fp, fn, exact = len(p) - tp, len(a) - tp, int(tp == len(p) == len(a))
        self._rows.append((tp, fp, fn, exact))
        s, t = self._sum, self._total
        s[0] += tp
        s[1] += fp
        s[2] += fn
        s[3] += exact
        t[0] += tp
        t[1] += fp
        t[2] += fn
        t[3] += exact
        self.scored += 1
        if len(self._rows) > self.window:
            old = self._rows.popleft()
            for i in range(4):
                s[i] -= old[i]

    @property
    def size(self) -> int:
        return len(self._rows)

    @property
    def micro_f1_window(self) -> float:
        return _f1(*self._sum[:3])

    @property
    def micro_f1_cumulative(self) -> float:
        return _f1(*self._total[:3])

    @property
    def subset_accuracy_window(self) -> float:
        return self._sum[3] / len(self._rows) if self._rows else 1.0

    def state(self) -> State:
        rows = np.asarray(self._rows, dtype=np.int64).reshape(-1, 4)
        return State(
            meta={"kind": "labelflow.quality", "version": 1, "window": self.window, "scored": self.scored},
            arrays={"rows": rows, "total": self.total},
        )

    @classmethod
    def from_state(cls, state: State, window: int) -> QualityTracker:
        tracker = cls(window)
        tracker._total = [int(v) for v in state.arrays["total"]]
        tracker.scored = int(state.meta["scored"])
        for row in state.arrays["rows"][-window:]:
            tp, fp, fn, exact = (int(v) for v in row)
            tracker._rows.append((tp, fp, fn, exact))
            for i, v in enumerate((tp, fp, fn, exact)):
                tracker._sum[i] += v
        return tracker
