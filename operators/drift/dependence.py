"""Label dependence drift: which labels occur together changed, seen directly in the label sets.

The label clusterer notices a change of label correlations only once its faded counts have moved far
enough to split or merge a cluster (about a thousand instances or more). This detector tests the
co-occurrences themselves, in blocks, like the label prior detector tests frequencies:

- It *tracks* up to ``max_labels`` labels, the most frequent ones (a faded count per label chooses
  them; a tracked label gives its slot to an untracked one only when that one is more than twice as
  frequent), and counts, per block of ``block_size`` label sets, each tracked label and each pair of
  tracked labels.
- When a block closes it compares, for each test-window length ``T`` in ``test_blocks``, the last
  ``T`` blocks (test window) with up to ``reference_blocks`` blocks before them (reference window).
  For a pair ``(a, b)`` with ``k`` co-occurrences in the two windows, of which ``k_test`` in the test
  window, and ``s_a`` the fraction of ``a``'s occurrences that fall in the test window:

  * "``P(b | a)`` did not change" means that, given ``k`` and ``a``'s occurrences, ``k_test`` is
    hypergeometric with mean ``k * s_a``; its tail is bounded by Chernoff-Hoeffding (which holds for
    sampling without replacement, Hoeffding 1963): ``p <= 2 exp(-k KL(k_test / k || s_a))`` with
    ``KL`` the Bernoulli relative entropy;
  * the pair's dependence changed only if *both* ``P(b | a)`` and ``P(a | b)`` changed
    (an intersection-union test, ``p_pair = max(p_a, p_b)``): a pure prior shift of one label (its
    documents become more or less common, with the same company) moves one of the two conditional
    rates but not the other, so it is not reported. The pair's statistic is therefore
    ``S = k * min(KL(q || s_a), KL(q || s_b))`` with ``q = k_test / k``;
  * the p-value bounds are Bonferroni-corrected over the pairs tested (both labels tracked over the
    whole reference window, at least one co-occurrence) and over the test-window lengths.

  ``alpha`` bounds the probability that one comparison raises a false alarm on a stream whose label
  sets are independent and identically distributed (the bounds are conservative: measured rates are
  far lower). After a detection both windows are cleared: the next test compares data of the new
  regime only.

Several test-window lengths: a short one reacts within a few hundred instances to a sudden change, a
long one accumulates the evidence of a gradual one.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from labelflow.operators.drift.base import BLOCK_WINDOW_SETTINGS, DriftDetector, check_block_windows
from labelflow.operators.drift.events import GLOBAL_LEVEL, DriftEvent
from labelflow.operators.state import State

# How many changed pairs an event lists (and names the labels of): events stay small.
_MAX_LISTED_PAIRS = 10
# A tracked label keeps its slot until an untracked one is more than this many times as frequent.
_SWAP_FACTOR = 2.0


class LabelDependenceDriftDetector(DriftDetector):
    """Detects changes of the dependence between labels (which labels co-occur) in a stream of label sets.

    Parameters
    ----------
    block_size
        Label sets per block; the windows are compared each time a block closes.
    test_blocks
        Lengths of the test window, in blocks, each tested at every comparison (Bonferroni over them).
        The shortest reacts fastest to a sudden change, the longest sees a gradual one.
    reference_blocks
        Most blocks in the reference window (just before the test window).
    min_reference_blocks
        Fewest reference blocks before a test-window length is tested (after a start or a detection).
    alpha
        Bound on the false-alarm probability of one comparison on an i.i.d. stream. 1e-4 with a
        comparison every 100 label sets: at most 0.1 false alarms per 100,000 label sets. No false
        alarm in 5 x 100,000 stationary synthetic documents (``benchmarks/drift/detectors.md``).
    max_labels
        Most labels tracked (the most frequent ones); a comparison tests up to
        ``max_labels * (max_labels - 1) / 2`` pairs.
    min_count
        Faded count (occurrences over about the windows' length) a label needs before it is tracked.
        Rarer labels seldom hold enough co-occurrences for a significant pair.
    action
        The ``action`` written into events.
    level, labels, cooldown
        See ``DriftDetector``; events name the labels of the changed pairs.

    ``update(x, position=None, label_names=None)`` takes one label set: a sequence of integer label
    ids (dense ids ``0 .. n - 1``, new ids may appear at any time; duplicates count once) or a
    boolean indicator vector. ``update_many(xs, positions=None, label_names=None)`` takes a list of
    such sets or a 2-D indicator matrix (rows are instances, non-zero means present) and returns the
    events it produced (usually none). ``label_names`` (a sequence, or an object with a ``name(id)``
    method such as the learner's ``LabelIndex``) names the labels in events; ids without a name are
    written as ``str(id)``. Both calls only buffer label sets until a block closes, so feeding
    instances one by one or in batches gives the same events.

    The event (``kind="label_structure"``) statistic is ``-log10`` of the smallest adjusted p-value
    bound, the threshold ``-log10(alpha)``. ``labels`` are the labels of the most changed pairs;
    ``details["pairs"]`` gives, for each of them, ``P(b | a)``, ``P(a | b)`` and the co-occurrence
    rate before (reference window) and after (test window).

    Examples
    --------
    Two groups of labels, {0, 1, 2} and {3, 4, 5}; at instance 3,000 labels 2 and 5 trade groups
    (their frequencies stay the same, their company changes):

    >>> rng = np.random.default_rng(0)
    >>> def label_set(t):
    ...     groups = ([0, 1, 2], [3, 4, 5]) if t < 3000 else ([0, 1, 5], [3, 4, 2])
    ...     group = groups[rng.integers(2)]
    ...     return [label for label, p in zip(group, (0.9, 0.5, 0.5)) if rng.random() < p]
    >>> detector = LabelDependenceDriftDetector()
    >>> events = detector.update_many([label_set(t) for t in range(6000)],
    ...                               label_names=["a0", "a1", "a2", "b3", "b4", "b5"])
    >>> [(e.kind, e.position, e.labels[:2]) for e in events]
    [('label_structure', 3099, ('a2', 'b3'))]

    It fired at the first block after the change. The most changed pair, before (reference window)
    and after (test window, 200 sets, half of them from the new regime):

    >>> pair = events[0].details["pairs"][0]
    >>> pair["labels"], pair["p_b_given_a"], pair["p_a_given_b"]
    (['a2', 'b3'], [0.0, 0.396825], [0.0, 0.265957])

    References
    ----------
    Hoeffding, W. (1963). Probability inequalities for sums of bounded random variables. Journal of
    the American Statistical Association, 58(301), 13-30 (section 6: sampling without replacement).

    Berger, R. L. (1982). Multiparameter hypothesis testing and acceptance sampling. Technometrics,
    24(4), 295-300 (the intersection-union test).
    """

    kind = "label_structure"

    state_settings = (
        *DriftDetector.state_settings,
        *BLOCK_WINDOW_SETTINGS,
        "max_labels",
        "min_count",
        "action",
    )

    def __init__(
        self,
        *,
        block_size: int = 100,
        test_blocks: Iterable[int] = (2, 4, 8),
        reference_blocks: int = 20,
        min_reference_blocks: int = 10,
        alpha: float = 1e-4,
        max_labels: int = 64,
        min_count: float = 10.0,
        action: str = "alert",
        level: str | int = GLOBAL_LEVEL,
        labels: Iterable[str] = (),
        cooldown: int = 0,
    ) -> None:
        super().__init__(level=level, labels=labels, cooldown=cooldown)
        lengths = tuple(sorted({int(t) for t in test_blocks}))
        check_block_windows(block_size, lengths, reference_blocks, min_reference_blocks, alpha)
        if max_labels < 2:
            raise ValueError(f"max_labels must be >= 2, got {max_labels}")
        if min_count < 0:
            raise ValueError(f"min_count must be >= 0, got {min_count}")
        self.block_size = int(block_size)
        self.test_blocks = lengths
        self.reference_blocks = int(reference_blocks)
        self.min_reference_blocks = int(min_reference_blocks)
        self.alpha = float(alpha)
        self.max_labels = int(max_labels)
        self.min_count = float(min_count)
        self.action = action
        self._max_blocks = self.reference_blocks + lengths[-1]
        # Faded label counts over about the windows' length choose the tracked labels.
        self._decay = 1.0 - 1.0 / self._max_blocks
        # Pairs of slots (a < b) in the order (0, 1), (0, 2), (1, 2), (0, 3), ...: the pairs of the
        # first u slots are the first u (u - 1) / 2, so work stays proportional to the slots in use.
        upper, lower = np.tril_indices(self.max_labels, -1)
        self._pair_a, self._pair_b = lower.astype(np.int64), upper.astype(np.int64)
        self._pair_of = np.full((self.max_labels, self.max_labels), -1, dtype=np.int64)
        self._pair_of[self._pair_a, self._pair_b] = np.arange(self._pair_a.size)
        self._pair_of[self._pair_b, self._pair_a] = np.arange(self._pair_a.size)
        self._plans: dict[int, _Plan | None] = {}
        self._label_names: Any = None
        self._reset()

    # ------------------------------------------------------------------ learned state

    def _reset(self) -> None:
        self._n_labels = 0
        self._activity = np.zeros(16)
        self._slot_of = np.full(16, -1, dtype=np.int64)
        self._slot_label = np.full(self.max_labels, -1, dtype=np.int64)
        self._slot_since = np.full(self.max_labels, _NEVER, dtype=np.int64)
        self._pair_since = np.full(self._pair_a.size, _NEVER, dtype=np.int64)
        self._used = 0  # slots in use: the highest assigned slot + 1 (slots fill up from 0)
        # Per-block counts of the tracked labels and of their pairs. Block number b (counted from the
        # start) is written to rows b % W and b % W + W of 2 W rows, so that the blocks in the windows
        # are always one slice, oldest first.
        # (Floats: the window sums are matrix products; integer counts are exact in them.)
        self._counts = np.zeros((2 * self._max_blocks, self.max_labels))
        self._pairs = np.zeros((2 * self._max_blocks, self._pair_a.size))
        self._blocks_closed = 0  # number of the next block to close
        self._first_block = 0  # number of the oldest block in the windows
        # The open block: label ids and their rows (instance index in the block), from single updates
        # (lists) and batches (arrays); duplicates are harmless, the order does not matter.
        self._open_ids: list[int] = []
        self._open_rows: list[int] = []
        self._open_chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self._open_count = 0

    @property
    def tracked_labels(self) -> list[int]:
        """Ids of the labels whose pairs are counted, in slot order."""
        return [int(label) for label in self._slot_label if label >= 0]

    @property
    def _n_blocks(self) -> int:
        return self._blocks_closed - self._first_block

    # ------------------------------------------------------------------ input

    def update(self, x: Any, *, position: int | None = None, label_names: Any = None) -> DriftEvent | None:
        """Observe one label set (label ids or an indicator vector); return an event when one fires."""
        ids = _label_ids(x)  # checked before it counts as observed
        self._label_names = label_names
        try:
            return super().update(ids, position=position)
        finally:
            self._label_names = None

    def _observe(self, ids: list[int], position: int) -> DriftEvent | None:
        self._open_ids.extend(ids)
        self._open_rows.extend([self._open_count] * len(ids))
        self._open_count += 1
        if self._open_count == self.block_size:
            return self._close_block(position)
        return None

    def update_many(
        self, xs: Any, *, positions: Sequence[int] | None = None, label_names: Any = None
    ) -> list[DriftEvent]:
        """Observe label sets in order (a list of id sequences or an indicator matrix); return the events."""
        rows, ids, n = _flatten(xs)
        if positions is not None and len(positions) != n:
            raise ValueError(f"got {n} observations but {len(positions)} positions")
        events: list[DriftEvent] = []
        self._label_names = label_names
        try:
            start = 0
            while start < n:
                take = min(n - start, self.block_size - self._open_count)
                lo, hi = np.searchsorted(rows, (start, start + take))
                if hi > lo:
                    self._open_chunks.append((rows[lo:hi] + (self._open_count - start), ids[lo:hi]))
                self._open_count += take
                self.n_seen += take
                start += take
                if self._open_count == self.block_size:
                    position = self.n_seen - 1 if positions is None else int(positions[start - 1])
                    event = self._gate(self._close_block(position))
                    if event is not None:
                        events.append(event)
        finally:
            self._label_names = None
        return events

    # ------------------------------------------------------------------ blocks

    def _take_open_block(self) -> tuple[np.ndarray, np.ndarray]:
        """The open block's (rows, ids), emptied."""
        rows = [np.asarray(self._open_rows, dtype=np.int64)] + [chunk[0] for chunk in self._open_chunks]
        ids = [np.asarray(self._open_ids, dtype=np.int64)] + [chunk[1] for chunk in self._open_chunks]
        self._open_ids, self._open_rows, self._open_chunks, self._open_count = [], [], [], 0
        return np.concatenate(rows), np.concatenate(ids)

    def _close_block(self, position: int) -> DriftEvent | None:
        rows, ids = self._take_open_block()
        if ids.size:
            self._grow(int(ids.max()) + 1)
        activity = self._activity[: self._n_labels]
        activity *= self._decay
        activity += np.bincount(ids, minlength=self._n_labels)
        self._assign_slots()

        used = self._used
        n_pairs = used * (used - 1) // 2
        present = np.zeros((self.block_size, used), dtype=np.float32)
        slots = self._slot_of[ids]
        kept = slots >= 0
        present[rows[kept], slots[kept]] = 1.0  # a label listed twice in a set counts once
        together = present.T @ present  # exact: counts <= block_size
        counts = np.diagonal(together)
        pairs = together[self._pair_a[:n_pairs], self._pair_b[:n_pairs]]
        row = self._blocks_closed % self._max_blocks
        for r in (row, row + self._max_blocks):
            self._counts[r, :used] = counts
            self._pairs[r, :n_pairs] = pairs
        self._blocks_closed += 1
        self._first_block = max(self._first_block, self._blocks_closed - self._max_blocks)
        return self._compare(position)

    def _window(self) -> slice:
        """The rows of the blocks in the windows, oldest first."""
        first = self._first_block % self._max_blocks
        return slice(first, first + self._n_blocks)

    def _grow(self, n_labels: int) -> None:
        if n_labels <= self._n_labels:
            return
        if n_labels > self._activity.size:
            capacity = max(n_labels, 2 * self._activity.size)
            self._activity = np.pad(self._activity, (0, capacity - self._activity.size))
            self._slot_of = np.pad(self._slot_of, (0, capacity - self._slot_of.size), constant_values=-1)
        self._n_labels = n_labels

    def _assign_slots(self) -> None:
        """Give free slots to frequent untracked labels; swap a tracked label for a much more frequent one."""
        activity = self._activity[: self._n_labels]
        untracked = np.where(self._slot_of[: self._n_labels] < 0, activity, -1.0)
        best = float(untracked.max(initial=-1.0))
        if best < self.min_count or best <= 0.0:  # (a label never seen is not tracked, whatever min_count)
            return
        if self._used == self.max_labels:
            weakest = float(activity[self._slot_label].min())
            if not best > _SWAP_FACTOR * weakest:
                return
        candidates = np.flatnonzero((untracked >= self.min_count) & (untracked > 0.0))
        # Most frequent first; ties to the smaller id.
        for label in candidates[np.argsort(-untracked[candidates], kind="stable")].tolist():
            if self._used < self.max_labels:
                slot = self._used
            else:
                tracked = self._slot_label
                slot = int(np.argmin(activity[tracked]))
                if not activity[label] > _SWAP_FACTOR * activity[tracked[slot]]:
                    return  # candidates are sorted: no later one qualifies either
                self._slot_of[tracked[slot]] = -1
            self._give_slot(slot, label)

    def _give_slot(self, slot: int, label: int) -> None:
        self._slot_label[slot] = label
        self._slot_of[label] = slot
        self._used = max(self._used, slot + 1)
        # The slot's counts restart: its pairs are tested once the whole reference window holds them.
        self._slot_since[slot] = self._blocks_closed
        others = np.arange(self.max_labels) != slot
        pairs = self._pair_of[slot][others]
        self._pair_since[pairs] = np.maximum(self._blocks_closed, self._slot_since[others])
        self._counts[:, slot] = 0
        self._pairs[:, pairs] = 0

    # ------------------------------------------------------------------ the test

    def _plan(self, n: int) -> _Plan | None:
        """How to sum the windows when ``n`` blocks are stored (``None``: nothing to test yet)."""
        if n not in self._plans:
            lengths = [t for t in self.test_blocks if n >= self.min_reference_blocks + t]
            self._plans[n] = _Plan(n, lengths, self.reference_blocks) if lengths else None
        return self._plans[n]

    def _compare(self, position: int) -> DriftEvent | None:
        n, used = self._n_blocks, self._used
        n_pairs = used * (used - 1) // 2
        plan = self._plan(n)
        if plan is None or n_pairs == 0:
            return None
        window = self._window()
        # Rows 0 .. L-1: sums over the test windows of the L lengths; rows L .. 2L-1: reference windows.
        sums = plan.windows @ self._pairs[window, :n_pairs]
        k_test, k_ref = sums[: len(plan.lengths)], sums[len(plan.lengths) :]
        sums = plan.windows @ self._counts[window, :used]
        c_test, c_ref = sums[: len(plan.lengths)], sums[len(plan.lengths) :]
        k = k_test + k_ref
        # A pair is tested when it co-occurred and both its slots counted over the whole reference window.
        tested = (self._pair_since[:n_pairs] <= (self._first_block + plan.start)[:, None]) & (k > 0)
        n_tested = np.count_nonzero(tested, axis=1)
        # log of the Bonferroni factor (two-sided bound, pairs, window lengths) per window length
        log_factor = np.log(2.0 * np.maximum(n_tested, 1) * len(self.test_blocks))
        pair_a, pair_b = self._pair_a[:n_pairs], self._pair_b[:n_pairs]
        lengths, split, start = plan.lengths, plan.split, plan.start
        log_alpha = math.log(self.alpha)
        share = c_test / np.maximum(c_test + c_ref, 1.0)
        q = k_test / np.maximum(k, 1.0)
        # Detection needs S = k * min(KL_a, KL_b) > log_factor - log(alpha). KL is at most the chi-square
        # divergence (q - s)^2 / (s (1 - s)): pairs whose bound falls short are not worth the logs, and
        # most fall short on the first label already.
        needed = (log_factor - log_alpha)[:, None]
        which, candidates = np.nonzero(tested & (k * _chi_square(q, share[:, pair_a]) > needed))
        if candidates.size == 0:
            return None
        q = q[which, candidates]
        keep = k[which, candidates] * _chi_square(q, share[which, pair_b[candidates]]) > needed[which, 0]
        which, candidates, q = which[keep], candidates[keep], q[keep]
        if candidates.size == 0:
            return None
        statistic = k[which, candidates] * np.minimum(
            _bernoulli_kl(q, share[which, pair_a[candidates]]),
            _bernoulli_kl(q, share[which, pair_b[candidates]]),
        )
        log_p = log_factor[which] - statistic  # log of the adjusted p-value bound, per pair
        i = int(np.argmin(log_p))
        if not log_p[i] < log_alpha:
            return None
        # Report the window length with the most significant pair, and its changed pairs.
        w = int(which[i])
        log_p_min, t, ref_blocks = float(log_p[i]), lengths[w], int(split[w] - start[w])
        mine = which == w
        candidates, log_p = candidates[mine], log_p[mine]
        k_test, k_ref, c_test, c_ref = k_test[w], k_ref[w], c_test[w], c_ref[w]
        order = np.argsort(log_p, kind="stable")
        changed = candidates[order[: int(np.count_nonzero(log_p < log_alpha))]]
        n_test, n_ref = t * self.block_size, ref_blocks * self.block_size
        pairs, affected = [], []
        for pair in changed[:_MAX_LISTED_PAIRS].tolist():
            slot_a, slot_b = int(self._pair_a[pair]), int(self._pair_b[pair])
            if self._slot_label[slot_a] > self._slot_label[slot_b]:  # listed in label-id order
                slot_a, slot_b = slot_b, slot_a
            names = [self._name(int(self._slot_label[slot_a])), self._name(int(self._slot_label[slot_b]))]
            kt, kr = int(k_test[pair]), int(k_ref[pair])
            pairs.append(
                {
                    "labels": names,
                    "p_b_given_a": [_rate(kr, int(c_ref[slot_a])), _rate(kt, int(c_test[slot_a]))],
                    "p_a_given_b": [_rate(kr, int(c_ref[slot_b])), _rate(kt, int(c_test[slot_b]))],
                    "co_occurrence": [_rate(kr, n_ref), _rate(kt, n_test)],
                }
            )
            affected += [name for name in names if name not in affected]
        details = {
            "pairs": pairs,
            "n_changed_pairs": int(changed.size),
            "n_tested_pairs": int(n_tested[w]),
            "n_tracked_labels": int(np.count_nonzero(self._slot_label >= 0)),
            "test_window": n_test,
            "reference_window": n_ref,
        }
        self._first_block = self._blocks_closed  # both windows start afresh
        return self._event(
            statistic=-log_p_min / math.log(10.0),
            threshold=-math.log10(self.alpha),
            position=position,
            action=self.action,
            labels=affected,
            details=details,
        )

    def _name(self, label: int) -> str:
        names = self._label_names
        if names is None:
            return str(label)
        if hasattr(names, "name"):
            try:
                return str(names.name(label))
            except (IndexError, KeyError):
                return str(label)
        return str(names[label]) if 0 <= label < len(names) else str(label)

    # ------------------------------------------------------------------ state

    def _save_state(self, state: State) -> None:
        meta, arrays = state.meta, state.arrays
        used = self._used
        window = self._window()
        meta["n_labels"] = self._n_labels
        meta["blocks_closed"] = self._blocks_closed
        meta["first_block"] = self._first_block
        meta["open_count"] = self._open_count
        arrays["activity"] = self._activity[: self._n_labels].copy()
        arrays["slot_label"] = self._slot_label.copy()
        arrays["slot_since"] = self._slot_since.copy()
        arrays["block_counts"] = self._counts[window, :used].astype(np.int64)
        arrays["block_pairs"] = self._pairs[window, : used * (used - 1) // 2].astype(np.int64)
        rows = [np.asarray(self._open_rows, dtype=np.int64)] + [chunk[0] for chunk in self._open_chunks]
        ids = [np.asarray(self._open_ids, dtype=np.int64)] + [chunk[1] for chunk in self._open_chunks]
        arrays["open_rows"], arrays["open_ids"] = np.concatenate(rows), np.concatenate(ids)

    def _load_state(self, state: State) -> None:
        meta, arrays = state.meta, state.arrays
        slot_label = np.asarray(arrays["slot_label"], dtype=np.int64)
        slot_since = np.asarray(arrays["slot_since"], dtype=np.int64)
        counts, pairs = arrays["block_counts"], arrays["block_pairs"]
        n_blocks, used = counts.shape
        assigned = np.flatnonzero(slot_label >= 0)
        if (
            slot_label.shape != (self.max_labels,)
            or slot_since.shape != (self.max_labels,)
            or used != (int(assigned[-1]) + 1 if assigned.size else 0)
            or pairs.shape != (n_blocks, used * (used - 1) // 2)
            or n_blocks != int(meta["blocks_closed"]) - int(meta["first_block"])
            or n_blocks > self._max_blocks
        ):
            raise ValueError(
                f"label dependence state does not match its parameters ({n_blocks} blocks, {used} slots)"
            )
        self._grow(int(meta["n_labels"]))
        self._activity[: self._n_labels] = arrays["activity"]
        self._slot_label, self._slot_since = slot_label.copy(), slot_since.copy()
        self._slot_of[slot_label[assigned]] = assigned
        self._used = used
        self._pair_since = np.maximum(slot_since[self._pair_a], slot_since[self._pair_b])
        self._blocks_closed = int(meta["blocks_closed"])
        self._first_block = int(meta["first_block"])
        rows = (self._first_block + np.arange(n_blocks)) % self._max_blocks
        for r in (rows, rows + self._max_blocks):  # both copies of each ring-buffer row
            self._counts[r, :used] = counts
            self._pairs[r, : pairs.shape[1]] = pairs
        self._open_ids = [int(v) for v in arrays["open_ids"]]
        self._open_rows = [int(v) for v in arrays["open_rows"]]
        self._open_count = int(meta["open_count"])


_NEVER = np.iinfo(np.int64).max  # the start block of a slot that holds no label


def _bernoulli_kl(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``KL(Bernoulli(q) || Bernoulli(s))`` with ``0 log 0 = 0`` (callers never pass ``s`` in {0, 1} against
    a ``q`` it excludes: a count in a window implies occurrences of the label there)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        high = np.where(q > 0.0, q * np.log(q / s), 0.0)
        low = np.where(q < 1.0, (1.0 - q) * np.log((1.0 - q) / (1.0 - s)), 0.0)
    return np.maximum(high + low, 0.0)


class _Plan:
    """The windows over ``n`` stored blocks, for each tested test-window length ``t``: test window
    ``[split, n)``, reference window ``[start, split)``; ``windows`` (0/1, one row per window: the test
    windows, then the reference windows) sums them by a matrix product with the blocks."""

    __slots__ = ("lengths", "split", "start", "windows")

    def __init__(self, n: int, lengths: list[int], reference_blocks: int) -> None:
        self.lengths = lengths
        self.split = n - np.asarray(lengths, dtype=np.int64)
        self.start = np.maximum(0, self.split - reference_blocks)
        block = np.arange(n)
        test = block[None, :] >= self.split[:, None]
        reference = (block[None, :] >= self.start[:, None]) & (block[None, :] < self.split[:, None])
        self.windows = np.vstack([test, reference]).astype(np.float64)


def _chi_square(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``(q - s)^2 / (s (1 - s))``, an upper bound of ``KL(q || s)``. Where ``s`` is 0 or 1 the pair's
    ``q`` equals ``s`` (or the pair is not tested) and the result is 0 (or irrelevant)."""
    return (q - s) ** 2 / np.maximum(s * (1.0 - s), 1e-300)


def _rate(count: int, total: int) -> float | None:
    return round(count / total, 6) if total else None


def _label_ids(x: Any) -> list[int]:
    """One label set as a list of non-negative ids (from ids or a boolean indicator vector)."""
    if isinstance(x, np.ndarray):
        if x.ndim != 1:
            raise TypeError(f"a label set must be 1-D, got an array of shape {x.shape}")
        if x.dtype == np.bool_:
            return np.flatnonzero(x).tolist()
        if x.dtype.kind not in "iu":
            raise TypeError(f"label ids must be integers, got an array of {x.dtype}")
        ids = x.tolist()
    elif isinstance(x, (str, bytes)):
        raise TypeError(f"expected a collection of label ids, got the string {x!r}")
    else:
        try:
            ids = [operator.index(label) for label in x]
        except TypeError as exc:
            raise TypeError(f"label ids must be integers: {exc}") from exc
    if ids and min(ids) < 0:
        raise ValueError(f"label ids must be non-negative, got {min(ids)}")
    return ids


def _flatten(xs: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """A batch of label sets as (rows, ids) arrays, sorted by row, and the number of rows."""
    if isinstance(xs, np.ndarray) and xs.ndim == 2:
        rows, ids = np.nonzero(xs)
        return rows.astype(np.int64), ids.astype(np.int64), xs.shape[0]
    xs = xs if isinstance(xs, list) else list(xs)
    if all(type(x) in (list, tuple) for x in xs):  # checked for the whole batch at once
        lengths = [len(x) for x in xs]
        flat = list(itertools.chain.from_iterable(xs))
        ids = np.asarray(flat) if flat else np.zeros(0, dtype=np.int64)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            ids = np.asarray(_label_ids(flat), dtype=np.int64)  # raises on what is not an integer
        elif ids.size and ids.min() < 0:
            raise ValueError(f"label ids must be non-negative, got {ids.min()}")
    else:
        sets = [_label_ids(x) for x in xs]
        lengths = [len(x) for x in sets]
        ids = np.asarray(list(itertools.chain.from_iterable(sets)), dtype=np.int64)
    rows = np.repeat(np.arange(len(xs), dtype=np.int64), lengths)
    return rows, ids.astype(np.int64, copy=False), len(xs)
