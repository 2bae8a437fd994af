"""Interface checks every drift detector must pass (river's ``check_estimator`` idea, for detectors).

A ``DetectorCase`` pairs a detector factory with a stream that contains at least one drift the
detector should see. Each check takes a case and raises ``AssertionError`` naming what broke; the test
suite runs ``DETECTOR_CHECKS`` over every detector.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelflow.operators.drift.base import DriftDetector, detector_from_state
from labelflow.operators.drift.events import EVENT_KINDS, SEVERITIES, DriftEvent
from labelflow.operators.state import State


@dataclass(frozen=True)
class DetectorCase:
    """``make(**overrides)`` builds a fresh detector; ``stream`` is a list of observations with a drift."""

    name: str
    make: Callable[..., DriftDetector]
    stream: Sequence[Any]


def _run(detector: DriftDetector, stream: Sequence[Any], start: int = 0) -> list[DriftEvent]:
    events = []
    for i, x in enumerate(stream):
        event = detector.update(x, position=start + i)
        if event is not None:
            events.append(event)
    return events


def _same(a: list[DriftEvent], b: list[DriftEvent], what: str) -> None:
    assert len(a) == len(b), f"{what}: {len(a)} events vs {len(b)}"
    for x, y in zip(a, b, strict=True):
        assert (x.kind, x.level, x.labels, x.position, x.severity, x.action) == (
            y.kind,
            y.level,
            y.labels,
            y.position,
            y.severity,
            y.action,
        ), f"{what}: {x} != {y}"
        assert math.isclose(x.statistic, y.statistic, rel_tol=1e-5, abs_tol=1e-9), (
            f"{what}: statistic {x.statistic} != {y.statistic}"
        )


def check_fires_on_drift(case: DetectorCase) -> None:
    events = _run(case.make(), case.stream)
    drifts = [e for e in events if e.severity == "drift"]
    assert drifts, f"{case.name}: no drift event on a stream with a drift"
    for event in events:
        assert event.kind in EVENT_KINDS and event.severity in SEVERITIES
        assert event.statistic > event.threshold or event.kind == "label_structure", (
            f"{case.name}: event statistic {event.statistic} does not exceed its threshold {event.threshold}"
        )
        json.dumps(event.to_dict())  # events go on the wire as JSON


def check_deterministic(case: DetectorCase) -> None:
    _same(_run(case.make(), case.stream), _run(case.make(), case.stream), f"{case.name} run twice")


def check_batch_equals_one_by_one(case: DetectorCase) -> None:
    one_by_one = _run(case.make(), case.stream)
    detector = case.make()
    batched: list[DriftEvent] = []
    for start in range(0, len(case.stream), 97):  # an odd batch size crosses every internal block edge
        chunk = list(case.stream[start : start + 97])
        batched += detector.update_many(chunk, positions=list(range(start, start + len(chunk))))
    _same(one_by_one, batched, f"{case.name} update_many vs update")
    assert detector.n_seen == len(case.stream)


def check_state_round_trip(case: DetectorCase) -> None:
    half = len(case.stream) // 2
    original = case.make()
    _run(original, case.stream[:half])
    state = original.state()
    json.dumps(state.meta)  # the checkpoint's meta is JSON
    with tempfile.TemporaryDirectory() as directory:
        state.save(Path(directory))
        loaded = State.load(Path(directory))
    restored = detector_from_state(loaded)
    assert type(restored) is type(original)
    assert restored.n_seen == original.n_seen
    _same(
        _run(original, case.stream[half:], start=half),
        _run(restored, case.stream[half:], start=half),
        f"{case.name} continued after a state round trip",
    )


def check_rejects_foreign_state(case: DetectorCase) -> None:
    state = case.make().state()
    state.meta["detector"] = "SomethingElse"
    try:
        type(case.make()).from_state(state)
    except ValueError:
        return
    raise AssertionError(f"{case.name}: from_state accepted a state of another detector")


def check_reset(case: DetectorCase) -> None:
    detector = case.make()
    _run(detector, case.stream)
    detector.reset()
    assert detector.n_seen == 0 and detector.n_events == 0
    _same(_run(detector, case.stream), _run(case.make(), case.stream), f"{case.name} after reset")


def check_cooldown(case: DetectorCase) -> None:
    free = [e for e in _run(case.make(), case.stream) if e.severity == "drift"]
    cooled = case.make(cooldown=len(case.stream))
    drifts = [e for e in _run(cooled, case.stream) if e.severity == "drift"]
    assert len(drifts) == 1, f"{case.name}: {len(drifts)} drift events within one cool-down"
    assert drifts[0].position == free[0].position
    assert cooled.n_suppressed >= len(free) - 1


DETECTOR_CHECKS: tuple[Callable[[DetectorCase], None], ...] = (
    check_fires_on_drift,
    check_deterministic,
    check_batch_equals_one_by_one,
    check_state_round_trip,
    check_rejects_foreign_state,
    check_reset,
    check_cooldown,
)
