"""The event every drift detector emits: what drifted, where, how sure, and what to do about it.

It carries the fields of the product's ``DriftAlert`` message (ARCHITECTURE.md, "Messages") except the
wall-clock ``detected_at``, which the runtime adds when it publishes the alert.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

DriftEventKind = Literal["performance", "label_prior", "label_structure", "input"]
Severity = Literal["warning", "drift"]

EVENT_KINDS: tuple[str, ...] = ("performance", "label_prior", "label_structure", "input")
SEVERITIES: tuple[str, ...] = ("warning", "drift")

#: The ``level`` of a detector that watches the whole model rather than one label cluster.
GLOBAL_LEVEL = "global"


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """One detection.

    Parameters
    ----------
    kind
        ``performance`` (the error rose), ``label_prior`` (label frequencies or cardinality moved, a new
        label appeared), ``label_structure`` (the label partition changed) or ``input`` (the feature
        distribution moved).
    level
        ``"global"`` or the id of the label cluster the detector watches.
    labels
        The labels affected (empty when the detector cannot tell).
    detector
        Name of the detector class that fired.
    statistic, threshold
        The test statistic and the value it crossed (``statistic > threshold`` means detection; each
        detector documents its statistic).
    position
        Where it fired: the caller's position when given to ``update``, else the 0-based index of the
        triggering instance in the detector's own input.
    action
        What the detector recommends or the caller did (e.g. ``start_background_learner``); callers
        record the action actually taken with ``dataclasses.replace``.
    severity
        ``warning`` (evidence is building: start preparing, e.g. a background learner) or ``drift``.
    details
        Detector-specific, JSON-serialisable facts (e.g. the estimated change point, means before and
        after).

    Examples
    --------
    >>> event = DriftEvent(kind="input", level="global", labels=(), detector="InputDriftDetector",
    ...                    statistic=0.31, threshold=0.12, position=4096, action="alert")
    >>> DriftEvent.from_dict(event.to_dict()) == event
    True
    """

    kind: DriftEventKind
    level: str
    labels: tuple[str, ...]
    detector: str
    statistic: float
    threshold: float
    position: int
    action: str
    severity: Severity = "drift"
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"drift event kind must be one of {EVENT_KINDS}, got {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"drift event severity must be one of {SEVERITIES}, got {self.severity!r}")
        if not isinstance(self.labels, tuple):
            object.__setattr__(self, "labels", tuple(self.labels))
        if not isinstance(self.level, str):
            object.__setattr__(self, "level", str(self.level))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (non-finite statistics become ``None``)."""
        out = asdict(self)
        out["labels"] = list(self.labels)
        for key in ("statistic", "threshold"):
            if not math.isfinite(out[key]):
                out[key] = None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftEvent:
        data = dict(data)
        for key in ("statistic", "threshold"):
            if data.get(key) is None:
                data[key] = math.inf
        data["labels"] = tuple(data.get("labels", ()))
        return cls(**data)
