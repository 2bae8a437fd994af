"""Model events (partition changes, detector firings) to ``DriftAlert`` messages.

Operators report events as plain objects or dicts (they do not know the message schema); this module
reads the fields it knows — ``kind``, ``level``, ``labels``, ``detector``, ``statistic``, ``threshold``,
``position``, ``action`` — and maps label ids to names.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from labelflow.stream.messages import DriftAlert, utc_now

_KINDS = {"performance", "label_prior", "label_structure", "input"}


def _fields(event: Any) -> dict[str, Any]:
    if isinstance(event, Mapping):
        return dict(event)
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return (
        {k: v for k, v in vars(event).items() if not k.startswith("_")} if hasattr(event, "__dict__") else {}
    )


def _label_names(raw: Any, names: Sequence[str]) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, (str, int)):
        raw = [raw]
    out = []
    for label in raw:
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(names):
            out.append(str(names[label]))
        else:
            out.append(str(label))
    return out


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def metric_level(level: str) -> str:
    """The bounded metric label for an alert level: ``global`` or ``cluster`` (never a cluster id)."""
    return "global" if level == "global" else "cluster"


def alert_from_event(event: Any, *, label_names: Sequence[str], position: int) -> DriftAlert:
    """A ``DriftAlert`` for one model event at stream ``position`` (an unknown kind becomes ``label_structure``).

    >>> alert = alert_from_event({"kind": "label_structure", "labels": [0, 1], "action": "split"},
    ...                          label_names=["a", "b"], position=10)
    >>> alert.labels, alert.level, alert.position
    (['a', 'b'], 'global', 10)
    """
    if isinstance(event, DriftAlert):
        return event
    f = _fields(event)
    kind = str(f.get("kind") or "label_structure")
    if kind not in _KINDS:
        # Partition splits and merges arrive with their own verbs; they are all structure changes.
        f.setdefault("action", kind)
        kind = "label_structure"
    level = f.get("level", "global")
    level = "global" if level in (None, "global") else str(level)
    statistic = f.get("statistic")
    threshold = f.get("threshold")
    action = f.get("action")
    severity = f.get("severity") or "drift"
    details = f.get("details")
    return DriftAlert(
        kind=kind,  # type: ignore[arg-type]
        level=level,
        labels=_label_names(f.get("labels"), label_names),
        detector=str(f.get("detector") or type(event).__name__),
        statistic=_finite(statistic),
        threshold=_finite(threshold),
        # The stream position (documents read), not an operator's own count of updates.
        position=position,
        detected_at=utc_now(),
        action=None if action is None else str(action),
        severity=severity if severity in ("warning", "drift") else "drift",
        details=dict(details) if isinstance(details, Mapping) and details else None,
    )
