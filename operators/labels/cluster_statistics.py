"""ODAC statistics of one label cluster, and the pivot split, computed without enumerating pairs at 1.

Sparse label streams leave most label pairs never co-occurring: their Jaccard distance is exactly 1.
The statistics, the pivots, the split and the separation only visit the pairs that co-occurred (the
sparse pair counts) and derive the contribution of the pairs at distance 1 from their number, so a
cluster of ``m`` labels costs ``O(m log m + co-occurring pairs inside it)``, not ``O(m**2)``, once
it is large. Only :func:`unrelated_labels` looks at every pair (it needs each pair's evidence); the
clusterer runs it on clusters of at most ``max_cluster_size`` labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from labelflow.operators.labels.cooccurrence import LabelCooccurrence, jaccard_distance


def hoeffding_bound(n: float, delta: float) -> float:
    """``sqrt(ln(1/delta) / (2 n))``: the Hoeffding bound for a mean of ``n`` values in a range of 1.

    >>> round(hoeffding_bound(1000, 1e-4), 4)
    0.0679
    >>> hoeffding_bound(0, 1e-4)
    inf
    """
    if n <= 0.0:
        return math.inf
    return math.sqrt(math.log(1.0 / delta) / (2.0 * n))


@dataclass(frozen=True, slots=True)
class ClusterStatistics:
    """The ODAC description of a cluster: largest, second largest, smallest and mean pair distance.

    ``pivots`` is the pair realising ``d1`` (the more frequent label first); ``evidence`` is the
    faded number of instances where either pivot was positive: the sample size behind the pivot
    distance, which is a mean over those instances of "not both positive". For fewer than two labels
    there are no pairs: the distances are 0 and ``pivots`` is ``(-1, -1)``.
    """

    size: int
    n_pairs: int
    d1: float
    d2: float
    d0: float
    mean: float
    pivots: tuple[int, int]
    evidence: float

    @property
    def heterogeneity(self) -> float:
        """ODAC's second split condition: ``(d1 - d0) * |(d1 - mean) - (mean - d0)|``.

        Large when the diameter stands out from a cluster whose mean sits away from the middle of
        ``[d0, d1]``, i.e. when the pair distances form groups; 0 for a cluster whose pairs are all
        equally (un)related.
        """
        return (self.d1 - self.d0) * abs(self.d1 + self.d0 - 2.0 * self.mean)


_EMPTY_PAIR = (-1, -1)


#: A co-occurring pair inside a cluster: (distance, scaled union count, smaller id, larger id).
ClosePair = tuple[float, float, int, int]


def close_pairs(stats: LabelCooccurrence, labels: Sequence[int]) -> list[ClosePair]:
    """The pairs of ``labels`` that co-occurred, each once; every other pair is at distance 1.

    Visits whichever is smaller: the ``m (m - 1) / 2`` pairs, or the co-occurrence lists of the labels.
    """
    counts = stats.raw_counts
    pairs = stats.raw_pairs
    m = len(labels)
    close: list[ClosePair] = []
    degree_sum = 0
    for a in labels:
        degree_sum += len(pairs[a])
    if m * (m - 1) // 2 <= degree_sum:
        for i in range(m - 1):
            a = labels[i]
            row = pairs[a]
            count_a = counts[a]
            for j in range(i + 1, m):
                b = labels[j]
                v = row.get(b)
                if v:
                    d = jaccard_distance(count_a, counts[b], v)
                    close.append(
                        (d, count_a + counts[b] - v, a, b) if a < b else (d, count_a + counts[b] - v, b, a)
                    )
    else:
        members = set(labels)
        for a in labels:
            count_a = counts[a]
            for b, v in pairs[a].items():
                if b > a and v and b in members:
                    close.append((jaccard_distance(count_a, counts[b], v), count_a + counts[b] - v, a, b))
    return close


def cluster_statistics(
    stats: LabelCooccurrence, labels: Sequence[int], close: list[ClosePair] | None = None
) -> ClusterStatistics:
    """ODAC statistics of the cluster ``labels`` (distinct label ids) under the current counts.

    Pivots are chosen deterministically by evidence. When some pairs never co-occurred (distance 1,
    ties galore in sparse data), the pivots are the pair of never co-occurring labels whose rarer
    label is most frequent (then the more frequent partner, then smaller ids). Otherwise they are
    the pair at the largest distance, ties going to the larger union count, then smaller ids.
    ``close`` may pass :func:`close_pairs` of the same labels when the caller already has it.
    """
    m = len(labels)
    if m < 2:
        return ClusterStatistics(m, 0, 0.0, 0.0, 0.0, 0.0, _EMPTY_PAIR, 0.0)
    counts = stats.raw_counts
    pairs = stats.raw_pairs
    if close is None:
        close = close_pairs(stats, labels)
    n_pairs = m * (m - 1) // 2
    n_far = n_pairs - len(close)
    # fsum: exact, so the mean does not depend on the order the pairs were visited in
    mean = (n_far + math.fsum(d for d, _, _, _ in close)) / n_pairs
    d0 = min((d for d, _, _, _ in close), default=1.0)
    if n_far > 0:
        p, q = _evidence_pivots(labels, counts, pairs)
        d1 = 1.0
        d2 = 1.0 if n_far >= 2 else max((d for d, _, _, _ in close), default=1.0)
        evidence = counts[p] + counts[q] - pairs[p].get(q, 0.0)
    else:
        ranked = sorted(close, key=lambda t: (-t[0], -t[1], t[2], t[3]))
        d1, evidence, p, q = ranked[0]
        if counts[q] > counts[p]:
            p, q = q, p
        d2 = ranked[1][0] if len(ranked) > 1 else d1
    return ClusterStatistics(m, n_pairs, d1, d2, d0, mean, (p, q), evidence / stats.weight)


def separation(close: list[ClosePair], left: Sequence[int], right: Sequence[int]) -> float:
    """Mean distance across two sides minus mean distance within them (pairs of ``close`` + far pairs).

    Large when ``left`` and ``right`` are two groups; about 0 when the split cuts a homogeneous
    cluster. With no within pairs (two singletons) it is the cross distance minus 0.
    """
    side = dict.fromkeys(left, 0)
    side.update(dict.fromkeys(right, 1))
    within_close: list[float] = []
    cross_close: list[float] = []
    for d, _, a, b in close:
        (within_close if side[a] == side[b] else cross_close).append(d)
    n_left, n_right = len(left), len(right)
    n_within = n_left * (n_left - 1) // 2 + n_right * (n_right - 1) // 2
    n_cross = n_left * n_right
    cross_mean = (n_cross - len(cross_close) + math.fsum(cross_close)) / n_cross
    if n_within == 0:
        return cross_mean
    within_mean = (n_within - len(within_close) + math.fsum(within_close)) / n_within
    return cross_mean - within_mean


def _evidence_pivots(
    labels: Sequence[int], counts: list[float], pairs: list[dict[int, float]]
) -> tuple[int, int]:
    """The never co-occurring pair with the most frequent rarer label (ties: frequent partner, ids)."""
    order = sorted(labels, key=lambda a: (-counts[a], a))
    for j in range(1, len(order)):
        row_b = pairs[order[j]]
        for i in range(j):
            if not row_b.get(order[i]):
                return order[i], order[j]
    raise AssertionError("_evidence_pivots called on a cluster whose pairs all co-occurred")


def split_by_pivots(
    stats: LabelCooccurrence,
    labels: Sequence[int],
    pivots: tuple[int, int],
    capacity: int | None = None,
) -> tuple[list[int], list[int]]:
    """Assign every label to the nearer pivot; returns the two sides (sorted), pivot ``p``'s first.

    Labels closer to one pivot go there, the most decided first. Labels at equal distance from both
    (typically: never co-occurred with either) go, in order of frequency, to the side they have more
    affinity with (sum of Jaccard similarities with the labels already there), then to the smaller
    side, then to ``p``'s side. ``capacity`` (used when a split is forced by size) caps each side; a
    label whose side is full goes to the other one.
    """
    p, q = pivots
    counts = stats.raw_counts
    pairs = stats.raw_pairs
    row_p, row_q = pairs[p], pairs[q]
    count_p, count_q = counts[p], counts[q]
    decided: list[tuple[float, float, int, int]] = []
    undecided: list[int] = []
    for x in labels:
        if x in (p, q):
            continue
        count_x = counts[x]
        sim_p = 1.0 - jaccard_distance(count_x, count_p, row_p.get(x, 0.0))
        sim_q = 1.0 - jaccard_distance(count_x, count_q, row_q.get(x, 0.0))
        if sim_p != sim_q:
            decided.append((-abs(sim_p - sim_q), -count_x, x, 0 if sim_p > sim_q else 1))
        else:
            undecided.append(x)
    sides: tuple[list[int], list[int]] = ([p], [q])
    members: tuple[set[int], set[int]] = ({p}, {q})
    limit = len(labels) if capacity is None else capacity

    def place(x: int, side: int) -> None:
        if len(sides[side]) >= limit:
            side = 1 - side
        sides[side].append(x)
        members[side].add(x)

    decided.sort()
    for _, _, x, side in decided:
        place(x, side)
    undecided.sort(key=lambda x: (-counts[x], x))
    for x in undecided:
        count_x = counts[x]
        affinity = [0.0, 0.0]
        for y, v in pairs[x].items():
            if v:
                if y in members[0]:
                    affinity[0] += 1.0 - jaccard_distance(count_x, counts[y], v)
                elif y in members[1]:
                    affinity[1] += 1.0 - jaccard_distance(count_x, counts[y], v)
        if affinity[0] != affinity[1]:
            side = 0 if affinity[0] > affinity[1] else 1
        elif len(sides[0]) != len(sides[1]):
            side = 0 if len(sides[0]) < len(sides[1]) else 1
        else:
            side = 0
        place(x, side)
    return sorted(sides[0]), sorted(sides[1])


def unrelated_labels(
    stats: LabelCooccurrence, labels: Sequence[int], delta: float, margin: float
) -> tuple[list[int], float]:
    """Labels certainly unrelated to every other label of the cluster, and the weakest such certainty.

    ``a`` is unrelated when, for every other ``b``, the lower confidence bound of the distance is
    within ``margin`` of the maximum: ``D(a, b) - eps(n_ab_union) > 1 - margin`` (Hoeffding, range 1,
    ``delta``). A pair seen in few instances never qualifies (its bound is too wide); labels that
    cannot reach enough evidence with any partner are skipped without visiting their pairs. Returns the sorted unrelated labels and the smallest ``D - eps`` over the
    pairs that made them so (1.0 when there are none).
    """
    m = len(labels)
    if m < 2 or margin <= 0.0:
        return [], 1.0
    counts = stats.raw_counts
    pairs = stats.raw_pairs
    weight = stats.weight
    floor = 1.0 - margin
    log_term = math.log(1.0 / delta) / 2.0
    # D <= 1, so a pair can only qualify when its bound is below the margin: union > log_term / margin**2
    needed = log_term / (margin * margin) * weight
    ranked = sorted(labels, key=lambda a: -counts[a])
    top, second = counts[ranked[0]], counts[ranked[1]]
    unrelated: list[int] = []
    certainty = 1.0
    for a in labels:
        count_a = counts[a]
        if count_a + (second if a == ranked[0] else top) <= needed:
            continue
        row = pairs[a]
        closest = math.inf
        for b in labels:
            if b == a:
                continue
            v = row.get(b, 0.0)
            union = count_a + counts[b] - v
            if union <= needed:
                closest = -math.inf
                break
            lower = jaccard_distance(count_a, counts[b], v) - math.sqrt(log_term * weight / union)
            if lower <= floor:
                closest = lower
                break
            closest = min(closest, lower)
        if closest > floor:
            unrelated.append(a)
            certainty = min(certainty, closest)
    return unrelated, certainty
