"""Label-structure drift: every change of the label partition becomes a ``DriftEvent``.

The label clusterer (``labelflow.operators.labels.clustering.LabelClusterer``) already decides when the
partition changes (split, merge, a new label) and reports ``StructureChange`` records; this adapter only
turns them into the common event type, with label ids mapped to names, so that the runtime handles all
drift alike. It reads the records structurally (any object or mapping with the fields below), so it
does not depend on the clusterer's module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from labelflow.operators.drift.base import DriftDetector
from labelflow.operators.drift.events import GLOBAL_LEVEL, DriftEvent

_REQUIRED = ("action", "position", "version_before", "version_after", "labels", "statistic", "threshold")


class StructureChangeLike(Protocol):
    """What the adapter reads from a partition change (``LabelClusterer``'s ``StructureChange``)."""

    action: str
    position: int
    version_before: int
    version_after: int
    labels: Sequence[int] | Sequence[str]
    statistic: float
    threshold: float


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
    level, labels, cooldown
        See ``DriftDetector``.

    ``update(change, position=None, label_names=None)``: ``label_names`` maps integer label ids to names
    (ids without a name, or all of them when it is ``None``, are written as ``str(id)``); ``position``
    defaults to the change's own ``position``. The event statistic and threshold are the change's.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> change = SimpleNamespace(action="split", position=1500, version_before=3, version_after=4,
    ...                          labels=(0, 2), statistic=0.41, threshold=0.12, reason="hoeffding")
    >>> event = LabelStructureDriftAdapter().update(change, label_names=["grain", "corn", "wheat"])
    >>> event.kind, event.labels, event.action, event.position, event.details["version_after"]
    ('label_structure', ('grain', 'wheat'), 'repartition:split', 1500, 4)
    """

    kind = "label_structure"

    def __init__(
        self,
        *,
        source: str = "LabelClusterer",
        action_prefix: str = "repartition",
        skip_actions: Iterable[str] = (),
        level: str | int = GLOBAL_LEVEL,
        labels: Iterable[str] = (),
        cooldown: int = 0,
    ) -> None:
        super().__init__(level=level, labels=labels, cooldown=cooldown)
        self.source = source
        self.action_prefix = action_prefix
        self.skip_actions = tuple(sorted(set(skip_actions)))
        self.n_skipped = 0
        self._label_names: Sequence[str] | None = None

    def update(  # type: ignore[override]
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
        return self._event(
            statistic=float(fields["statistic"]),
            threshold=float(fields["threshold"]),
            position=position,
            action=f"{self.action_prefix}:{fields['action']}",
            labels=labels,
            details=details,
            detector=self.source,
        )

    def update_many(  # type: ignore[override]
        self,
        changes: Sequence[StructureChangeLike | Mapping[str, Any]],
        *,
        positions: Sequence[int] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> list[DriftEvent]:
        events = []
        for i, change in enumerate(changes):
            event = self.update(change, position=None if positions is None else positions[i], label_names=label_names)
            if event is not None:
                events.append(event)
        return events

    def _reset(self) -> None:
        self.n_skipped = 0

    def _params(self) -> dict:
        return {"source": self.source, "action_prefix": self.action_prefix, "skip_actions": list(self.skip_actions)}

    def _save_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        meta["n_skipped"] = self.n_skipped

    def _load_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.n_skipped = int(meta["n_skipped"])


def _read(change: Any) -> dict[str, Any]:
    if isinstance(change, Mapping):
        fields = dict(change)
    else:
        fields = {name: getattr(change, name) for name in (*_REQUIRED, "reason") if hasattr(change, name)}
    missing = [name for name in _REQUIRED if name not in fields]
    if missing:
        raise TypeError(f"not a structure change: {type(change).__name__} lacks {missing}")
    return fields


def _label_name(label: Any, names: Sequence[str] | None) -> str:
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and names is not None:
        if 0 <= int(label) < len(names):
            return str(names[int(label)])
    return str(label)

