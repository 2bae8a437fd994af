"""Label-structure drift: every change of the label partition becomes a ``DriftEvent``.

The label clusterer (``labelflow.operators.labels.clustering.LabelClusterer``) already decides when the
partition changes (split, merge, a new label) and reports ``StructureChange`` records; this adapter
turns them into the common event type, with label ids mapped to names, so that the runtime handles all
drift alike. It reads the records structurally (any object or mapping with the fields below), so it
does not depend on the clusterer's module.

Not every partition change is drift. While the partition is still *forming* (the clusterer has just
started, or some of the labels involved are new or rare) the clusterer places labels as evidence
arrives: those changes are published as ``severity="warning"`` events with ``details["phase"] =
"formation"``; only changes of a settled partition are ``"drift"`` (``phase = "mature"``), which the
runtime counts as detections. Changes of the label *dependence* itself are detected much sooner,
directly from the label sets, by ``LabelDependenceDriftDetector``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from labelflow.operators.drift.base import DriftDetector
from labelflow.operators.drift.events import GLOBAL_LEVEL, DriftEvent

_REQUIRED = ("action", "position", "version_before", "version_after", "labels", "statistic", "threshold")
_OPTIONAL = ("reason", "min_label_age", "min_label_count")


class StructureChangeLike(Protocol):
    """What the adapter reads from a partition change (``LabelClusterer``'s ``StructureChange``)."""

    @property
    def action(self) -> str: ...
    @property
    def position(self) -> int: ...
    @property
    def version_before(self) -> int: ...
    @property
    def version_after(self) -> int: ...
    @property
    def labels(self) -> Sequence[int] | Sequence[str]: ...
    @property
    def statistic(self) -> float: ...
    @property
    def threshold(self) -> float: ...

    # Optional (read when present): reason, min_label_age, min_label_count.


class LabelStructureDriftAdapter(DriftDetector):
    """Turns label-partition changes into ``label_structure`` drift events.

    Parameters
    ----------
    source
        The ``detector`` name written into events (the component that decided the change).
    action_prefix
        Events get ``action = f"{action_prefix}:{change.action}"``, e.g. ``repartition:split``.
    skip_actions
        Change actions that produce no event (e.g. ``("new_label",)`` when new labels are reported by
        the label prior detector instead).
    formation_age
        A change is part of the partition's formation while its youngest label joined the partition
        fewer than this many instances ago (the change's ``min_label_age``; for records without it, the
        clusterer's own ``position``, which bounds every label's age). 3,000 is three memories of the
        clusterer's default fading (``fading_factor=0.999``: 1,000 instances), after which a label's
        faded counts carry 95% of their stationary weight. Measured: on 5 x 100,000 stationary
        synthetic documents all 36 partition changes came before instance 2,840.
    formation_count
        A change is also part of the formation while one of its labels has a faded count
        (``min_label_count``, about its positives among the last 1,000 instances) below this: the
        clusterer is still placing a rare label. 30: on stationary synthetic streams with 48 and 96
        labels (6 x 30,000 documents), 124 of the 128 changes past ``formation_age`` involved such a
        label, while after a sudden label-correlation change (20 streams) 98 of the 99 changes
        involved none. Records without the field skip this test.
    level, labels, cooldown
        See ``DriftDetector``.

    ``update(change, position=None, label_names=None)``: ``label_names`` maps integer label ids to names
    (ids without a name, or all of them when it is ``None``, are written as ``str(id)``); ``position``
    defaults to the change's own ``position``. The event statistic and threshold are the change's.

    Severity: ``"warning"`` with ``details["phase"] = "formation"`` for ``new_label`` changes and for
    changes made while the partition is forming (see ``formation_age`` and ``formation_count``),
    otherwise ``"drift"`` with ``details["phase"] = "mature"``. Warnings are published but not counted
    as detections by the runtime, and do not start the cool-down.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> change = SimpleNamespace(action="split", position=4500, version_before=3, version_after=4,
    ...                          labels=(0, 2), statistic=0.41, threshold=0.12, reason="separation",
    ...                          min_label_age=4480, min_label_count=212.5)
    >>> adapter = LabelStructureDriftAdapter()
    >>> event = adapter.update(change, label_names=["grain", "corn", "wheat"])
    >>> event.kind, event.labels, event.action, event.position, event.details["version_after"]
    ('label_structure', ('grain', 'wheat'), 'repartition:split', 4500, 4)
    >>> event.severity, event.details["phase"]
    ('drift', 'mature')

    The same split early in the stream, while the clusterer is still forming its partition:

    >>> early = SimpleNamespace(**{**vars(change), "position": 900, "min_label_age": 880})
    >>> event = adapter.update(early, label_names=["grain", "corn", "wheat"])
    >>> event.severity, event.details["phase"], event.action
    ('warning', 'formation', 'repartition:split')
    """

    kind = "label_structure"

    state_settings = (
        *DriftDetector.state_settings,
        "source",
        "action_prefix",
        "skip_actions",
        "formation_age",
        "formation_count",
    )
    state_fields = (*DriftDetector.state_fields, "n_skipped")

    def __init__(
        self,
        *,
        source: str = "LabelClusterer",
        action_prefix: str = "repartition",
        skip_actions: Iterable[str] = (),
        formation_age: int = 3000,
        formation_count: float = 30.0,
        level: str | int = GLOBAL_LEVEL,
        labels: Iterable[str] = (),
        cooldown: int = 0,
    ) -> None:
        super().__init__(level=level, labels=labels, cooldown=cooldown)
        if formation_age < 0 or formation_count < 0:
            raise ValueError(
                f"formation_age and formation_count must be >= 0, got {formation_age}, {formation_count}"
            )
        self.source = source
        self.action_prefix = action_prefix
        self.skip_actions = tuple(sorted(set(skip_actions)))
        self.formation_age = int(formation_age)
        self.formation_count = float(formation_count)
        self.n_skipped = 0
        self._label_names: Sequence[str] | None = None

    def update(
        self,
        change: StructureChangeLike | Mapping[str, Any],
        *,
        position: int | None = None,
        label_names: Sequence[str] | None = None,
    ) -> DriftEvent | None:
        """Observe one partition change; return its event (``None`` when skipped or cooling down)."""
        fields = _read(change)
        # The caller's position wins; otherwise the clusterer's own count of learned instances.
        where = int(fields["position"]) if position is None else int(position)
        self._label_names = label_names
        try:
            return super().update(fields, position=where)
        finally:
            self._label_names = None

    def _observe(self, fields: dict[str, Any], position: int) -> DriftEvent | None:
        if fields["action"] in self.skip_actions:
            self.n_skipped += 1
            return None
        labels = [_label_name(label, self._label_names) for label in fields["labels"]]
        details = {
            "structure_action": fields["action"],
            "version_before": int(fields["version_before"]),
            "version_after": int(fields["version_after"]),
            "clusterer_position": int(fields["position"]),
        }
        if fields.get("reason"):
            details["reason"] = str(fields["reason"])
        age = fields.get("min_label_age")
        count = fields.get("min_label_count")
        if age is not None:
            details["min_label_age"] = int(age)
        if count is not None:
            details["min_label_count"] = round(float(count), 3)
        forming = self._forming(fields["action"], int(fields["position"]) if age is None else int(age), count)
        details["phase"] = "formation" if forming else "mature"
        return self._event(
            statistic=float(fields["statistic"]),
            threshold=float(fields["threshold"]),
            position=position,
            action=f"{self.action_prefix}:{fields['action']}",
            severity="warning" if forming else "drift",
            labels=labels,
            details=details,
            detector=self.source,
        )

    def _forming(self, action: str, age: int, count: float | None) -> bool:
        """Whether a change belongs to the partition's formation (see the class docstring)."""
        if action == "new_label" or age < self.formation_age:
            return True
        return count is not None and float(count) < self.formation_count

    def update_many(
        self,
        changes: Sequence[StructureChangeLike | Mapping[str, Any]],
        *,
        positions: Sequence[int] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> list[DriftEvent]:
        events = []
        for i, change in enumerate(changes):
            event = self.update(
                change, position=None if positions is None else positions[i], label_names=label_names
            )
            if event is not None:
                events.append(event)
        return events

    def _reset(self) -> None:
        self.n_skipped = 0


def _read(change: Any) -> dict[str, Any]:
    if isinstance(change, Mapping):
        fields = dict(change)
    else:
        fields = {name: getattr(change, name) for name in (*_REQUIRED, *_OPTIONAL) if hasattr(change, name)}
    missing = [name for name in _REQUIRED if name not in fields]
    if missing:
        raise TypeError(f"not a structure change: {type(change).__name__} lacks {missing}")
    return fields


def _label_name(label: Any, names: Sequence[str] | None) -> str:
    if (
        isinstance(label, (int, np.integer))
        and not isinstance(label, bool)
        and names is not None
        and 0 <= int(label) < len(names)
    ):
        return str(names[int(label)])
    return str(label)
