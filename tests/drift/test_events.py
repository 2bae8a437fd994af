"""The drift event type: validation and its JSON form."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from labelflow.operators.drift import DriftEvent


def make(**overrides) -> DriftEvent:
    fields = dict(
        kind="performance",
        level="global",
        labels=("a",),
        detector="D",
        statistic=0.5,
        threshold=0.1,
        position=10,
        action="replace_model",
    )
    return DriftEvent(**{**fields, **overrides})


def test_json_round_trip_keeps_every_field_including_infinite_statistics():
    event = make(statistic=math.inf, severity="warning", details={"mean_before": 0.1})
    data = json.loads(json.dumps(event.to_dict()))
    assert data["statistic"] is None and data["labels"] == ["a"]
    back = DriftEvent.from_dict(data)
    assert back == event and back.details == {"mean_before": 0.1}


def test_labels_and_level_are_normalised():
    event = make(labels=["x", "y"], level=3)
    assert event.labels == ("x", "y") and event.level == "3"


def test_invalid_kind_and_severity_are_refused():
    with pytest.raises(ValueError, match="kind"):
        make(kind="quality")
    with pytest.raises(ValueError, match="severity"):
        make(severity="critical")


def test_the_action_taken_is_recorded_with_replace():
    event = make()
    assert replace(event, action="background_learner_swapped").action == "background_learner_swapped"


def test_the_runtime_turns_events_into_drift_alert_messages():
    from labelflow.stream.drift_alerts import alert_from_event

    alert = alert_from_event(make(labels=("wheat",)), position=1234)
    assert (
        alert.kind,
        alert.level,
        alert.labels,
        alert.detector,
        alert.statistic,
        alert.threshold,
        alert.action,
    ) == ("performance", "global", ["wheat"], "D", 0.5, 0.1, "replace_model")
