"""Output messages written without building their models: the same bytes as the models write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelflow.stream.messages import MessageError, Prediction, utc_now
from labelflow.stream.outputs import prediction_bytes, serialize

_NAMES = st.text(max_size=6) | st.sampled_from(["\ud800", "a\udcff", 'é\u2028"\\/\x00'])
_FLOATS = st.floats() | st.sampled_from([0.1, -0.0, 1e-300, 5e-324, 1.0000000000000002])


def _written(write: Any, fields: dict[str, Any]) -> object:
    try:
        return write(fields)
    except MessageError as exc:
        return exc.reason


def _by_the_model(fields: dict[str, Any]) -> bytes:
    return serialize(Prediction(**fields))


def test_the_fields_are_the_predictions_in_its_order() -> None:
    # prediction_bytes spells the fields out; a field added to Prediction must be added there too.
    fields = dict(id="d", labels=[], scores={}, model_version=0, partition_version=0, latency_ms=0.0)
    written = prediction_bytes(**fields, produced_at=utc_now())
    assert list(Prediction.model_validate_json(written).model_dump()) == list(Prediction.model_fields)
    assert (
        written
        == Prediction(**fields, produced_at=Prediction.model_validate_json(written).produced_at).to_bytes()
    )


@settings(max_examples=300, deadline=None)
@given(
    id=_NAMES,
    labels=st.lists(_NAMES, max_size=3),
    scores=st.dictionaries(_NAMES, _FLOATS, max_size=4),
    model_version=st.integers(min_value=0, max_value=2**70),
    partition_version=st.integers(min_value=0, max_value=10**6),
    latency_ms=_FLOATS,
    microsecond=st.integers(min_value=0, max_value=999_999),
)
def test_prediction_bytes_are_the_models_bytes(
    id: str,
    labels: list[str],
    scores: dict[str, float],
    model_version: int,
    partition_version: int,
    latency_ms: float,
    microsecond: int,
) -> None:
    fields = dict(
        id=id,
        labels=labels,
        scores=scores,
        model_version=model_version,
        partition_version=partition_version,
        latency_ms=latency_ms,
        produced_at=datetime(2026, 12, 3, 18, 30, 5, microsecond, tzinfo=UTC),
    )
    assert _written(lambda f: prediction_bytes(**f), fields) == _written(_by_the_model, fields)


@pytest.mark.parametrize("name", ["\ud800", "x\udfff"])
def test_a_name_without_a_utf8_form_is_refused_as_the_model_refuses_it(name: str) -> None:
    fields = dict(
        id=name,
        labels=[],
        scores={},
        model_version=0,
        partition_version=0,
        latency_ms=0.0,
        produced_at=utc_now(),
    )
    with pytest.raises(MessageError) as info:
        prediction_bytes(**fields)
    assert info.value.reason.value == "output_invalid"
