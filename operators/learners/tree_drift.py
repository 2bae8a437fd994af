"""Performance drift of a label tree, per label cluster and globally, in memory bounded by a cluster budget."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from labelflow.operators.drift.events import GLOBAL_LEVEL, DriftEvent
from labelflow.operators.drift.performance import PerformanceDriftDetector
from labelflow.operators.state import State, Stateful


def _error(predicted: set[int], truth: set[int]) -> float | None:
    """``1 - F1`` of a decided against a true label set; None where neither has a label."""
    size = len(predicted) + len(truth)
    return 1.0 - 2.0 * len(predicted & truth) / size if size else None


class TreeDriftWatch(Stateful):
    """Watches the decisions of a label tree for performance drift, as the flat learner's drift handler
    does: a cluster's error is ``1 - F1`` of its decided against its true labels on the instances where it
    is involved (a decided or true label in it), the global error the same over all labels, each tested
    by a :class:`PerformanceDriftDetector` (adaptive windows, ``delta`` per check).

    What differs, for label spaces of any size: a detector costs ~16 KB, so only the ``max_clusters``
    clusters involved most recently are watched (a cluster that comes back after being dropped starts a
    new window); an instance touches only the detectors of its involved clusters, never a per-label
    structure. Events are alerts: the tree adapts through its online learning (AdaGrad steps of rarely
    updated nodes stay large), not by replacing cluster models. The label prior, label dependence and
    input detectors of the flat learner are not run here: they keep per-label or per-pair state.

    >>> watch = TreeDriftWatch(cooldown=0)
    >>> names = lambda cluster: ("a", "b") if cluster == 7 else ("c",)
    >>> events = []
    >>> for t in range(4000):
    ...     right = t < 2000 or t % 2 == 0  # cluster 7's labels go wrong half the time from t = 2000
    ...     decided = {1} if right else {2}
    ...     events += watch.observe(decided, {1}, {1: 7, 2: 7}.__getitem__, names, position=t)
    >>> sorted({(e.level, e.labels, e.severity) for e in events})
    [('7', ('a', 'b'), 'drift'), ('7', ('a', 'b'), 'warning'), ('global', (), 'drift'), ('global', (), 'warning')]
    """

    state_settings = ("delta", "warning_delta", "cooldown", "max_clusters")

    def __init__(
        self,
        *,
        delta: float = 1e-4,
        warning_delta: float | None = 1e-2,
        cooldown: int = 1000,
        max_clusters: int = 1024,
    ) -> None:
        if max_clusters < 1:
            raise ValueError(f"max_clusters must be at least 1, not {max_clusters}")
        self.delta = delta
        self.warning_delta = warning_delta
        self.cooldown = cooldown
        self.max_clusters = max_clusters
        self.global_detector = self._detector(GLOBAL_LEVEL, ())
        self.detectors: OrderedDict[int, PerformanceDriftDetector] = OrderedDict()  # least recent first

    def _detector(self, level: str | int, labels: tuple[str, ...]) -> PerformanceDriftDetector:
        detector = PerformanceDriftDetector(
            delta=self.delta,
            warning_delta=self.warning_delta,
            level=level,
            labels=labels,
            cooldown=self.cooldown,
            drift_action="alert",
            warning_action="alert",
        )
        if level != GLOBAL_LEVEL:
            detector.share_cuts(self.global_detector)
        return detector

    def observe(
        self,
        predicted: Iterable[int],
        truth: Iterable[int],
        cluster_of: Callable[[int], int],
        cluster_labels: Callable[[int], Sequence[str]],
        *,
        position: int,
    ) -> list[DriftEvent]:
        """One labelled instance: its decided and true label ids, the cluster of a label id and the label
        names of a cluster (asked only for a cluster that gets a detector or grew); returns the events."""
        predicted, truth = set(predicted), set(truth)
        events: list[DriftEvent] = []
        error = _error(predicted, truth)
        event = self.global_detector.update(0.0 if error is None else error, position=position)
        if event is not None:
            events.append(event)
        by_cluster: dict[int, tuple[set[int], set[int]]] = {}
        for label in predicted:
            by_cluster.setdefault(cluster_of(label), (set(), set()))[0].add(label)
        for label in truth:
            by_cluster.setdefault(cluster_of(label), (set(), set()))[1].add(label)
        for cluster, (decided, true) in by_cluster.items():
            detector = self._watched(cluster, cluster_labels)
            event = detector.update(_error(decided, true) or 0.0, position=position)
            if event is not None:
                events.append(event)
        return events

    def _watched(
        self, cluster: int, cluster_labels: Callable[[int], Sequence[str]]
    ) -> PerformanceDriftDetector:
        detector = self.detectors.get(cluster)
        if detector is None:
            if len(self.detectors) >= self.max_clusters:
                self.detectors.popitem(last=False)
            detector = self.detectors[cluster] = self._detector(cluster, tuple(cluster_labels(cluster)))
        else:
            self.detectors.move_to_end(cluster)
        return detector

    def relabel(self, cluster: int, labels: Sequence[str]) -> None:
        """A watched cluster gained labels: its events name them from now on (its window goes on)."""
        detector = self.detectors.get(cluster)
        if detector is not None:
            detector.labels = tuple(labels)

    def _save_state(self, state: State) -> None:
        state.attach("global", self.global_detector.state())
        state.meta["clusters"] = list(self.detectors)
        for i, detector in enumerate(self.detectors.values()):
            state.attach(f"d{i}", detector.state())

    def _load_state(self, state: State) -> None:
        self.global_detector = PerformanceDriftDetector.from_state(state.detach("global"))
        self.detectors = OrderedDict()
        for i, cluster in enumerate(state.meta["clusters"]):
            detector = PerformanceDriftDetector.from_state(state.detach(f"d{i}"))
            detector.share_cuts(self.global_detector)
            self.detectors[int(cluster)] = detector
