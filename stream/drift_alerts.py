"""Model drift events (``DriftEvent``, from the operators) to ``DriftAlert`` messages.

The event carries every field of the message except the wall-clock ``detected_at`` and the stream
``position``, which only the runtime knows; non-finite statistics (a detector's "no bound yet") become
``null``.
"""

from __future__ import annotations

import math

from labelflow.operators.drift.events import GLOBAL_LEVEL, DriftEvent
from labelflow.stream.messages import DriftAlert, utc_now


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def metric_level(level: str) -> str:
    """The bounded metric label for an alert level: ``global`` or ``cluster`` (never a cluster id)."""
    return "global" if level == GLOBAL_LEVEL else "cluster"


def alert_from_event(event: DriftEvent, *, position: int) -> DriftAlert:
    """The ``DriftAlert`` of one model event, at stream ``position`` (documents read).

    >>> event = DriftEvent(kind="label_structure", level="global", labels=("a", "b"), detector="clusterer",
    ...                    statistic=0.4, threshold=float("inf"), position=7, action="split")
    >>> alert = alert_from_event(event, position=10)
    >>> alert.labels, alert.level, alert.position, alert.threshold
    (['a', 'b'], 'global', 10, None)
    """
    return DriftAlert(
        kind=event.kind,
        level=event.level,
        labels=list(event.labels),
        detector=event.detector,
        statistic=_finite(event.statistic),
        threshold=_finite(event.threshold),
        # The stream position (documents read), not an operator's own count of updates.
        position=position,
        detected_at=utc_now(),
        action=event.action,
        severity=event.severity,
        details=dict(event.details) if event.details else None,
    )
