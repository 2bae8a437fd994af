"""Drift detection and adaptation for the partitioned classifier, at the cluster and global levels."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np

from labelflow.operators.base import Features, Label, SparseVector
from labelflow.operators.drift import (
    GLOBAL_LEVEL,
    DriftEvent,
    InputDriftDetector,
    LabelDependenceDriftDetector,
    LabelPriorDriftDetector,
    LabelStructureDriftAdapter,
    PerformanceDriftMonitor,
)
from labelflow.operators.drift.cluster_errors import ClusterErrors
from labelflow.operators.labels.clustering import StructureChange
from labelflow.operators.labels.partition import Partition
from labelflow.operators.learners.label_index import LabelIndex
from labelflow.operators.learners.linear import LinearHeads
from labelflow.operators.state import State, Stateful

Adaptation = Literal["background", "reset", "none"]
ADAPTATIONS: tuple[str, ...] = ("background", "reset", "none")


def _pack_input(arrays: dict[str, np.ndarray], name: str, x: Features) -> None:
    if isinstance(x, SparseVector):
        arrays[f"{name}/indices"], arrays[f"{name}/values"] = x.indices, x.values
        arrays[f"{name}/dim"] = np.array([x.dim])
    else:
        arrays[f"{name}/dense"] = np.asarray(x)


def _unpack_input(arrays: dict[str, np.ndarray], name: str) -> Features:
    if f"{name}/dense" in arrays:
        return arrays[f"{name}/dense"]
    return SparseVector(arrays[f"{name}/indices"], arrays[f"{name}/values"], int(arrays[f"{name}/dim"][0]))


class AdaptableModel(Protocol):
    """What :class:`DriftHandler` does to the model it watches when one of its label clusters drifts
    (``labels`` are the cluster's label ids)."""

    def background_heads(self) -> LinearHeads:
        """Fresh logistic heads with the model's settings, to learn the new concept in the background."""
        ...

    def replace_cluster_heads(self, labels: Sequence[int], heads: LinearHeads) -> None: ...

    def reset_cluster(self, labels: Sequence[int]) -> None: ...

    def reset_cluster_context(self, labels: Sequence[int]) -> None: ...


class _Observations:
    """Labelled instances waiting for the next block, in arrays allocated once: per row, what was
    decided for the instance (over the labels known when it was predicted), its true labels (over the
    labels known once it was learned), the lengths of both, its position and its scaled input."""

    def __init__(self, rows: int) -> None:
        self.n = 0
        self.predicted = np.zeros((rows, 16), dtype=bool)
        self.truth = np.zeros((rows, 16), dtype=bool)
        # Per row (Python lists: a numpy scalar write costs more than an append)
        self.predicted_len: list[int] = []
        self.truth_len: list[int] = []
        self.positions: list[int] = []
        self.scaled: list[Features] = []
        # The scaled inputs again as float32 rows while all of them are dense of one dimension (the input
        # detector projects them without stacking a list).
        self.dense: np.ndarray | None = None
        self.all_dense = True

    def add(self, scaled: Features, predicted: np.ndarray, truth: np.ndarray, position: int) -> None:
        row, n_predicted, n_truth = self.n, predicted.shape[0], truth.shape[0]
        if row == self.predicted.shape[0] or max(n_predicted, n_truth) > self.predicted.shape[1]:
            self._grow(row + 1, max(n_predicted, n_truth))
        self.predicted[row, :n_predicted] = predicted
        self.truth[row, :n_truth] = truth  # 0/1 floats: non-zero is true
        self.predicted_len.append(n_predicted)
        self.truth_len.append(n_truth)
        self.positions.append(position)
        self.scaled.append(scaled)
        if self.all_dense:
            dense = self.dense
            if dense is not None and row and type(scaled) is np.ndarray and scaled.shape == dense.shape[1:]:
                dense[row] = scaled  # the common case, without a call
            else:
                self._add_dense(row, scaled)
        self.n = row + 1

    def _add_dense(self, row: int, scaled: Features) -> None:
        if isinstance(scaled, SparseVector) or scaled.ndim != 1:
            self.all_dense = False
        elif self.dense is None or self.dense.shape[1] != scaled.shape[0]:
            if row:
                self.all_dense = False
            else:
                self.dense = np.zeros((self.predicted.shape[0], scaled.shape[0]), dtype=np.float32)
        if self.all_dense and self.dense is not None:
            self.dense[row] = scaled

    def dense_rows(self) -> np.ndarray | None:
        """The scaled inputs as one float32 array, or None where they are not all dense of one dimension."""
        return self.dense[: self.n] if self.all_dense and self.dense is not None and self.n else None

    def _grow(self, rows: int, width: int) -> None:
        """Room for at least ``rows`` rows of ``width`` labels (doubling, so growth is rare)."""
        old_rows, old_width = self.predicted.shape
        rows = max(rows, 2 * old_rows) if rows > old_rows else old_rows
        width = max(width, 2 * old_width) if width > old_width else old_width
        for name in ("predicted", "truth"):
            matrix = np.zeros((rows, width), dtype=bool)
            matrix[:old_rows, :old_width] = getattr(self, name)
            setattr(self, name, matrix)
        if self.dense is not None and rows > self.dense.shape[0]:
            dense = np.zeros((rows, self.dense.shape[1]), dtype=np.float32)
            dense[:old_rows] = self.dense
            self.dense = dense

    def clear(self) -> None:
        self.predicted[: self.n] = False
        self.truth[: self.n] = False
        self.n = 0
        self.predicted_len, self.truth_len, self.positions, self.scaled = [], [], [], []
        self.all_dense = True

    def predicted_row(self, row: int) -> np.ndarray:
        return self.predicted[row, : self.predicted_len[row]].copy()

    def truth_row(self, row: int) -> np.ndarray:
        """The row's true labels as the learner's 0/1 float32 target."""
        return self.truth[row, : self.truth_len[row]].astype(np.float32)


class DriftHandler(Stateful):
    """Watches a partitioned classifier for drift and adapts its label clusters.

    * Performance, per label cluster and globally (:class:`PerformanceDriftMonitor`): a cluster's error
      is ``1 - F1`` of its predicted against its true labels, counted on the instances where the cluster
      is involved (a true or predicted label in it), so rare clusters are not drowned by easy negatives.
      On a warning a *background* set of logistic heads for the cluster's labels starts learning from
      scratch; on a confirmed drift it replaces the cluster's heads (``"background"``), or the
      cluster's heads are reset (``"reset"``, also the fallback when no background heads exist). Either
      way the cluster's heads learn on with step sizes counted from the restart (a converged model's
      AdaGrad steps are too small to relearn a concept quickly), and its stacker rows, label-subset
      counts and neighbour votes start afresh, because the relation they learned no longer holds.
      ``"none"`` only reports.
    * Label priors and cardinality (:class:`LabelPriorDriftDetector`), the input distribution
      (:class:`InputDriftDetector`), the dependence between labels (:class:`LabelDependenceDriftDetector`,
      which sees a change in which labels co-occur long before the partition moves) and the label
      structure (partition changes of the clusterer; changes while the partition is still forming are
      warnings) are reported as alerts; the model follows them through its forgetting components.

    Events come out of :meth:`drain` as :class:`DriftEvent` with label names and the action taken.
    Each detector can be switched off (``watch_*``); without ``watch_performance`` nothing adapts.
    """

    state_settings = (
        "adaptation",
        "performance_delta",
        "warning_delta",
        "watch_performance",
        "watch_inputs",
        "watch_label_priors",
        "watch_label_dependence",
        "cooldown",
        "block",
    )
    state_fields = ("n_adaptations", "_levels", "_keys", "_background_since")
    state_arrays = ("_cluster_index",)
    state_children = ("monitor", "structure", "label_priors", "dependence", "inputs")

    def __init__(
        self,
        *,
        adaptation: Adaptation = "background",
        performance_delta: float = 1e-4,
        warning_delta: float = 1e-2,
        watch_performance: bool = True,
        watch_inputs: bool = True,
        watch_label_priors: bool = True,
        watch_label_dependence: bool = True,
        cooldown: int = 1000,
        block: int = 32,
        structure_formation_age: int = 3000,
    ) -> None:
        if adaptation not in ADAPTATIONS:
            raise ValueError(f"adaptation must be one of {ADAPTATIONS}, not {adaptation!r}")
        self.adaptation = adaptation
        self.performance_delta = performance_delta
        self.warning_delta = warning_delta
        self.watch_performance = watch_performance
        self.watch_inputs = watch_inputs
        self.watch_label_priors = watch_label_priors
        self.cooldown = cooldown
        self.monitor = PerformanceDriftMonitor(
            delta=performance_delta, warning_delta=warning_delta, cooldown=cooldown
        )
        self.watch_label_dependence = watch_label_dependence
        self.label_priors = LabelPriorDriftDetector(cooldown=cooldown) if watch_label_priors else None
        self.dependence = LabelDependenceDriftDetector(cooldown=cooldown) if watch_label_dependence else None
        self.inputs = InputDriftDetector(cooldown=cooldown) if watch_inputs else None
        self.structure = LabelStructureDriftAdapter(formation_age=structure_formation_age)
        self.background: dict[str, tuple[tuple[int, ...], LinearHeads]] = {}
        self.block = block
        self._pending = _Observations(block)
        self._label_strings: list[str] = []  # the label names as strings, by id, for the label prior detector
        self._background_since: dict[str, int] = {}
        self._levels: dict[str, tuple[int, ...]] = {}
        self._keys: list[str] = []
        self._cluster_index = np.zeros(0, dtype=np.int64)
        self._events: list[DriftEvent] = []
        self.n_adaptations = 0

    # ------------------------------------------------------------------ partition

    def set_partition(self, partition: Partition, names: Sequence[Label]) -> None:
        """Follow a new partition: one performance detector per cluster, keyed by its stable key."""
        self._levels = {
            str(key): tuple(int(label) for label in labels)
            for key, labels in zip(partition.cluster_keys, partition.clusters, strict=True)
        }
        self._keys = [str(key) for key in partition.cluster_keys]
        self._cluster_index = np.zeros(partition.n_labels, dtype=np.int64)
        for i, labels in enumerate(partition.clusters):
            self._cluster_index[list(labels)] = i
        self.monitor.set_clusters(
            {level: [str(names[label]) for label in labels] for level, labels in self._levels.items()}
        )
        self.background = {
            level: bg
            for level, bg in self.background.items()
            if level in self._levels and self._levels[level] == bg[0]
        }

    @property
    def watches_instances(self) -> bool:
        """Whether any detector looks at labelled instances (else :meth:`observe` can be skipped)."""
        return (
            self.watch_performance
            or self.watch_inputs
            or self.watch_label_priors
            or (self.dependence is not None)
        )

    # ------------------------------------------------------------------ observing

    def observe(
        self,
        model: AdaptableModel,
        x: Features,
        scaled: Features,
        predicted: np.ndarray,
        truth: np.ndarray,
        label_names: LabelIndex,
        position: int,
    ) -> None:
        """One labelled instance: ``predicted`` is what the model decided before learning it.

        Instances are examined in blocks of ``block`` (the detectors test on blocks of observations
        anyway, and one vectorized pass per block costs a fraction of one per instance), so an event is
        reported up to ``block - 1`` labelled instances after the one that triggered it; its
        ``position`` is exact. ``label_names`` is the model's ``LabelIndex``. Call :meth:`flush` before
        the partition changes.
        """
        self._pending.add(scaled, predicted, truth, position)
        if self._pending.n >= self.block:
            self.flush(model, label_names)

    @property
    def n_pending(self) -> int:
        """Labelled instances observed since the last block was examined."""
        return self._pending.n

    def flush(self, model: AdaptableModel, label_names: LabelIndex) -> None:
        """Run the detectors (and any adaptation) on the instances observed since the last block."""
        pending = self._pending
        n_rows = pending.n
        if not n_rows:
            return
        positions = pending.positions
        width = max(pending.predicted_len)
        predicted = pending.predicted[:n_rows, :width]
        events = (
            self._performance_events(predicted, pending.truth[:n_rows, :width], positions)
            if self.watch_performance
            else []
        )
        for event in sorted(events, key=lambda e: e.position):
            self._handle_performance(model, event)
        for level, (labels, heads) in self.background.items():
            local = np.asarray(labels)
            started = self._background_since.get(level, -1)
            for row in range(n_rows):
                if positions[row] >= started:
                    scaled = pending.scaled[row]
                    target = pending.truth_row(row)[local]
                    heads.learn_logistic(scaled, target)
        truth = pending.truth[:n_rows, : max(pending.truth_len)]
        if self.label_priors is not None:
            names = self._label_strings
            for i in range(len(names), truth.shape[1]):
                names.append(str(label_names.name(i)))
            for event in self.label_priors.update_indicators(truth, names, positions=positions):
                self._emit(event)
        if self.dependence is not None:
            for event in self.dependence.update_many(truth, positions=positions, label_names=label_names):
                self._emit(event)
        if self.inputs is not None:
            dense = pending.dense_rows()
            if dense is not None:
                input_events = self.inputs.update_rows(dense, positions=positions)
            else:
                input_events = self.inputs.update_many(pending.scaled, positions=positions)
            for event in input_events:
                self._emit(event)
        pending.clear()

    def _performance_events(
        self, predicted: np.ndarray, truth: np.ndarray, positions: list[int]
    ) -> list[DriftEvent]:
        """Per-cluster errors (``1 - F1`` where the cluster is involved) and the global error of a block."""
        n_clusters = len(self._keys)
        owner = self._cluster_index[: predicted.shape[1]]
        if n_clusters and owner.shape[0] < predicted.shape[1]:
            raise ValueError(f"decisions over {predicted.shape[1]} labels, a partition of {owner.shape[0]}")
        block = ClusterErrors(predicted, truth, owner, n_clusters)
        events = self.monitor.update_many_global(block.global_error, positions=positions)
        if n_clusters:
            events += self.monitor.update_clusters(self._keys, block, positions)
        return events

    def observe_structure(self, changes: Sequence[StructureChange], label_names: Sequence[Label]) -> None:
        if not changes:  # the common case: no per-instance work proportional to the label count
            return
        names = [str(name) for name in label_names]
        for change in changes:
            self._emit(self.structure.update(change, position=change.position, label_names=names))

    def _emit(self, event: DriftEvent | None) -> None:
        if event is not None:
            self._events.append(event)

    def drain(self) -> list[DriftEvent]:
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------------ adapting

    def _handle_performance(self, model: AdaptableModel, event: DriftEvent) -> None:
        level = event.level
        if level == GLOBAL_LEVEL or self.adaptation == "none":
            self._emit(dataclasses.replace(event, action="alert"))
            return
        labels = self._levels.get(level)
        if labels is None:
            self._emit(dataclasses.replace(event, action="alert"))
            return
        if event.severity == "warning":
            if self.adaptation == "background" and level not in self.background:
                self.background[level] = (labels, model.background_heads())
                self._background_since[level] = event.position
                self._emit(dataclasses.replace(event, action="start_background_learner"))
            else:
                self._emit(dataclasses.replace(event, action="alert"))
            return
        background = self.background.pop(level, None)
        self._background_since.pop(level, None)
        if background is not None and background[1].dim is not None:
            model.replace_cluster_heads(labels, background[1])
            action = "replace_cluster_model"
        else:
            model.reset_cluster(labels)
            action = "reset_cluster_model"
        model.reset_cluster_context(labels)
        self.monitor.reset(level)
        self.n_adaptations += 1
        self._emit(dataclasses.replace(event, action=action))

    # ------------------------------------------------------------------ state

    def _save_state(self, state: State) -> None:
        state.meta["background"] = {level: list(labels) for level, (labels, _) in self.background.items()}
        pending = self._pending
        state.meta["pending_positions"] = list(pending.positions)
        for i in range(pending.n):
            _pack_input(state.arrays, f"pending{i}", pending.scaled[i])
            state.arrays[f"pending{i}/predicted"] = pending.predicted_row(i)
            state.arrays[f"pending{i}/truth"] = pending.truth_row(i)
        for i, (_, heads) in enumerate(self.background.values()):
            state.attach(f"background{i}", heads.state())

    def _load_state(self, state: State) -> None:
        self._levels = {level: tuple(labels) for level, labels in self._levels.items()}
        self._pending = _Observations(self.block)
        for i, position in enumerate(state.meta["pending_positions"]):
            self._pending.add(
                _unpack_input(state.arrays, f"pending{i}"),
                state.arrays[f"pending{i}/predicted"].astype(bool),
                state.arrays[f"pending{i}/truth"],
                int(position),
            )
        self.background = {
            level: (tuple(labels), LinearHeads.from_state(state.detach(f"background{i}")))
            for i, (level, labels) in enumerate(state.meta["background"].items())
        }
