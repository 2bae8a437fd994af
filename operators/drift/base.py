"""The drift detector role: feed it one observation at a time, get a ``DriftEvent`` back when it fires.

Every detector:

- ``update(x, position=None) -> DriftEvent | None`` and ``update_many(xs, positions=None) -> list``;
- watches one ``level`` (``"global"`` or a label-cluster id) and names the ``labels`` it covers;
- applies a cool-down: after an emitted event, further events within ``cooldown`` of its own
  observations are suppressed (counted in ``n_suppressed``), so a flapping detector cannot flood alerts;
- round-trips through ``state()`` / ``from_state()`` (JSON meta + numpy arrays, never pickle; derived
  from declared fields, see :class:`~labelflow.operators.state.Stateful`);
  ``detector_from_state`` rebuilds any detector from its state.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from labelflow.operators.drift.events import GLOBAL_LEVEL, DriftEvent, Severity
from labelflow.operators.state import State, Stateful

STATE_FORMAT = 1


#: Constructor arguments of the detectors that compare a test window of blocks with a reference window.
BLOCK_WINDOW_SETTINGS = ("block_size", "test_blocks", "reference_blocks", "min_reference_blocks", "alpha")


def check_block_windows(
    block_size: int,
    test_blocks: Sequence[int],
    reference_blocks: int,
    min_reference_blocks: int,
    alpha: float,
) -> None:
    """Validate the parameters of a detector that compares a test window of blocks with a reference window."""
    if block_size < 1 or not test_blocks or min(test_blocks) < 1:
        raise ValueError(f"block_size and test_blocks must be >= 1, got {block_size}, {list(test_blocks)}")
    if not 1 <= min_reference_blocks <= reference_blocks:
        raise ValueError(
            f"need 1 <= min_reference_blocks <= reference_blocks, got {min_reference_blocks}, {reference_blocks}"
        )
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


class DriftDetector(abc.ABC, Stateful):
    """Base class of the drift detectors; subclasses set ``kind`` and implement ``_observe``.

    Subclasses also implement ``_reset`` and declare their state (:class:`Stateful`): their constructor
    arguments extend ``state_settings``, stored under ``params``; what they learn extends
    ``state_fields`` / ``state_arrays`` or is written by ``_save_state`` / ``_load_state``.
    """

    state_settings_key = "params"
    state_settings: ClassVar[tuple[str, ...]] = ("level", "labels", "cooldown")
    state_fields: ClassVar[tuple[str, ...]] = ("n_seen", "n_events", "n_suppressed", "_last_event_at")

    #: The ``DriftEvent.kind`` this detector emits.
    kind: ClassVar[str]

    def __init__(
        self, *, level: str | int = GLOBAL_LEVEL, labels: Iterable[str] = (), cooldown: int = 0
    ) -> None:
        if cooldown < 0:
            raise ValueError(f"cooldown must be >= 0 observations, got {cooldown}")
        self.level = str(level)
        self.labels = tuple(str(label) for label in labels)
        self.cooldown = int(cooldown)
        self.n_seen = 0
        self.n_events = 0
        self.n_suppressed = 0
        self._last_event_at: int | None = None

    # ------------------------------------------------------------------ the verbs

    def update(self, x: Any, *, position: int | None = None) -> DriftEvent | None:
        """Observe one item; return an event when the detector fires (and is not cooling down)."""
        index = self.n_seen
        self.n_seen += 1
        event = self._observe(x, index if position is None else int(position))
        return self._gate(event)

    def update_many(self, xs: Sequence[Any], *, positions: Sequence[int] | None = None) -> list[DriftEvent]:
        """Observe a batch in order; return the events it produced (usually none)."""
        if positions is not None and len(positions) != len(xs):
            raise ValueError(f"got {len(xs)} observations but {len(positions)} positions")
        events = []
        for i, x in enumerate(xs):
            event = self.update(x, position=None if positions is None else positions[i])
            if event is not None:
                events.append(event)
        return events

    def reset(self) -> None:
        """Forget everything observed (parameters stay)."""
        self.n_seen = 0
        self.n_events = 0
        self.n_suppressed = 0
        self._last_event_at = None
        self._reset()

    @abc.abstractmethod
    def _observe(self, x: Any, position: int) -> DriftEvent | None:
        """Update with one observation (``self.n_seen`` already counts it)."""

    @abc.abstractmethod
    def _reset(self) -> None:
        """Drop the learned statistics."""

    # ------------------------------------------------------------------ events

    def _event(
        self,
        *,
        statistic: float,
        threshold: float,
        position: int,
        action: str,
        severity: Severity = "drift",
        labels: Iterable[str] | None = None,
        details: dict | None = None,
        detector: str | None = None,
    ) -> DriftEvent:
        return DriftEvent(
            kind=self.kind,  # type: ignore[arg-type]
            level=self.level,
            labels=tuple(self.labels if labels is None else labels),
            detector=detector or type(self).__name__,
            statistic=float(statistic),
            threshold=float(threshold),
            position=int(position),
            action=action,
            severity=severity,
            details=details or {},
        )

    def _gate(self, event: DriftEvent | None, seen: int | None = None) -> DriftEvent | None:
        """Apply the cool-down; ``seen`` is the observation count at the triggering observation
        (default ``n_seen``; batch updates pass it because they count the whole batch first)."""
        if event is None:
            return None
        seen = self.n_seen if seen is None else seen
        if self._last_event_at is not None and seen - self._last_event_at <= self.cooldown:
            self.n_suppressed += 1
            return None
        if event.severity == "drift":
            # Only a confirmed drift starts a cool-down; a warning must not hide the drift it announces.
            self._last_event_at = seen
        self.n_events += 1
        return event

    # ------------------------------------------------------------------ state

    @classmethod
    def _state_header(cls) -> dict[str, Any]:
        return {"detector": cls.__name__, "format": STATE_FORMAT}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(level={self.level!r}, n_seen={self.n_seen}, n_events={self.n_events})"


def detector_from_state(state: State) -> DriftDetector:
    """Rebuild whichever detector wrote ``state``."""
    name = state.meta.get("detector")
    known = {cls.__name__: cls for cls in _concrete_detector_classes()}
    if name not in known:
        raise ValueError(f"unknown drift detector {name!r} in state; known: {sorted(known)}")
    return known[name].from_state(state)


def _concrete_detector_classes() -> list[type[DriftDetector]]:
    """Every concrete subclass of :class:`DriftDetector`, depth first."""
    found: list[type[DriftDetector]] = []
    pending = list(reversed(DriftDetector.__subclasses__()))
    while pending:
        sub = pending.pop()
        if not getattr(sub, "__abstractmethods__", None):
            found.append(sub)
        pending.extend(reversed(sub.__subclasses__()))
    return found
