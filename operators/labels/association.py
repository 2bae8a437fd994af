"""Association of two groups of labels, and the split/merge rules the label clusterer derives from it.

The clusterer's splits and merges are decided on this one statistic so that they cannot undo each
other while the counts merely fluctuate: a merge needs the association to exceed its bound, a split
needs it to be at most 0, one bound lower; and the reverse of a recorded change along the same line
needs the association to have moved past the recorded value by more than both bounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from labelflow.operators.labels.cooccurrence import LabelCooccurrence


@dataclass(frozen=True, slots=True)
class Association:
    """How much two groups of labels belong together (``value``), and the Hoeffding bound of it.

    ``value`` is the pooled Jaccard similarity of the cross pairs (their co-occurrence counts over
    their union counts, each summed over the pairs) minus the pooled similarity labels with the same
    counts would show if they were independent: about 0 for unrelated labels whatever their
    frequencies, negative for labels that avoid each other, positive for labels that co-occur.

    >>> Association(0.3, 0.1).significant, Association(0.05, 0.1).significant
    (True, False)
    """

    value: float
    bound: float

    @property
    def significant(self) -> bool:
        """Whether the groups certainly co-occur more than independent labels would."""
        return self.value > self.bound


def association(
    stats: LabelCooccurrence, left: Sequence[int], right: Sequence[int], delta: float
) -> Association:
    """The association of the label groups ``left`` and ``right`` (disjoint, non-empty) under ``stats``.

    Pooling weighs each cross pair by its evidence, so a few frequent pairs are not drowned by many
    rare ones (in sparse label spaces most cross pairs of two clusters are rare). The pooled
    similarity is the mean of the pairs' similarities weighted by their union counts; each pair's
    similarity is a weighted mean of "both positive" over the instances where either label was
    positive, with a Hoeffding bound (range 1, confidence ``1 - delta``) from the effective size of
    that weighted sample: the pair's faded union count times the smaller
    :meth:`~LabelCooccurrence.sample_size_ratio` of its two labels (a pair that never co-occurred is
    similarity 0 on that evidence). The pooled value is then within the same weighted mean of the
    pairs' bounds of its expectation; that bound moves smoothly with the counts, as a decision
    repeated over a long stream needs (the bound of any single pair would jump as the most similar
    pair changes). The bound is infinite when no pair has any evidence (none of the labels seen).
    Sums are exact, so the result does not depend on the order of the labels or of the two groups.

    >>> stats = LabelCooccurrence()
    >>> stats.add_labels(4)
    >>> for i in range(400):
    ...     stats.update([[0, 1], [2], [3], [0, 1, 2, 3]][i % 4])
    >>> together = association(stats, [0], [1], delta=1e-3)
    >>> round(together.value, 3), round(together.bound, 3), together.significant
    (0.667, 0.131, True)
    >>> apart = association(stats, [0, 1], [2, 3], delta=1e-3)
    >>> round(apart.value, 3), apart.significant
    (0.0, False)
    """
    counts = stats.raw_counts
    pairs = stats.raw_pairs
    n = stats.raw_instances
    co_counts: list[float] = []
    unions: list[float] = []
    weighted_bounds: list[float] = []  # union * bound of the pair
    expected_co_counts: list[float] = []
    expected_unions: list[float] = []
    # A pair's bound is sqrt(ln(1/delta) / (2 * faded union * ratio)); raw counts are the faded
    # ones times the weight, so union * bound = sqrt(log_term * raw union / ratio).
    log_term = math.log(1.0 / delta) / 2.0 * stats.weight
    ratio_right = [stats.sample_size_ratio(b) for b in right]
    for a in left:
        row = pairs[a]
        count_a = counts[a]
        ratio_a = stats.sample_size_ratio(a)
        for j, b in enumerate(right):
            count_b = counts[b]
            co_count = row.get(b, 0.0)
            union = count_a + count_b - co_count
            if union <= 0.0:
                continue  # neither label seen: no evidence, no weight
            co_counts.append(co_count)
            unions.append(union)
            ratio_b = ratio_right[j]
            weighted_bounds.append(math.sqrt(log_term * union / (ratio_a if ratio_a < ratio_b else ratio_b)))
            if n > 0.0:
                expected = count_a * count_b / n
                expected_co_counts.append(expected)
                expected_unions.append(count_a + count_b - expected)
    total = math.fsum(unions)
    if total <= 0.0:
        return Association(0.0, math.inf)
    expected_total = math.fsum(expected_unions)
    independent = math.fsum(expected_co_counts) / expected_total if expected_total > 0.0 else 0.0
    return Association(math.fsum(co_counts) / total - independent, math.fsum(weighted_bounds) / total)


def may_part(now: Association, merged: Association | None = None) -> bool:
    """Whether a split may part two groups whose association is ``now``.

    Only groups that are not associated (``value <= 0``: they co-occur no more than independent
    labels would) may part: one bound under the merge threshold, so the parts would not satisfy
    the merge test by a margin of the bound. ``merged``: the association recorded when the same two
    groups were merged; then the value must also have fallen below the recorded one by more than
    both bounds (each estimate is within its bound of the true value, so a larger difference means
    the correlation changed), however long ago the merge was.

    >>> may_part(Association(-0.01, 0.1)), may_part(Association(0.02, 0.1))
    (True, False)
    >>> may_part(Association(-0.01, 0.1), merged=Association(0.25, 0.2))  # within the bounds of the merge
    False
    >>> may_part(Association(-0.06, 0.1), merged=Association(0.25, 0.2))
    True
    """
    if now.value > 0.0:
        return False
    if merged is not None:
        return now.value < merged.value - (merged.bound + now.bound)
    return True


def merge_threshold(now: Association, split: Association | None = None) -> float:
    """The value the association of two groups must exceed for a merge to join them.

    The bound (a significant association: one bound above the split side's 0); ``split``: the
    association recorded when the same two groups were split apart, and then, if higher, that value
    plus both bounds (the reverse of the split needs a change in the correlation, as in
    :func:`may_part`).

    >>> merge_threshold(Association(0.3, 0.1))
    0.1
    >>> round(merge_threshold(Association(0.3, 0.1), split=Association(-0.05, 0.2)), 3)
    0.25
    """
    if split is None:
        return now.bound
    return max(now.bound, split.value + (split.bound + now.bound))


def same_line(sides: Sequence[Sequence[int]], line: Sequence[Sequence[int]]) -> bool:
    """Whether the two ``sides`` part the two groups of ``line`` from each other, each group kept whole.

    Labels outside ``line`` (joined since it was recorded) may be on either side.

    >>> same_line(([0, 1, 7], [2, 3]), ((0, 1), (2, 3))), same_line(([0, 2], [1, 3]), ((0, 1), (2, 3)))
    (True, False)
    """
    first = set(sides[0])
    in_first = [a in first for a in line[0]]
    other_in_first = [b in first for b in line[1]]
    return (all(in_first) and not any(other_in_first)) or (not any(in_first) and all(other_in_first))
