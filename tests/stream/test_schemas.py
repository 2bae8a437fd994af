"""The published JSON Schemas (docs/schemas) match the message models and accept what the worker does."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from labelflow.stream.cli import main
from labelflow.stream.messages import DeadLetter, DriftAlert, MessageError, Prediction, Reason, utc_now
from labelflow.stream.schemas import MESSAGES, stale_schemas, write_schemas

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_committed_schemas_are_up_to_date() -> None:
    assert stale_schemas(SCHEMAS) == [], "docs/schemas is stale: run `make schemas` and commit the result"


def test_a_changed_schema_is_detected_and_the_check_command_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_schemas(tmp_path)
    assert main(["schemas", "--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "prediction.schema.json").write_text("{}\n")
    assert stale_schemas(tmp_path) == ["prediction"]
    assert main(["schemas", "--check", "--out", str(tmp_path)]) == 1
    assert "prediction" in capsys.readouterr().err


def test_every_message_has_a_schema() -> None:
    assert sorted(p.name for p in SCHEMAS.glob("*.schema.json")) == sorted(
        f"{name}.schema.json" for name in MESSAGES
    )


def test_real_reuters_lines_are_valid_documents(datasets_dir: Path) -> None:
    path = datasets_dir / "reuters21578_modapte" / "reuters21578_modapte.jsonl"
    with path.open() as handle:
        lines = [json.loads(line) for line in itertools.islice(handle, 50)]
    check = validator("document")
    for line in lines:
        check.validate(line)
    assert not check.is_valid({"id": 7, "text": "an id must be a string"})
    assert not check.is_valid({"text": "no id"})


def test_output_messages_validate_against_their_schemas() -> None:
    now = utc_now()
    prediction = Prediction(
        id="d1",
        labels=["a"],
        scores={"a": 0.9},
        model_version=3,
        partition_version=1,
        latency_ms=2.0,
        produced_at=now,
    )
    alert = DriftAlert(kind="performance", level="3", detector="adwin", detected_at=now, statistic=0.2)
    letter = DeadLetter.from_record(
        topic="t",
        partition=0,
        offset=4,
        key=None,
        value=b"{",
        error=MessageError(Reason.INVALID_JSON, "x"),
        max_bytes=10,
    )
    for name, message in (("prediction", prediction), ("drift_alert", alert), ("dead_letter", letter)):
        check = validator(name)
        check.validate(json.loads(message.to_bytes()))
        assert not check.is_valid({**json.loads(message.to_bytes()), "unexpected": 1})
