"""Label prior drift: label frequencies or the label cardinality moved, or a new label took hold.

The detector keeps per-label counts in blocks of ``block_size`` label sets. When a block closes it
compares the last ``test_blocks`` blocks (the test window) with up to ``reference_blocks`` blocks before
them (the reference window):

- per label, a conditional test of "the label's occurrences split between the two windows as their sizes
  predict": given the label's total count k, its test-window count is hypergeometric; we take the tails
  of Binomial(k, n_test / (n_test + n_reference)), which has the same mean and a larger variance (so the
  test errs on the conservative side) and is a fast ufunc; two-sided;
- for the cardinality, Welch's z-test of the two mean label-set sizes.

The tests are Bonferroni-corrected over the labels seen in the two windows plus the cardinality, so
``alpha`` bounds the probability that one check raises a false alarm. After a detection both windows
are cleared: the next test compares data of the new regime only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import special

from labelflow.operators.drift.base import BLOCK_WINDOW_SETTINGS, DriftDetector, check_block_windows
from labelflow.operators.drift.events import GLOBAL_LEVEL, DriftEvent
from labelflow.operators.state import State

# How many per-label shifts an event lists in ``details`` (events stay small with thousands of labels).
_MAX_LISTED_SHIFTS = 20
# Where an indicator column is counted before its label occurs, and where it is never counted.
_UNSEEN = -2
_OUT_OF_SCOPE = -1


class LabelPriorDriftDetector(DriftDetector):
    """Detects shifts of the label priors and of the label cardinality in a stream of label sets.

    Parameters
    ----------
    block_size
        Label sets per block; the windows are compared each time a block closes.
    test_blocks
        Blocks in the test window (the recent data).
    reference_blocks
        Most blocks in the reference window (the data just before the test window).
    min_reference_blocks
        Fewest reference blocks before the first comparison (after a start or a detection).
    alpha
        Family-wise false-alarm probability of one comparison (Bonferroni over the labels tested).
    action
        The ``action`` written into events.
    level, labels, cooldown
        See ``DriftDetector``. With ``labels`` given, only those labels are watched (e.g. one label
        cluster's); otherwise every label seen is.

    The event statistic is ``-log10`` of the smallest Bonferroni-adjusted p-value, the threshold
    ``-log10(alpha)``. ``details`` lists the shifted labels with their frequencies ``before`` and
    ``after``, the labels first seen in the test window (``new_labels``) and the cardinalities.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> detector = LabelPriorDriftDetector()
    >>> events = []
    >>> for t in range(6000):
    ...     p_b = 0.1 if t < 3000 else 0.4  # label "b" becomes four times as frequent at t = 3000
    ...     y = [name for name, p in (("a", 0.5), ("b", p_b), ("c", 0.2)) if rng.random() < p]
    ...     event = detector.update(y)
    ...     if event is not None:
    ...         events.append(event)
    >>> [(e.position, e.labels) for e in events]
    [(3199, ('b',))]
    >>> events[0].details["shifts"][0]["before"], events[0].details["shifts"][0]["after"]
    (0.1045, 0.266667)
    """

    kind = "label_prior"
    _counts: np.ndarray  # (blocks, labels): per block, how often each label occurred

    state_settings = (*DriftDetector.state_settings, *BLOCK_WINDOW_SETTINGS, "action")

    def __init__(
        self,
        *,
        block_size: int = 100,
        test_blocks: int = 3,
        reference_blocks: int = 20,
        min_reference_blocks: int = 10,
        alpha: float = 1e-4,
        action: str = "alert",
        level: str | int = GLOBAL_LEVEL,
        labels: Iterable[str] = (),
        cooldown: int = 0,
    ) -> None:
        super().__init__(level=level, labels=labels, cooldown=cooldown)
        check_block_windows(block_size, [test_blocks], reference_blocks, min_reference_blocks, alpha)
        self.block_size = int(block_size)
        self.test_blocks = int(test_blocks)
        self.reference_blocks = int(reference_blocks)
        self.min_reference_blocks = int(min_reference_blocks)
        self.alpha = float(alpha)
        self.action = action
        self._scope = frozenset(self.labels)
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self._first_seen: list[int] = []
        self._reset_windows(capacity=16)
        self._forget_columns()

    def _reset(self) -> None:
        self._index = {}
        self._names = []
        self._first_seen = []
        self._reset_windows(capacity=16)
        self._forget_columns()

    def _forget_columns(self) -> None:
        # update_indicators: the names of the indicator columns seen so far and, for each, its column in
        # the counts (_UNSEEN until the label occurs, _OUT_OF_SCOPE where ``labels`` excludes it).
        self._column_names: list[str] = []
        self._column_of = np.zeros(0, dtype=np.int64)
        self._columns_distinct = True

    def _reset_windows(self, capacity: int | None = None) -> None:
        capacity = capacity if capacity is not None else self._counts.shape[1]
        max_blocks = self.reference_blocks + self.test_blocks
        self._counts = np.zeros((max_blocks, capacity), dtype=np.int64)
        self._cardinality = np.zeros((max_blocks, 2))  # per block: sum and sum of squares of set sizes
        self._n_blocks = 0
        self._open = np.zeros(capacity, dtype=np.int64)
        self._open_cardinality = [0.0, 0.0]
        self._open_count = 0

    @property
    def known_labels(self) -> list[str]:
        """Labels seen so far, in the order they were first seen."""
        return list(self._names)

    def _add_label(self, name: str, first_seen: int | None = None) -> int:
        index = len(self._names)
        if index == self._counts.shape[1]:
            grow = self._counts.shape[1]
            self._counts = np.pad(self._counts, ((0, 0), (0, grow)))
            self._open = np.pad(self._open, (0, grow))
        self._index[name] = index
        self._names.append(name)
        self._first_seen.append(self.n_seen - 1 if first_seen is None else first_seen)
        return index

    def _observe(self, x: Iterable[str], position: int) -> DriftEvent | None:
        if isinstance(x, str):
            raise TypeError(
                f"{type(self).__name__}.update expects a collection of label names, got the string {x!r}"
            )
        size = 0
        # Sorted, not in set order: new labels get their columns in this order, and a set's order of
        # strings changes from process to process (hash randomization); a restored detector must
        # continue exactly as the original would have.
        for name in sorted({str(n) for n in x}):
            if self._scope and name not in self._scope:
                continue
            index = self._index.get(name)
            if index is None:
                index = self._add_label(name)
            self._open[index] += 1
            size += 1
        self._open_cardinality[0] += size
        self._open_cardinality[1] += size * size
        self._open_count += 1
        if self._open_count == self.block_size:
            return self._close_block(position)
        return None

    def update_indicators(
        self, indicators: np.ndarray, names: Sequence[str], *, positions: Sequence[int] | None = None
    ) -> list[DriftEvent]:
        """``update_many`` with the label sets given as the rows of a boolean matrix whose column ``j`` is
        the label ``names[j]`` (a string): the same events and state, with the counts of a block summed at
        once.

        Pass the same name for the same column in every call (a growing list, such as a learner's label
        names): where each column is counted is cached between calls (and rebuilt when the names differ).
        """
        n = indicators.shape[0]
        if positions is not None and len(positions) != n:
            raise ValueError(f"got {n} label sets but {len(positions)} positions")
        if indicators.ndim != 2 or indicators.shape[1] > len(names):
            raise ValueError(
                f"expected a 2-D indicator matrix with a name per column, got {indicators.shape}"
            )
        column_of = self._columns_of(names, indicators.shape[1])
        if not self._columns_distinct:  # two columns with one name (e.g. 1 and "1"): count the sets
            label_sets = [[names[j] for j in np.flatnonzero(row).tolist()] for row in indicators]
            return self.update_many(label_sets, positions=positions)
        unseen = np.flatnonzero(column_of == _UNSEEN)
        if unseen.size:
            for row in np.flatnonzero(indicators[:, unseen].any(axis=1)).tolist():
                # New labels take their columns in the order one-by-one updates give them.
                for name in sorted({names[j] for j in np.flatnonzero(indicators[row]).tolist()}):
                    if name not in self._index and not (self._scope and name not in self._scope):
                        self._add_label(name, first_seen=self.n_seen + row)
            for j in unseen.tolist():
                column_of[j] = self._index.get(names[j], _UNSEEN)  # still unseen: no row has it yet
        counted = np.flatnonzero(column_of >= 0)
        columns = column_of[counted]
        events: list[DriftEvent] = []
        start = 0
        while start < n:
            take = min(n - start, self.block_size - self._open_count)
            block = indicators[start : start + take, counted]
            self._open[columns] += block.sum(axis=0)
            sizes = block.sum(axis=1)
            # Integer sums: exact in floats whatever the order.
            self._open_cardinality[0] += float(sizes.sum())
            self._open_cardinality[1] += float((sizes * sizes).sum())
            self._open_count += take
            self.n_seen += take
            start += take
            if self._open_count == self.block_size:
                position = self.n_seen - 1 if positions is None else int(positions[start - 1])
                event = self._gate(self._close_block(position))
                if event is not None:
                    events.append(event)
        return events

    def _columns_of(self, names: Sequence[str], width: int) -> np.ndarray:
        """Where each of the first ``width`` indicator columns is counted (cached while ``names`` agree)."""
        known = len(self._column_names)
        if known > len(names) or list(names[:known]) != self._column_names:
            self._forget_columns()
            known = 0
        if width > known:
            new = list(names[known:width])
            self._column_names += new
            self._column_of = np.concatenate(
                [
                    self._column_of,
                    np.array(
                        [
                            self._index.get(
                                name, _OUT_OF_SCOPE if self._scope and name not in self._scope else _UNSEEN
                            )
                            for name in new
                        ],
                        dtype=np.int64,
                    ),
                ]
            )
            self._columns_distinct = len(set(self._column_names)) == len(self._column_names)
        return self._column_of[:width]

    def _close_block(self, position: int) -> DriftEvent | None:
        if self._n_blocks == self._counts.shape[0]:
            self._counts[:-1] = self._counts[1:]
            self._cardinality[:-1] = self._cardinality[1:]
            self._n_blocks -= 1
        self._counts[self._n_blocks] = self._open
        self._cardinality[self._n_blocks] = self._open_cardinality
        self._n_blocks += 1
        self._open[:] = 0
        self._open_cardinality = [0.0, 0.0]
        self._open_count = 0
        if self._n_blocks < self.min_reference_blocks + self.test_blocks:
            return None
        return self._compare(position)

    def _compare(self, position: int) -> DriftEvent | None:
        n_labels = len(self._names)
        split = self._n_blocks - self.test_blocks
        test = self._counts[split : self._n_blocks, :n_labels].sum(axis=0)
        reference = self._counts[:split, :n_labels].sum(axis=0)
        n_test = self.test_blocks * self.block_size
        n_reference = split * self.block_size
        total = test + reference
        tested = np.flatnonzero(total > 0)
        k, k_test = total[tested], test[tested]
        share = n_test / (n_test + n_reference)
        low = special.bdtr(k_test, k, share)
        high = np.where(k_test > 0, special.bdtrc(k_test - 1, k, share), 1.0)
        p_labels = np.minimum(1.0, 2.0 * np.minimum(low, high))

        card_test = self._cardinality[split : self._n_blocks].sum(axis=0)
        card_reference = self._cardinality[:split].sum(axis=0)
        mean_test, mean_reference = card_test[0] / n_test, card_reference[0] / n_reference
        var_test = max(card_test[1] / n_test - mean_test**2, 0.0)
        var_reference = max(card_reference[1] / n_reference - mean_reference**2, 0.0)
        spread = math.sqrt(var_test / n_test + var_reference / n_reference)
        if spread > 0.0:
            p_cardinality = float(2.0 * special.ndtr(-abs(mean_test - mean_reference) / spread))
        else:
            p_cardinality = 1.0 if mean_test == mean_reference else 0.0

        n_tests = tested.size + 1
        p_min = min(float(p_labels.min()) if tested.size else 1.0, p_cardinality)
        if p_min * n_tests >= self.alpha:
            return None

        shifted_order = np.argsort(p_labels, kind="stable")
        shifted = [int(i) for i in shifted_order if p_labels[i] * n_tests < self.alpha]
        test_start = self.n_seen - n_test
        shifts = [
            {
                "label": self._names[tested[i]],
                "before": round(float(reference[tested[i]]) / n_reference, 6),
                "after": round(float(test[tested[i]]) / n_test, 6),
            }
            for i in shifted
        ]
        affected = [s["label"] for s in shifts]
        details = {
            "shifts": shifts[:_MAX_LISTED_SHIFTS],
            "n_shifted": len(shifts),
            "new_labels": [
                s["label"] for s in shifts if self._first_seen[self._index[s["label"]]] >= test_start
            ],
            "cardinality_before": round(float(mean_reference), 6),
            "cardinality_after": round(float(mean_test), 6),
            "cardinality_p_value": p_cardinality,
            "test_window": n_test,
            "reference_window": n_reference,
        }
        self._reset_windows()
        return self._event(
            statistic=-math.log10(max(p_min * n_tests, 1e-300)),
            threshold=-math.log10(self.alpha),
            position=position,
            action=self.action,
            labels=affected,
            details=details,
        )

    # ------------------------------------------------------------------ state

    def _save_state(self, state: State) -> None:
        meta, arrays = state.meta, state.arrays
        n_labels = len(self._names)
        meta["label_names"] = list(self._names)
        meta["first_seen"] = list(self._first_seen)
        meta["open_cardinality"] = list(self._open_cardinality)
        meta["open_count"] = self._open_count
        arrays["block_counts"] = self._counts[: self._n_blocks, :n_labels].copy()
        arrays["block_cardinality"] = self._cardinality[: self._n_blocks].copy()
        arrays["open_counts"] = self._open[:n_labels].copy()

    def _load_state(self, state: State) -> None:
        meta, arrays = state.meta, state.arrays
        names = [str(n) for n in meta["label_names"]]
        n_blocks, n_labels = arrays["block_counts"].shape
        if n_labels != len(names) or n_blocks > self.reference_blocks + self.test_blocks:
            raise ValueError(
                f"label prior state does not match its parameters ({n_blocks} blocks, {n_labels} labels)"
            )
        self._names = names
        self._index = {name: i for i, name in enumerate(names)}
        self._first_seen = [int(v) for v in meta["first_seen"]]
        self._reset_windows(capacity=max(16, 2 * len(names)))
        self._counts[:n_blocks, :n_labels] = arrays["block_counts"]
        self._cardinality[:n_blocks] = arrays["block_cardinality"]
        self._n_blocks = n_blocks
        self._open[:n_labels] = arrays["open_counts"]
        self._open_cardinality = [float(v) for v in meta["open_cardinality"]]
        self._open_count = int(meta["open_count"])
