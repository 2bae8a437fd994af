"""Online divisive-agglomerative clustering of labels (ODAC over labels, the iHOMER method, corrected)."""

from __future__ import annotations

import bisect
import math
import operator
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labelflow.operators.labels.association import (
    Association,
    association,
    may_part,
    merge_threshold,
    same_line,
)
from labelflow.operators.labels.cluster_statistics import (
    ClosePair,
    ClusterStatistics,
    close_pairs,
    cluster_statistics,
    hoeffding_bound,
    separation,
    split_by_pivots,
    unrelated_labels,
)
from labelflow.operators.labels.cooccurrence import LabelCooccurrence
from labelflow.operators.labels.partition import Partition
from labelflow.operators.state import State, Stateful

__all__ = ["LabelClusterer", "LabelCooccurrence", "StructureChange"]

STATE_FORMAT = "labelflow.label_clusterer/2"
# /1 had no line records (association across a node's last split or merge); it restores without them.
_READABLE_FORMATS = ("labelflow.label_clusterer/1", STATE_FORMAT)

#: Actions of a :class:`StructureChange`.
SPLIT, MERGE, NEW_LABEL = "split", "merge", "new_label"


@dataclass(frozen=True)
class StructureChange:
    """One change of the label partition: a ``label_structure`` drift event.

    Attributes
    ----------
    action
        ``"split"``, ``"merge"`` or ``"new_label"``.
    position
        Number of instances learned when the change happened.
    version_before, version_after
        Partition versions around the change (``version_after == version_before + 1``).
    labels
        The labels whose cluster changed (sorted): the split cluster, the merged cluster, or the
        newly registered ids.
    statistic, threshold
        The test that fired, ``statistic > threshold``: for a statistical split the heterogeneity
        (or separation) and the Hoeffding bound; for unrelated labels the weakest confident distance
        and ``1 - tie_threshold``; for a re-aggregation the growth of the child's diameter (or mean
        distance) over the parent's recorded value and the bound; for an affinity merge the
        association (similarity in excess of independence) and its threshold (the bound, or, when
        siblings are joined again, the association recorded at their split plus the bounds then
        and now, if that is higher); for a size-forced split the cluster
        size and ``max_cluster_size``; for new labels their number and 0.
    reason
        Which rule fired: ``"heterogeneity"``, ``"separation"``, ``"unrelated"``, ``"max_size"``
        (splits), ``"diameter_growth"``, ``"mean_growth"``, ``"affinity"`` (merges) or
        ``"first_seen"`` (new labels).
    min_label_age
        Instances learned since the youngest of ``labels`` joined the partition (0 for new labels);
        ``None`` in records written before this field existed. Read-only context: with
        ``min_label_count`` it tells a change of a settled partition from one still forming (see
        ``LabelStructureDriftAdapter``).
    min_label_count
        The smallest faded count (instances where the label was positive, under ``fading_factor``)
        among ``labels`` when the change was made; ``None`` in older records.
    """

    action: str
    position: int
    version_before: int
    version_after: int
    labels: tuple[int, ...]
    statistic: float
    threshold: float
    reason: str = ""
    min_label_age: int | None = None
    min_label_count: float | None = None

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["labels"] = list(self.labels)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> StructureChange:
        return cls(**{**record, "labels": tuple(record["labels"])})


@dataclass(frozen=True, slots=True)
class _SplitPlan:
    statistics: ClusterStatistics
    sides: tuple[list[int], list[int]]
    bound: float  # recorded with the split, for re-aggregation
    statistic: float
    threshold: float
    reason: str
    association: Association  # of the two sides, recorded with the split (reverse hysteresis)


class _LeafOrder:
    """The leaves in partition order with their cluster tuples and keys, updated in place."""

    __slots__ = ("clusters", "keys", "index", "stale")

    def __init__(self, leaves: list[_Node]) -> None:
        self.clusters = [tuple(node.labels) for node in leaves]
        self.keys = [node.node_id for node in leaves]
        self.index = {node.node_id: i for i, node in enumerate(leaves)}
        self.stale: list[_Node] = []

    def append(self, node: _Node) -> None:
        self.index[node.node_id] = len(self.keys)
        self.clusters.append(tuple(node.labels))
        self.keys.append(node.node_id)

    def changed(self, node: _Node) -> None:
        """``node`` gained labels (larger than its smallest one)."""
        self.stale.append(node)

    def partition(self, version: int, n_labels: int) -> Partition:
        for node in self.stale:
            self.clusters[self.index[node.node_id]] = tuple(node.labels)
        self.stale.clear()
        return Partition._trusted(version, tuple(self.clusters), tuple(self.keys), n_labels)


class _Node:
    """A node of the cluster hierarchy: a leaf holds a cluster, an internal node remembers its split."""

    __slots__ = (
        "node_id",
        "parent",
        "children",
        "labels",
        "changed_at",
        "hits",
        "split_d1",
        "split_mean",
        "split_bound",
        "line_association",
        "line_bound",
        "merged_sides",
    )

    def __init__(self, node_id: int, parent: int, labels: list[int], changed_at: int) -> None:
        self.node_id = node_id
        self.parent = parent  # -1 for a root
        self.children: tuple[int, ...] = ()
        self.labels = labels  # sorted; only leaves hold labels
        self.changed_at = changed_at
        self.hits = 0  # instances with a positive label here since the last evaluation
        self.split_d1 = math.nan  # recorded when the node split (ODAC keeps them for re-aggregation)
        self.split_mean = math.nan
        self.split_bound = math.nan
        # The line of the node's last change and the association across it then (with its bound):
        # for an internal node its two children (recorded at the split), for a leaf made by a merge
        # the two clusters it merged (``merged_sides``). Undoing the change along the same line
        # needs the association to have moved past the recorded value by more than the bounds.
        self.line_association = math.nan
        self.line_bound = math.nan
        self.merged_sides: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    @property
    def is_leaf(self) -> bool:
        return not self.children


class LabelClusterer(Stateful):
    """Keeps the label space partitioned into clusters of co-occurring labels, online.

    An ODAC-style divisive-agglomerative hierarchy (Rodrigues et al., 2008) over labels instead of
    time series, as iHOMER (Neves et al., 2025) uses it to partition the output space, with the
    corrections listed below. Labels are integer ids ``0 .. n_labels - 1``; an id not seen before
    joins the partition when it first appears.

    **Statistics.** Faded counts (:class:`LabelCooccurrence`): instances, per-label positives and
    sparse pair co-occurrences, updated in ``O(k**2)`` for ``k`` positive labels. The dissimilarity
    is the Jaccard distance ``D(a, b) = 1 - n_ab / (n_a + n_b - n_ab)`` (1 for pairs that never
    co-occurred).

    **Evaluation.** A leaf is evaluated each time it has been positive (some label of it positive) in
    ``grace_period`` instances since its last evaluation, ODAC's ``n_min`` counted per node. Its
    statistics are the diameter ``d1`` and its pivot pair, the second largest distance ``d2``, the
    smallest ``d0`` and the mean over all pairs, computed from the co-occurring pairs only (pairs at
    distance 1 are counted, not visited). The Hoeffding bound is ``eps = sqrt(ln(1/delta) / (2 n))``
    (range 1) with ``n`` the faded number of instances where either pivot label was positive: the
    pivot distance is the mean of "not both positive" over exactly those instances.

    **Association.** Splits and merges are decided by one statistic, so that they cannot undo each
    other while the counts merely fluctuate. The association ``x`` of two groups of labels
    (:func:`~labelflow.operators.labels.association.association`) is the pooled Jaccard similarity
    of their cross pairs (co-occurrences over unions, summed over the pairs) minus the same for
    independent labels with these counts: about 0 for unrelated labels, negative for labels that
    avoid each other. Its bound ``eps_x`` pools the pairs' Hoeffding bounds the same way, each from
    the pair's union count at its effective sample size under fading
    (:meth:`LabelCooccurrence.sample_size_ratio`). A merge needs a significant association
    (``x > eps_x``); a split may part two groups only if their association is not positive
    (``x <= 0``), one bound lower: a merge is made only where the merged cluster would not satisfy
    the split test by a margin of the bound, and a split only where the parts would not satisfy
    the merge test by that margin.

    Tests, in this order, on an evaluated leaf past ``min_dwell``; the first that fires changes it:

    1. *Re-aggregation* (ODAC): undo the parent's split (its whole subtree becomes one leaf again)
       when the leaf's diameter exceeds the parent's diameter recorded at split time by more than
       ``max(eps_parent, eps_leaf)``. Correction: Jaccard diameters saturate at 1 on sparse labels,
       so the same test also runs on the mean distance, which does follow a change of correlations.
       Every node of the subtree must be past ``min_dwell``; splits forced by size are never undone
       this way (they claim nothing, and undoing one would recreate an oversized leaf); and nothing
       is undone while the union would at once be split again along the same line.
    2. *Split* (ODAC, needs 3 labels): when ``d1 - d2 > eps or eps < tie_threshold`` (the diameter
       is real, or a tie with enough evidence) and the cluster is heterogeneous. Heterogeneity is
       Rodrigues et al.'s ``(d1 - d0) * |(d1 - mean) - (mean - d0)| > eps``, or (correction) the
       separation of the pivot split, mean cross-side minus mean within-side distance, ``> eps``:
       ODAC's measure is near 0 for two groups whose mean distance sits mid-way between ``d0`` and
       ``d1``, which is common with Jaccard distances, and such clusters would never split. Each
       label goes to the nearer pivot; ties (typically: never co-occurred with either) by affinity
       (sum of Jaccard similarities with each side), then to the smaller side, then to the first
       pivot's. Pivots are chosen by evidence: when some pairs never co-occurred, the two labels
       that never co-occurred whose rarer label is most frequent (then the more frequent partner,
       then smaller ids); otherwise the farthest pair, ties to the larger union count. The split is
       made only if the two sides may part (association not positive, see below for the reverse
       hysteresis): a group whose weaker members are still associated with it stays whole, however
       heterogeneous (ODAC alone split such groups, and the affinity merge joined them again).
    3. *Unrelated labels* (correction, any size >= 2): labels whose distance to every other label
       of the cluster is, with confidence, within ``tie_threshold`` of 1 (``D - eps > 1 -
       tie_threshold`` for each pair, ``eps`` from the pair's union count) are split off from the
       rest (or, if every label is, the cluster splits by pivots), if the sides may part. Without
       it, a cluster of labels that stopped co-occurring is "homogeneous" to ODAC (all distances 1),
       never splits, and holds its labels away from the clusters they now belong with.
    4. *Affinity merge* (the agglomerative step for clusters that are not siblings: labels first
       seen apart, groups that became correlated): the leaf merges with the leaf it is most similar
       to (average Jaccard similarity over cross pairs) when the union fits in ``max_cluster_size``,
       both are past ``min_dwell``, their association is significant (``x > eps_x``), and the
       union would not satisfy the split test even with a margin: tests 2-3 run on the union with
       the association threshold raised by one bound, so any split they propose must part groups
       that a merge would join. Leaves smaller than ``min_cluster_size`` skip test 2 in that
       check: tiny clusters merge whenever the association is real.

    **Bounds and hysteresis.** A node that changed cannot change again for ``min_dwell`` instances
    (a leaf that received new labels counts as changed: their counts start at zero, so every older
    label looks far from them at first). Every change also records its line and the association
    across it: a split the association of its two children, a merge the two groups it joined and
    their association. The reverse change along the same line then needs, however much later, the
    association to have moved past the recorded value by more than the two bounds together (then
    and now: each estimate is within its bound of the true value, so a larger difference means the
    correlation changed), on top of the test itself: two groups just merged are not split apart
    again, nor two just split merged back, while the stream stays stationary. A leaf larger than
    ``max_cluster_size`` (only a re-aggregation can make one) is split at once without statistical
    evidence, sides capped at ``max(ceil(m/2), max_cluster_size)``, until every cluster fits: a
    label powerset per cluster stays tractable.

    **New labels.** The new ids of an instance join the leaf holding most of that instance's known
    labels (ties: the smaller leaf, then the older one) if it has room for all of them; otherwise
    they form a new cluster together (a singleton when there is one). Ids registered with
    :meth:`add_labels`, or skipped over by an instance, become singletons.

    Every change bumps the partition version and emits a :class:`StructureChange`; the partition
    always covers every known label exactly once. Nothing is random: the same stream gives the same
    partition, and a restored state continues exactly as the original.

    Parameters
    ----------
    delta
        One minus the confidence of each Hoeffding test. 1e-3: a leaf is tested every
        ``grace_period`` positives, so a long stream runs many tests; a wrong split is cheap to undo
        (affinity merge) while a smaller delta needs more evidence than a faded count of a sparse
        label ever holds.
    tie_threshold
        ODAC's ``tau``: a tied diameter (usual: many pairs at distance exactly 1) is split once the
        bound is below it. 0.15 with ``delta=1e-3`` asks for about 310 instances of evidence on the
        pivot pair, within reach of labels seen in 15% of a ``fading_factor`` window.
    grace_period
        Instances in which a leaf must be positive between two evaluations of it (ODAC's ``n_min``).
        100 amortises an evaluation (tens to hundreds of microseconds) over 100 of its instances.
    min_dwell
        Instances a node must wait after it changed before it can change again. 500: about half a
        fading window, so a decision is revisited only once the counts behind it have moved.
    max_cluster_size
        Largest cluster allowed. 16 keeps a label powerset over one cluster tractable.
    min_cluster_size
        Leaves smaller than this merge on association alone (2: singletons).
    fading_factor
        Per-instance weight of the past in the co-occurrence counts, in ``(0, 1]``. 0.999 (memory of
        about 1,000 instances) follows a change of correlations within about 2,000-3,000 instances;
        closer to 1 keeps more evidence on rare labels but reacts proportionally slower.
    max_pending_events
        Events kept until :meth:`drain_events`; older ones are dropped (and counted) beyond it.

    Examples
    --------
    >>> clusterer = LabelClusterer(grace_period=20, min_dwell=100)
    >>> clusterer.learn_one([0, 1, 2, 3])  # first seen together: one cluster
    >>> for i in range(1000):  # then always as two pairs
    ...     clusterer.learn_one([0, 1] if i % 2 else [2, 3])
    >>> clusterer.partition.clusters
    ((0, 1), (2, 3))
    >>> for event in clusterer.drain_events():
    ...     print(event.action, event.reason, event.position, event.labels)
    new_label first_seen 1 (0, 1, 2, 3)
    split heterogeneity 180 (0, 1, 2, 3)

    The correlations change: the split is undone (the mean distance inside a child grew past the
    parent's) and the cluster splits again along the new pairs.

    >>> for i in range(2000):
    ...     clusterer.learn_one([0, 2] if i % 2 else [1, 3])
    >>> clusterer.partition.clusters, clusterer.partition.version
    (((0, 2), (1, 3)), 4)
    >>> for event in clusterer.drain_events():
    ...     print(event.action, event.reason, event.position, event.labels)
    merge mean_growth 1850 (0, 1, 2, 3)
    split separation 1950 (0, 1, 2, 3)
    >>> round(clusterer.distance(0, 2), 2), round(clusterer.distance(0, 1), 2)  # faded counts
    (0.16, 0.95)

    References
    ----------
    Rodrigues, P. P., Gama, J., Pedroso, J. P. (2008). Hierarchical clustering of time-series data
    streams. IEEE Transactions on Knowledge and Data Engineering, 20(5), 615-627.

    Neves, L. S., et al. (2025). Online hierarchical partitioning of the output space in extreme
    multi-label data streams (iHOMER). ECAI 2025.
    """

    state_header = {"format": STATE_FORMAT}
    state_readable = {"format": _READABLE_FORMATS}
    state_settings_key = "settings"
    state_settings = (
        "delta",
        "tie_threshold",
        "grace_period",
        "min_dwell",
        "max_cluster_size",
        "min_cluster_size",
        "fading_factor",
        "max_pending_events",
    )
    state_fields = ("_position", "_version", "_next_node_id", "n_dropped_events")
    state_children = ("cooccurrence",)

    def __init__(
        self,
        *,
        delta: float = 1e-3,
        tie_threshold: float = 0.15,
        grace_period: int = 100,
        min_dwell: int = 500,
        max_cluster_size: int = 16,
        min_cluster_size: int = 2,
        fading_factor: float = 0.999,
        max_pending_events: int = 10_000,
    ) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), not {delta!r}")
        if not tie_threshold >= 0.0:
            raise ValueError(f"tie_threshold must be >= 0, not {tie_threshold!r}")
        if grace_period < 1:
            raise ValueError(f"grace_period must be >= 1, not {grace_period!r}")
        if min_dwell < 0:
            raise ValueError(f"min_dwell must be >= 0, not {min_dwell!r}")
        if max_cluster_size < 2:
            raise ValueError(f"max_cluster_size must be >= 2, not {max_cluster_size!r}")
        if not 1 <= min_cluster_size <= max_cluster_size:
            raise ValueError(f"min_cluster_size must be in [1, max_cluster_size], not {min_cluster_size!r}")
        if max_pending_events < 1:
            raise ValueError(f"max_pending_events must be >= 1, not {max_pending_events!r}")
        self.delta = float(delta)
        self.tie_threshold = float(tie_threshold)
        self.grace_period = int(grace_period)
        self.min_dwell = int(min_dwell)
        self.max_cluster_size = int(max_cluster_size)
        self.min_cluster_size = int(min_cluster_size)
        self.fading_factor = float(fading_factor)
        self.max_pending_events = int(max_pending_events)
        self.cooccurrence = LabelCooccurrence(fading_factor=fading_factor)
        self._nodes: dict[int, _Node] = {}
        self._next_node_id = 0
        self._leaf_of: list[int] = []  # label id -> id of the leaf holding it
        self._first_seen: list[int] = []  # label id -> position when it joined the partition
        # The partition's clusters in order (by smallest label), kept up to date while only new
        # labels arrive (their ids are the largest, so new leaves append and joins keep a leaf's
        # smallest label): every new label bumps the version, and a consumer reads the partition
        # after each instance. None after a split or merge: rebuilt on demand.
        self._order: _LeafOrder | None = _LeafOrder([])
        self._position = 0
        self._version = 0
        self._partition: Partition | None = Partition(0, ())
        self._events: deque[StructureChange] = deque(maxlen=self.max_pending_events)
        self.n_dropped_events = 0

    # ------------------------------------------------------------------ public surface

    @property
    def n_labels(self) -> int:
        return len(self._leaf_of)

    @property
    def n_learned(self) -> int:
        """Instances learned so far (the ``position`` of events)."""
        return self._position

    @property
    def version(self) -> int:
        return self._version

    @property
    def partition(self) -> Partition:
        """The current partition (built once per version)."""
        if self._partition is None:
            order = self._order
            if order is None:
                order = self._order = _LeafOrder(
                    sorted(
                        (node for node in self._nodes.values() if not node.children),
                        key=lambda n: n.labels[0],
                    )
                )
            self._partition = order.partition(self._version, len(self._leaf_of))
        return self._partition

    def drain_events(self) -> list[StructureChange]:
        """The structure changes since the last call, oldest first."""
        if not self._events:  # the usual case, once per learned instance
            return []
        events = list(self._events)
        self._events.clear()
        return events

    def distance(self, a: int, b: int) -> float:
        """Jaccard distance of two labels under the current (faded) counts."""
        return self.cooccurrence.distance(a, b)

    def association(self, left: Iterable[int], right: Iterable[int]) -> Association:
        """The association of two disjoint, non-empty groups of known label ids: what splits and merges test.

        See :func:`~labelflow.operators.labels.association.association`; a merge joins two clusters
        only when it is significant, a split parts two groups only when it is not positive.
        """
        first, second = _clean_label_ids(left), _clean_label_ids(right)
        if not first or not second:
            raise ValueError("association needs two non-empty groups of labels")
        if set(first) & set(second):
            raise ValueError(
                f"association needs disjoint groups; both hold {sorted(set(first) & set(second))}"
            )
        unknown = max(first[-1], second[-1])
        if unknown >= self.n_labels:
            raise ValueError(f"label {unknown} is not known yet ({self.n_labels} labels)")
        return self._association(first, second)

    def add_labels(self, n_labels: int) -> None:
        """Make sure ids ``0 .. n_labels - 1`` are in the partition (new ones as singletons)."""
        n_labels = operator.index(n_labels)
        if n_labels < 0:
            raise ValueError(f"n_labels must be >= 0, not {n_labels}")
        if n_labels <= self.n_labels:
            return
        first = self.n_labels
        self._grow(n_labels)
        for label in range(first, n_labels):
            self._new_leaf([label], parent=-1, appended=True)
        self._emit(NEW_LABEL, tuple(range(first, n_labels)), float(n_labels - first), 0.0, "first_seen")

    def learn_one(self, positive_label_ids: Iterable[int]) -> None:
        """Learn one instance's positive label ids (may be empty; new ids join the partition)."""
        self.learn_sorted(_clean_label_ids(positive_label_ids))

    def learn_sorted(self, labels: list[int]) -> None:
        """:meth:`learn_one` of label ids already sorted, distinct and non-negative ints (a learner's own
        ids: the per-instance hot path skips checking them again)."""
        self._position += 1
        if labels and labels[-1] >= len(self._leaf_of):
            self._admit(labels)
        self.cooccurrence.update(labels)
        if not labels:
            return
        leaf_of = self._leaf_of
        touched: list[int] = []
        for a in labels:
            leaf = leaf_of[a]
            if leaf not in touched:
                touched.append(leaf)
        nodes = self._nodes
        grace = self.grace_period
        due: list[int] | None = None
        for leaf in touched:
            node = nodes[leaf]
            node.hits += 1
            if node.hits >= grace:
                if due is None:
                    due = []
                due.append(leaf)
        if due is not None:
            due.sort()
            for leaf in due:
                due_node = nodes.get(leaf)
                if due_node is not None and due_node.is_leaf:  # an earlier evaluation may have merged it
                    due_node.hits = 0
                    self._evaluate(due_node)

    # ------------------------------------------------------------------ new labels

    def _grow(self, n_labels: int) -> None:
        self.cooccurrence.add_labels(n_labels)
        self._first_seen.extend([self._position] * (n_labels - len(self._leaf_of)))
        self._leaf_of.extend([-1] * (n_labels - len(self._leaf_of)))

    def _admit(self, labels: list[int]) -> None:
        """Register the unseen ids of an instance (``labels`` sorted, its last id unseen)."""
        first = len(self._leaf_of)
        self._grow(labels[-1] + 1)
        new = [a for a in labels if a >= first]
        known_leaves: dict[int, int] = {}
        for a in labels:
            if a < first:
                leaf = self._leaf_of[a]
                known_leaves[leaf] = known_leaves.get(leaf, 0) + 1
        target: _Node | None = None
        if known_leaves:
            best = min(
                known_leaves, key=lambda leaf: (-known_leaves[leaf], len(self._nodes[leaf].labels), leaf)
            )
            if len(self._nodes[best].labels) + len(new) <= self.max_cluster_size:
                target = self._nodes[best]
        new_leaves: list[list[int]] = []
        if target is not None:
            for a in new:
                bisect.insort(target.labels, a)
                self._leaf_of[a] = target.node_id
            # The leaf changed: its new labels need a dwell of evidence before it is judged again
            # (until then every old label looks far from them: their counts only start now).
            target.changed_at = self._position
            if self._order is not None:
                self._order.changed(target)
        else:
            new_leaves.extend(
                new[start : start + self.max_cluster_size]
                for start in range(0, len(new), self.max_cluster_size)
            )
        in_instance = set(new)
        # ids skipped over: registered, never seen yet
        new_leaves.extend([label] for label in range(first, labels[-1] + 1) if label not in in_instance)
        new_leaves.sort()
        for leaf_labels in new_leaves:
            self._new_leaf(leaf_labels, parent=-1, appended=True)
        self._emit(
            NEW_LABEL, tuple(range(first, labels[-1] + 1)), float(labels[-1] + 1 - first), 0.0, "first_seen"
        )

    # ------------------------------------------------------------------ evaluation

    def _dwelt(self, node: _Node) -> bool:
        return self._position - node.changed_at >= self.min_dwell

    def _bound(self, evidence: float) -> float:
        return hoeffding_bound(evidence, self.delta)

    def _plan_split(
        self,
        labels: list[int],
        close: list[ClosePair] | None = None,
        s: ClusterStatistics | None = None,
        *,
        odac: bool = True,
        record: _Node | None = None,
        margin: bool = False,
    ) -> _SplitPlan | None:
        """The statistical split of ``labels`` if a test calls for one and its sides may part, else None.

        ODAC's test, then the unrelated-labels test, each propose two sides; a proposal is taken only
        when :meth:`_may_part` allows it (the sides are not associated, and ``record``, the leaf
        being evaluated, was not made by merging the same two sides on stronger evidence).
        ``odac=False`` runs only the unrelated-labels test. ``margin``: the test a merge runs on its
        union, with the association threshold one bound higher (see :meth:`_may_part`).
        """
        if len(labels) < 2:
            return None
        if close is None:
            close = close_pairs(self.cooccurrence, labels)
        if s is None:
            s = cluster_statistics(self.cooccurrence, labels, close)
        eps = self._bound(s.evidence)
        # ODAC needs a second largest distance
        if odac and len(labels) >= 3 and ((s.d1 - s.d2 > eps) or (eps < self.tie_threshold)):
            sides = split_by_pivots(self.cooccurrence, labels, s.pivots)
            statistic, reason = s.heterogeneity, "heterogeneity"
            if not statistic > eps:
                statistic, reason = separation(close, *sides), "separation"
            if statistic > eps:
                parting = self._may_part(sides, record, margin)
                if parting is not None:
                    return _SplitPlan(s, sides, eps, statistic, eps, reason, parting)
        unrelated, certainty = unrelated_labels(self.cooccurrence, labels, self.delta, self.tie_threshold)
        if not unrelated:
            return None
        sides = self._unrelated_sides(labels, unrelated, s)
        parting = self._may_part(sides, record, margin)
        if parting is None:
            return None
        return _SplitPlan(s, sides, eps, certainty, 1.0 - self.tie_threshold, "unrelated", parting)

    def _unrelated_sides(
        self, labels: list[int], unrelated: list[int], s: ClusterStatistics
    ) -> tuple[list[int], list[int]]:
        if len(unrelated) < len(labels):
            apart = set(unrelated)
            return [a for a in labels if a not in apart], unrelated
        return split_by_pivots(self.cooccurrence, labels, s.pivots)

    def _association(self, left: Sequence[int], right: Sequence[int]) -> Association:
        return association(self.cooccurrence, left, right, self.delta)

    def _may_part(
        self, sides: tuple[list[int], list[int]], record: _Node | None, margin: bool = False
    ) -> Association | None:
        """The sides' association if a split may part them (:func:`may_part`), else None.

        ``record``: the leaf being split; if a merge made it from the same two groups, the
        association recorded then must be refuted. ``margin``: the threshold raised by one bound,
        to the merge threshold: any two groups a merge would not join may part.
        """
        now = self._association(*sides)
        if margin:
            return None if now.significant else now
        merged = None
        if record is not None and record.merged_sides is not None and same_line(sides, record.merged_sides):
            merged = _recorded(record)
        return now if may_part(now, merged) else None

    def _union_would_split(self, labels: list[int], odac: bool) -> bool:
        """Whether the union of a merge would satisfy the split test, with a margin of one bound.

        The split tests run on the union with the association threshold raised by one bound, to
        the merge threshold: the union counts as splittable when a test proposes two sides that a
        merge would not join. A merge therefore never creates a cluster that the split test would
        undo while the association stays within its bound. ``odac=False``: only the
        unrelated-labels test (tiny clusters).
        """
        return self._plan_split(labels, odac=odac, margin=True) is not None

    def _evaluate(self, leaf: _Node) -> None:
        if not self._dwelt(leaf):
            return
        close = close_pairs(self.cooccurrence, leaf.labels)
        s = cluster_statistics(self.cooccurrence, leaf.labels, close)
        if leaf.parent >= 0 and s.size >= 2:
            parent = self._nodes[leaf.parent]
            if self._subtree_dwelt(parent):
                eps = max(parent.split_bound, self._bound(s.evidence))
                growth_d1 = s.d1 - parent.split_d1
                growth_mean = s.mean - parent.split_mean
                if growth_d1 > eps or growth_mean > eps:
                    reason = "diameter_growth" if growth_d1 > eps else "mean_growth"
                    if self._try_aggregate(parent, max(growth_d1, growth_mean), eps, reason):
                        return
        plan = self._plan_split(leaf.labels, close, s, record=leaf)
        if plan is not None:
            self._split(
                leaf,
                plan.statistics,
                plan.sides,
                plan.bound,
                plan.statistic,
                plan.threshold,
                plan.reason,
                plan.association,
            )
            return
        self._try_affinity_merge(leaf)

    def _try_aggregate(self, parent: _Node, statistic: float, eps: float, reason: str) -> bool:
        """Undo ``parent``'s split unless the union would at once be split again along the same line."""
        first, second = (self._subtree_labels(self._nodes[c]) for c in parent.children)
        sides = (first, second)
        union = sorted(first + second)
        if len(union) <= self.max_cluster_size:  # else a forced split follows whatever the statistics
            plan = self._plan_split(union)
            if plan is not None and same_line(plan.sides, sides):
                return False  # the split is still what the statistics call for: nothing to undo
        self._aggregate(parent, statistic, eps, reason, sides, self._association(first, second))
        return True

    def _try_affinity_merge(self, leaf: _Node) -> None:
        room = self.max_cluster_size - len(leaf.labels)
        if room <= 0:
            return
        counts = self.cooccurrence.raw_counts
        pairs = self.cooccurrence.raw_pairs
        leaf_of = self._leaf_of
        own = leaf.node_id
        # Sum of Jaccard similarities from this leaf to every leaf it co-occurred with. Stored pair
        # counts are positive, so every union below is positive too.
        similarity: dict[int, float] = {}
        for a in leaf.labels:
            count_a = counts[a]
            for b, v in pairs[a].items():
                other_leaf = leaf_of[b]
                if other_leaf != own:
                    similarity[other_leaf] = similarity.get(other_leaf, 0.0) + v / (count_a + counts[b] - v)
        best: _Node | None = None
        best_key: tuple[float, int] | None = None
        for other_id, total in similarity.items():
            other = self._nodes[other_id]
            if len(other.labels) > room or not self._dwelt(other):
                continue
            key = (-total / len(other.labels), other_id)
            if best_key is None or key < best_key:
                best, best_key = other, key
        if best is None:
            return
        now = self._association(leaf.labels, best.labels)
        # siblings: joining them undoes their parent's split, whose record must be refuted
        split = (
            _recorded(self._nodes[leaf.parent]) if leaf.parent >= 0 and leaf.parent == best.parent else None
        )
        threshold = merge_threshold(now, split)
        if not now.value > threshold:
            return
        merged = sorted(leaf.labels + best.labels)
        tiny = min(len(leaf.labels), len(best.labels)) < self.min_cluster_size
        if self._union_would_split(merged, odac=not tiny):
            return
        self._merge_leaves(leaf, best, merged, now, threshold)

    # ------------------------------------------------------------------ structure changes

    def _new_leaf(self, labels: list[int], parent: int, appended: bool = False) -> _Node:
        """A new leaf; ``appended``: its smallest label is larger than every other leaf's."""
        node = _Node(self._next_node_id, parent, labels, self._position)
        if appended and self._order is not None:
            self._order.append(node)
        else:
            self._order = None
        self._next_node_id += 1
        self._nodes[node.node_id] = node
        for a in labels:
            self._leaf_of[a] = node.node_id
        return node

    def _split(
        self,
        leaf: _Node,
        s: ClusterStatistics,
        sides: tuple[list[int], list[int]],
        bound: float,
        statistic: float,
        threshold: float,
        reason: str,
        across: Association | None = None,
    ) -> tuple[_Node, _Node]:
        labels = tuple(leaf.labels)
        leaf.labels = []
        self._order = None
        leaf.split_d1, leaf.split_mean, leaf.split_bound = s.d1, s.mean, bound
        leaf.merged_sides = None
        _record_line(leaf, across)
        leaf.changed_at = self._position
        leaf.hits = 0
        first = self._new_leaf(sides[0], parent=leaf.node_id)
        second = self._new_leaf(sides[1], parent=leaf.node_id)
        leaf.children = (first.node_id, second.node_id)
        self._emit(SPLIT, labels, statistic, threshold, reason)
        return first, second

    def _subtree_nodes(self, node: _Node) -> list[_Node]:
        nodes = [node]
        for current in nodes:  # grows while iterating: breadth-first
            nodes.extend(self._nodes[c] for c in current.children)
        return nodes

    def _subtree_dwelt(self, node: _Node) -> bool:
        """Whether no node under ``node`` (itself included) changed within ``min_dwell``."""
        return all(self._dwelt(n) for n in self._subtree_nodes(node))

    def _subtree_labels(self, node: _Node) -> list[int]:
        labels: list[int] = []
        stack = [node]
        while stack:
            current = stack.pop()
            if current.is_leaf:
                labels.extend(current.labels)
            else:
                stack.extend(self._nodes[c] for c in current.children)
        return sorted(labels)

    def _drop_subtree_below(self, node: _Node) -> None:
        self._order = None
        stack = [self._nodes[c] for c in node.children]
        while stack:
            current = stack.pop()
            stack.extend(self._nodes[c] for c in current.children)
            del self._nodes[current.node_id]
        node.children = ()

    def _aggregate(
        self,
        parent: _Node,
        statistic: float,
        eps: float,
        reason: str,
        sides: tuple[list[int], list[int]],
        across: Association,
    ) -> None:
        """Undo ``parent``'s split: its whole subtree becomes one leaf again.

        ``sides`` (the labels under each child) and their association are recorded as the line of
        the merge only where the union is as associated as an affinity merge requires; a
        re-aggregation of groups that are not associated claims nothing a later split could refute.
        """
        labels = self._subtree_labels(parent)
        self._drop_subtree_below(parent)
        self._become_leaf(parent, labels)
        if across.significant:
            parent.merged_sides = (tuple(sides[0]), tuple(sides[1]))
            _record_line(parent, across)
        self._emit(MERGE, tuple(labels), statistic, eps, reason)
        self._enforce_max_size(parent)

    def _become_leaf(self, node: _Node, labels: list[int]) -> None:
        self._order = None
        node.labels = labels
        node.split_d1 = node.split_mean = node.split_bound = math.nan
        node.line_association = node.line_bound = math.nan
        node.merged_sides = None
        node.changed_at = self._position
        node.hits = 0
        for a in labels:
            self._leaf_of[a] = node.node_id

    def _merge_leaves(
        self, leaf: _Node, other: _Node, merged: list[int], across: Association, threshold: float
    ) -> None:
        sides = (tuple(leaf.labels), tuple(other.labels))
        if leaf.parent >= 0 and leaf.parent == other.parent:  # siblings: undo their parent's split
            node = self._nodes[leaf.parent]
            self._drop_subtree_below(node)
            self._become_leaf(node, merged)
        else:
            self._detach(leaf)
            self._detach(other)
            node = self._new_leaf(merged, parent=-1)
        node.merged_sides = sides
        _record_line(node, across)
        self._emit(MERGE, tuple(merged), across.value, threshold, "affinity")

    def _detach(self, leaf: _Node) -> None:
        """Remove a leaf from the hierarchy; its sibling takes the place of their parent."""
        self._order = None
        del self._nodes[leaf.node_id]
        if leaf.parent < 0:
            return
        parent = self._nodes.pop(leaf.parent)
        sibling = self._nodes[next(c for c in parent.children if c != leaf.node_id)]
        sibling.parent = parent.parent
        if parent.parent >= 0:
            grandparent = self._nodes[parent.parent]
            grandparent.children = tuple(
                sibling.node_id if c == parent.node_id else c for c in grandparent.children
            )

    def _enforce_max_size(self, node: _Node) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            m = len(current.labels)
            if m <= self.max_cluster_size:
                continue
            s = cluster_statistics(self.cooccurrence, current.labels)
            capacity = max(-(-m // 2), self.max_cluster_size)
            sides = split_by_pivots(self.cooccurrence, current.labels, s.pivots, capacity)
            # Recorded with an infinite bound: a forced split claims nothing a re-aggregation could
            # refute, and undoing it would only recreate an oversized leaf (a split-merge loop).
            first, second = self._split(
                current, s, sides, math.inf, float(m), float(self.max_cluster_size), "max_size"
            )
            stack.extend((second, first))

    def _emit(
        self, action: str, labels: tuple[int, ...], statistic: float, threshold: float, reason: str
    ) -> None:
        before = self._version
        self._version += 1
        self._partition = None
        if len(self._events) == self._events.maxlen:
            self.n_dropped_events += 1
        self._events.append(
            StructureChange(
                action=action,
                position=self._position,
                version_before=before,
                version_after=self._version,
                labels=labels,
                statistic=float(statistic),
                threshold=float(threshold),
                reason=reason,
                min_label_age=self._position - max(self._first_seen[a] for a in labels),
                min_label_count=min(self.cooccurrence.count(a) for a in labels),
            )
        )

    def check_consistency(self) -> None:
        """Raise ``AssertionError`` if the hierarchy, the cluster map or the partition disagree.

        Costs ``O(nodes + labels)``: for tests and debugging, not for the per-instance path.
        """
        seen = [0] * len(self._leaf_of)
        for node_id, node in self._nodes.items():
            assert node.node_id == node_id, f"node {node_id} stored under another id"
            if node.parent >= 0:
                parent = self._nodes.get(node.parent)
                assert parent is not None and node_id in parent.children, f"node {node_id} lost its parent"
            if node.children:
                assert len(node.children) == 2 and not node.labels, f"internal node {node_id} malformed"
                for child in node.children:
                    assert self._nodes[child].parent == node_id, (
                        f"child {child} of {node_id} points elsewhere"
                    )
            else:
                assert node.labels, f"leaf {node_id} is empty"
                assert len(node.labels) <= self.max_cluster_size, f"leaf {node_id} exceeds max_cluster_size"
                assert all(a < b for a, b in zip(node.labels, node.labels[1:], strict=False)), (
                    f"leaf {node_id} not sorted"
                )
                for label in node.labels:
                    assert self._leaf_of[label] == node_id, f"label {label} mapped to {self._leaf_of[label]}"
                    seen[label] += 1
        assert all(count == 1 for count in seen), "a label is in no cluster or in two"
        partition = self.partition
        expected = Partition.from_clusters(
            self._version,
            [n.labels for n in self._nodes.values() if not n.children],
            [n.node_id for n in self._nodes.values() if not n.children],
        )
        assert partition == expected, "cached partition differs from the hierarchy"
        assert partition.n_labels == len(self._leaf_of) == self.cooccurrence.n_labels

    # ------------------------------------------------------------------ state

    def _save_state(self, state: State) -> None:
        """The hierarchy and pending events (the counts are the child state ``cooccurrence``)."""
        nodes = list(self._nodes.values())
        children = np.full((len(nodes), 2), -1, dtype=np.int64)
        for i, node in enumerate(nodes):
            children[i, : len(node.children)] = node.children
        # merged sides, flattened: one row (node id, side 0/1, label) per label of each recorded line
        merged_rows = [
            (node.node_id, side, label)
            for node in nodes
            if node.merged_sides is not None
            for side, group in enumerate(node.merged_sides)
            for label in group
        ]
        state.meta["events"] = [event.to_dict() for event in self._events]
        state.arrays.update(
            {
                "leaf_of": np.asarray(self._leaf_of, dtype=np.int64),
                "first_seen": np.asarray(self._first_seen, dtype=np.int64),
                "node_id": np.array([n.node_id for n in nodes], dtype=np.int64),
                "node_parent": np.array([n.parent for n in nodes], dtype=np.int64),
                "node_children": children,
                "node_changed_at": np.array([n.changed_at for n in nodes], dtype=np.int64),
                "node_hits": np.array([n.hits for n in nodes], dtype=np.int64),
                "node_split": np.array(
                    [[n.split_d1, n.split_mean, n.split_bound] for n in nodes], dtype=np.float64
                ).reshape(len(nodes), 3),
                "node_line": np.array(
                    [[n.line_association, n.line_bound] for n in nodes], dtype=np.float64
                ).reshape(len(nodes), 2),
                "merged_sides": np.array(merged_rows, dtype=np.int64).reshape(len(merged_rows), 3),
            }
        )

    def _load_state(self, state: State) -> None:
        self._events.extend(StructureChange.from_dict(e) for e in state.meta["events"])
        a = state.arrays
        self._leaf_of = [int(v) for v in a["leaf_of"]]
        if len(self._leaf_of) != self.cooccurrence.n_labels:
            raise ValueError("corrupt LabelClusterer state: label counts and cluster map differ in length")
        # States written before first-seen positions were kept: every label counts as seen from the start.
        first_seen = a["first_seen"].tolist() if "first_seen" in a else [0] * len(self._leaf_of)
        if len(first_seen) != len(self._leaf_of):
            raise ValueError(
                "corrupt LabelClusterer state: first-seen positions and cluster map differ in length"
            )
        self._first_seen = [int(v) for v in first_seen]
        for i, node_id in enumerate(a["node_id"].tolist()):
            node = _Node(node_id, int(a["node_parent"][i]), [], int(a["node_changed_at"][i]))
            node.children = tuple(int(c) for c in a["node_children"][i] if c >= 0)
            node.hits = int(a["node_hits"][i])
            node.split_d1, node.split_mean, node.split_bound = (float(v) for v in a["node_split"][i])
            if "node_line" in a:
                node.line_association, node.line_bound = (float(v) for v in a["node_line"][i])
            self._nodes[node_id] = node
        if "merged_sides" in a:
            groups: dict[int, tuple[list[int], list[int]]] = {}
            for node_id, side, label in a["merged_sides"].tolist():
                if node_id not in self._nodes or side not in (0, 1):
                    raise ValueError(
                        f"corrupt LabelClusterer state: merged side {side} of unknown node {node_id}"
                    )
                groups.setdefault(node_id, ([], []))[side].append(label)
            for node_id, (first, second) in groups.items():
                self._nodes[node_id].merged_sides = (tuple(first), tuple(second))
        for label, leaf in enumerate(self._leaf_of):
            leaf_node = self._nodes.get(leaf)
            if leaf_node is None or not leaf_node.is_leaf:
                raise ValueError(f"corrupt LabelClusterer state: label {label} maps to {leaf}, not a leaf")
            leaf_node.labels.append(label)
        if any(node.is_leaf and not node.labels for node in self._nodes.values()):
            raise ValueError("corrupt LabelClusterer state: an empty leaf")
        self._partition = None
        self._order = None


def _record_line(node: _Node, across: Association | None) -> None:
    """Record the association ``across`` ``node``'s line; None or no evidence (infinite bound) records nothing."""
    if across is not None and math.isfinite(across.bound):
        node.line_association, node.line_bound = across.value, across.bound
    else:
        node.line_association = node.line_bound = math.nan


def _recorded(node: _Node) -> Association | None:
    if math.isnan(node.line_association):
        return None
    return Association(node.line_association, node.line_bound)


def _clean_label_ids(ids: Iterable[int]) -> list[int]:
    """Sorted distinct non-negative ints; raises on anything else (floats, negatives)."""
    try:
        labels = sorted({operator.index(a) for a in ids})
    except TypeError as exc:
        raise TypeError(f"label ids must be integers: {exc}") from exc
    if labels and labels[0] < 0:
        raise ValueError(f"label ids must be non-negative, got {labels[0]}")
    return labels
