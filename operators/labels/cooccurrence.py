"""Faded sufficient statistics of a label stream: instance count, label counts, sparse pair counts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from labelflow.operators.state import State, Stateful

STATE_FORMAT = "labelflow.label_cooccurrence/2"
# /1 had no squared-weight counts; it restores with the conservative sample-size ratio 1 for every label.
_READABLE_FORMATS = ("labelflow.label_cooccurrence/1", STATE_FORMAT)

# Counts are stored multiplied by a global weight that grows by 1/fading_factor per instance, so fading
# costs nothing per instance. Once the weight passes this value every count is divided by it (and the
# weight reset to 1) before float64 could overflow; 2**100 keeps that rare: every ~69,000 instances
# at fading_factor=0.999, every ~690,000 at 0.9999.
_RENORMALISE_ABOVE = 2.0**100


class LabelCooccurrence(Stateful):
    """Exponentially faded counts of labels and label pairs over a stream of label sets.

    After ``t`` instances, the faded count of an event is ``sum_s fading_factor**(t - s)`` over the
    instances ``s`` where it happened (``fading_factor=1`` counts without forgetting). Pair counts are
    kept sparse: only pairs that co-occurred in some instance have an entry, so memory grows with the
    number of distinct co-occurring pairs, never with ``n_labels**2``, and an instance with ``k``
    positive labels costs ``O(k**2)``.

    Fading is lazy: each instance adds a weight that grows geometrically instead of shrinking every
    stored count; ratios of counts (the Jaccard distance) never need the weight, faded counts divide
    by it. Pairs whose faded count dropped below ``prune_below`` are removed when the weights are
    renormalised, so pairs that stopped co-occurring eventually read as "never co-occurred" again.

    Per label, the sum of the squared weights is kept too: a faded count is a weighted sum, and the
    sample size a concentration bound may use for a mean under those weights is Kish's effective
    size ``(sum w)**2 / sum w**2``, up to ``(1 + fading_factor)`` times the faded count once the
    stream is longer than the memory (:meth:`sample_size_ratio`).

    Parameters
    ----------
    fading_factor
        Weight of the past per instance, in ``(0, 1]``.
    prune_below
        Faded pair count under which a pair entry is dropped at renormalisation.

    Examples
    --------
    >>> stats = LabelCooccurrence()
    >>> stats.add_labels(3)
    >>> for labels in ([0, 1], [0, 1], [0], [2]):
    ...     stats.update(labels)
    >>> stats.count(0), stats.co_count(0, 1), stats.n_instances
    (3.0, 2.0, 4.0)
    >>> round(stats.distance(0, 1), 4), stats.distance(0, 2)
    (0.3333, 1.0)
    """

    state_header = {"format": STATE_FORMAT}
    state_readable = {"format": _READABLE_FORMATS}
    state_settings = ("fading_factor", "prune_below")
    state_fields = ("n_updates",)

    def __init__(self, fading_factor: float = 1.0, prune_below: float = 1e-4) -> None:
        if not 0.0 < fading_factor <= 1.0:
            raise ValueError(f"fading_factor must be in (0, 1], not {fading_factor!r}")
        if prune_below < 0.0:
            raise ValueError(f"prune_below must be >= 0, not {prune_below!r}")
        self.fading_factor = float(fading_factor)
        self.prune_below = float(prune_below)
        self._growth = 1.0 / self.fading_factor
        self._weight = 1.0
        self._instances = 0.0
        self._counts: list[float] = []
        self._counts_sq: list[float] = []  # per label, sum of squared raw weights
        self._pairs: list[dict[int, float]] = []
        self.n_updates = 0

    # ------------------------------------------------------------------ learning

    @property
    def n_labels(self) -> int:
        return len(self._counts)

    def add_labels(self, n_labels: int) -> None:
        """Make sure ids ``0 .. n_labels - 1`` have (zero) counts."""
        missing = n_labels - len(self._counts)
        if missing > 0:
            self._counts.extend([0.0] * missing)
            self._counts_sq.extend([0.0] * missing)
            self._pairs.extend({} for _ in range(missing))

    def update(self, labels: Sequence[int]) -> None:
        """Count one instance whose positive labels are ``labels`` (distinct, known ids; may be empty).

        The caller validates: this is the per-instance hot path.
        """
        self.n_updates += 1
        if self._growth != 1.0:
            self._weight *= self._growth
        weight = self._weight
        self._instances += weight
        counts = self._counts
        counts_sq = self._counts_sq
        weight_sq = weight * weight
        for a in labels:
            counts[a] += weight
            counts_sq[a] += weight_sq
        k = len(labels)
        if k > 1:
            pairs = self._pairs
            for i in range(k - 1):
                a = labels[i]
                row_a = pairs[a]
                for j in range(i + 1, k):
                    b = labels[j]
                    row_a[b] = row_a.get(b, 0.0) + weight
                    row_b = pairs[b]
                    row_b[a] = row_b.get(a, 0.0) + weight
        if weight > _RENORMALISE_ABOVE:
            self._renormalise()

    def _renormalise(self) -> None:
        scale = 1.0 / self._weight
        self._counts = [c * scale for c in self._counts]
        scale_sq = scale * scale
        self._counts_sq = [c * scale_sq for c in self._counts_sq]
        self._instances *= scale
        keep_above = self.prune_below
        self._pairs = [
            {b: v * scale for b, v in row.items() if v * scale >= keep_above} for row in self._pairs
        ]
        self._weight = 1.0

    # ------------------------------------------------------------------ reading

    @property
    def weight(self) -> float:
        """Scale of the raw counts: faded count = raw count / weight."""
        return self._weight

    @property
    def raw_counts(self) -> list[float]:
        """Per-label counts scaled by :attr:`weight` (read-only view for hot loops; do not modify)."""
        return self._counts

    @property
    def raw_pairs(self) -> list[dict[int, float]]:
        """Per-label ``{other label: pair count}`` scaled by :attr:`weight`, symmetric (do not modify)."""
        return self._pairs

    def sample_size_ratio(self, a: int) -> float:
        """Effective sample size of label ``a``'s faded count, per unit of that count (>= 1).

        Kish's ``(sum w)**2 / sum w**2`` over the instances where ``a`` was positive, divided by
        ``sum w``: 1 without fading or while all of them are recent, close to ``1 + fading_factor``
        for a label seen steadily over more than the memory, less for a label that appeared
        recently. 1 for a label never seen (no evidence to scale).

        >>> stats = LabelCooccurrence(fading_factor=0.99)
        >>> stats.add_labels(2)
        >>> for i in range(2000):
        ...     stats.update([0, 1] if i >= 1990 else [0])
        >>> round(stats.sample_size_ratio(0), 3), round(stats.sample_size_ratio(1), 3)
        (1.99, 1.045)
        """
        count_sq = self._counts_sq[a]
        if count_sq <= 0.0:
            return 1.0
        # faded sum of w = raw / weight; faded sum of w**2 = raw_sq / weight**2
        return max(1.0, self._counts[a] * self._weight / count_sq)

    @property
    def raw_instances(self) -> float:
        return self._instances

    @property
    def n_instances(self) -> float:
        """Faded number of instances."""
        return self._instances / self._weight

    def count(self, a: int) -> float:
        """Faded number of instances where label ``a`` was positive (0 for unknown ids)."""
        return self._counts[a] / self._weight if 0 <= a < len(self._counts) else 0.0

    def co_count(self, a: int, b: int) -> float:
        """Faded number of instances where ``a`` and ``b`` were both positive."""
        if a == b:
            return self.count(a)
        if not (0 <= a < len(self._pairs) and 0 <= b < len(self._pairs)):
            return 0.0
        return self._pairs[a].get(b, 0.0) / self._weight

    def union(self, a: int, b: int) -> float:
        """Faded number of instances where ``a`` or ``b`` was positive."""
        return self.count(a) + self.count(b) - self.co_count(a, b)

    def distance(self, a: int, b: int) -> float:
        """Jaccard distance ``1 - n_ab / (n_a + n_b - n_ab)``; 1 when the two never co-occurred.

        A label and itself are at distance 0; labels never seen (or ids not known yet) are at
        distance 1 from every other label.
        """
        if a < 0 or b < 0:
            raise ValueError(f"label ids are non-negative, got {a} and {b}")
        if a == b:
            return 0.0
        if a >= len(self._counts) or b >= len(self._counts):
            return 1.0
        return jaccard_distance(self._counts[a], self._counts[b], self._pairs[a].get(b, 0.0))

    @property
    def n_pair_entries(self) -> int:
        """Number of stored (unordered) co-occurring pairs."""
        return sum(len(row) for row in self._pairs) // 2

    # ------------------------------------------------------------------ state

    def _save_state(self, state: State) -> None:
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        # Every directed entry in dict order, so a restored object iterates pairs exactly as this one.
        for a, row in enumerate(self._pairs):
            rows.extend([a] * len(row))
            cols.extend(row.keys())
            values.extend(row.values())
        state.arrays.update(
            {
                "scalars": np.array([self._weight, self._instances], dtype=np.float64),
                "counts": np.asarray(self._counts, dtype=np.float64),
                "counts_sq": np.asarray(self._counts_sq, dtype=np.float64),
                "pair_rows": np.asarray(rows, dtype=np.int64),
                "pair_cols": np.asarray(cols, dtype=np.int64),
                "pair_values": np.asarray(values, dtype=np.float64),
            }
        )

    def _load_state(self, state: State) -> None:
        weight, instances = (float(v) for v in state.arrays["scalars"])
        if not (math.isfinite(weight) and weight > 0.0):
            raise ValueError(f"corrupt LabelCooccurrence state: weight {weight!r}")
        self._weight, self._instances = weight, instances
        self._counts = [float(c) for c in state.arrays["counts"]]
        if "counts_sq" in state.arrays:
            self._counts_sq = [float(c) for c in state.arrays["counts_sq"]]
            if len(self._counts_sq) != len(self._counts):
                raise ValueError(
                    "corrupt LabelCooccurrence state: counts and squared counts differ in length"
                )
        else:  # format /1: the largest possible sum of squares, sample-size ratio 1 (conservative)
            self._counts_sq = [c * weight for c in self._counts]
        self._pairs = [{} for _ in self._counts]
        rows, cols, values = (state.arrays[k] for k in ("pair_rows", "pair_cols", "pair_values"))
        if not (rows.shape == cols.shape == values.shape):
            raise ValueError("corrupt LabelCooccurrence state: pair arrays differ in length")
        n = len(self._counts)
        if rows.size and (rows.min() < 0 or cols.min() < 0 or rows.max() >= n or cols.max() >= n):
            raise ValueError("corrupt LabelCooccurrence state: pair ids outside the label range")
        pairs = self._pairs
        for a, b, v in zip(rows.tolist(), cols.tolist(), values.tolist(), strict=True):
            pairs[a][b] = v


def jaccard_distance(count_a: float, count_b: float, co_count: float) -> float:
    """Jaccard distance from (equally scaled) counts; 1 when the union is empty or nothing co-occurred."""
    if co_count <= 0.0:
        return 1.0
    union = count_a + count_b - co_count
    if union <= 0.0:
        return 1.0
    # Rounding can push a ratio of floats a hair outside [0, 1].
    return min(1.0, max(0.0, 1.0 - co_count / union))
