"""Poison input at the message boundary (issue 13, defect 1): nothing in one record can stop the worker.

Each class of record that used to crash the worker (deep nesting, a lone surrogate escape, a huge
label name) is refused at decode with its own reason, and every output a record causes is serialized
and size-checked before it is produced: what does not fit becomes a dead letter, never an exception.
The processor runs here with in-memory records; tests/integration/test_poison_worker.py sends the same
records through a real worker on the embedded broker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from labelflow.stream.messages import (
    DeadLetter,
    DecodeLimits,
    MessageError,
    Reason,
    decode_document,
    decode_feedback,
)
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.outputs import OutputMessage
from labelflow.stream.processor import BatchProcessor, InputRecord, RuntimeCounters
from labelflow.stream.quality import QualityTracker
from labelflow.stream.testing import POISON_REASONS, poison_records

from .test_processor import DOCS, LABELS, Feed, make_processor, settings

LIMIT = 2_000_000


def nested(depth: int) -> bytes:
    return b'{"id": "d", "text": "t", "meta": {"x": ' + b"[" * depth + b"]" * depth + b"}}"


def reason_of(raw: bytes, decode: Callable[..., Any] = decode_document, **limits: int) -> Reason:
    with pytest.raises(MessageError) as info:
        decode(raw, LIMIT, limits=DecodeLimits(**limits))
    return info.value.reason


@pytest.mark.parametrize("depth", [40, 5_000, 100_000])
def test_deep_nesting_is_refused_with_its_own_reason(depth: int) -> None:
    # 5,000 and 100,000 levels used to raise RecursionError out of the decoder (a crash, not bad input).
    assert reason_of(nested(depth)) is Reason.TOO_DEEP
    assert reason_of(b'{"id": "d", "labels": ' + b"[" * 3_000 + b"]" * 3_000 + b"}", decode_feedback) is (
        Reason.TOO_DEEP
    )


def test_nesting_within_the_limit_is_accepted() -> None:
    assert decode_document(nested(30), LIMIT).meta is not None  # document, meta and 30 lists: 32 levels
    assert reason_of(nested(31)) is Reason.TOO_DEEP
    assert reason_of(nested(5), max_depth=4) is Reason.TOO_DEEP


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "d\\ud800", "text": "t"}',
        b'{"id": "d", "text": "t", "labels": ["a\\uDFFF"]}',
        b'{"id": "d", "text": "bad \\udc80 text"}',
        b'{"id": "d", "text": "t", "meta": {"k\\ud800": 1}}',
    ],
)
def test_lone_surrogate_escapes_are_refused_at_decode(raw: bytes) -> None:
    assert reason_of(raw) is Reason.INVALID_UTF8


def test_a_surrogate_pair_is_a_valid_character() -> None:
    doc = decode_document(b'{"id": "d", "text": "smile \\ud83d\\ude00", "labels": ["\\ud83d\\ude00"]}', LIMIT)
    assert doc.labels == ["\U0001f600"]


def test_label_name_length_and_label_count_are_limited() -> None:
    long_label = json.dumps({"id": "d", "text": "t", "labels": ["x" * 700_000]}).encode()
    assert reason_of(long_label) is Reason.LABEL_TOO_LONG
    assert reason_of(json.dumps({"id": "d", "labels": ["y" * 257]}).encode(), decode_feedback) is (
        Reason.LABEL_TOO_LONG
    )
    assert decode_document(json.dumps({"id": "d", "text": "t", "labels": ["y" * 256]}).encode(), LIMIT)
    many = json.dumps({"id": "d", "text": "t", "labels": [f"l{i}" for i in range(1_001)]}).encode()
    assert reason_of(many) is Reason.TOO_MANY_LABELS
    assert reason_of(
        json.dumps({"id": "d", "labels": ["a", "b", "c"]}).encode(), decode_feedback, max_labels=2
    ) is (Reason.TOO_MANY_LABELS)


BIG_INTEGER = b"1" + b"0" * 400  # a valid JSON integer that float() cannot hold (OverflowError)


@pytest.mark.parametrize(
    "features",
    [b"[" + BIG_INTEGER + b"]", b'{"3": ' + BIG_INTEGER + b"}", b"[1e39, 1]", b'{"3": -1e39}', b"[1e300]"],
)
def test_feature_values_beyond_float32_are_refused_at_decode(features: bytes) -> None:
    # The 400-digit integer used to raise OverflowError out of the decoder (a crash, not bad input); a
    # double above float32's range reached the model as infinity and left its weights NaN for good.
    raw = b'{"id": "d", "features": ' + features + b', "labels": ["a"]}'
    with pytest.raises(MessageError) as info:
        decode_document(raw, LIMIT)
    assert info.value.reason is Reason.INVALID_VALUE
    assert "float32" in str(info.value)


def test_the_largest_float32_values_are_accepted() -> None:
    doc = decode_document(
        b'{"id": "d", "features": [3.4028234663852886e38, -3.4028234663852886e38, 0]}', LIMIT
    )
    assert doc.features == [3.4028234663852886e38, -3.4028234663852886e38, 0.0]


def test_an_unexpected_decoder_failure_dead_letters_the_record_and_the_stream_goes_on(
    double_runtime: Callable[..., ModelRuntime], monkeypatch: pytest.MonkeyPatch
) -> None:
    import labelflow.stream.processor as processor_module

    decode = processor_module.decode_document

    def failing_on_one(raw: bytes, *args: Any, **kwargs: Any) -> Any:
        if b"trigger" in raw:
            raise RuntimeError("a defect in the decoder")
        return decode(raw, *args, **kwargs)

    monkeypatch.setattr(processor_module, "decode_document", failing_on_one)
    processor = make_processor(double_runtime(), settings(max_message_bytes=10_000))
    feed = Feed()
    messages, counters = run(processor, [feed.doc("trigger", "text"), feed.doc("after", "text", ["a"])])
    (letter,) = [DeadLetter.model_validate_json(m.value) for m in messages if m.topic == "t.deadletter"]
    assert letter.reason is Reason.PROCESSING_ERROR
    assert letter.error_message.endswith("decode failed: RuntimeError: a defect in the decoder")
    assert [json.loads(m.value)["id"] for m in messages if m.topic == "t.predictions"] == ["after"]
    assert counters.learned_total == 1


def run(processor: BatchProcessor, records: list[InputRecord]) -> tuple[list[OutputMessage], RuntimeCounters]:
    outcome = processor.process(records)
    return outcome.messages, processor.counters


def test_every_poison_record_becomes_a_dead_letter_and_the_stream_goes_on(
    double_runtime: Callable[..., ModelRuntime],
) -> None:
    s = settings(max_message_bytes=2_000_000)
    processor = make_processor(double_runtime(), s)
    feed = Feed()
    records = [feed.record(topic, value, key) for topic, key, value in poison_records(DOCS, LABELS)]
    records.append(feed.doc("after", "a normal document", ["a"]))
    messages, counters = run(processor, records)
    letters = [DeadLetter.model_validate_json(m.value) for m in messages if m.topic == "t.deadletter"]
    reasons = sorted(letter.reason.value for letter in letters)
    assert reasons == sorted(POISON_REASONS)
    predictions = [json.loads(m.value) for m in messages if m.topic == "t.predictions"]
    assert [p["id"] for p in predictions] == ["after"]
    assert counters.learned_total == 1
    assert all(m.size <= s.max_output_bytes for m in messages)


def test_a_prediction_over_the_output_limit_is_a_dead_letter(
    double_runtime: Callable[..., ModelRuntime],
) -> None:
    s = settings(max_message_bytes=1_000_000, max_output_bytes=10_000)
    processor = make_processor(double_runtime(), s)
    feed = Feed()
    # Learn 60 labels of 200 characters: every prediction scores them all, about 13 KB of JSON.
    labels = [f"{i:03d}" + "x" * 197 for i in range(60)]
    big = [feed.doc(f"d{i}", "some text", labels[i * 6 : i * 6 + 6]) for i in range(10)]
    messages, counters = run(processor, big)
    assert counters.learned_total >= 1
    letters = [DeadLetter.model_validate_json(m.value) for m in messages if m.topic == "t.deadletter"]
    assert letters and {letter.reason for letter in letters} == {Reason.OUTPUT_TOO_LARGE}
    assert "max_output_bytes" in letters[0].error_message
    assert all(m.size <= s.max_output_bytes for m in messages)


def test_a_dead_letter_always_fits_the_output_limit(double_runtime: Callable[..., ModelRuntime]) -> None:
    s = settings(max_message_bytes=1_000_000, max_output_bytes=20_000, dead_letter_max_bytes=500_000)
    processor = make_processor(double_runtime(), s)
    feed = Feed()
    huge_key = b"k" * 100_000
    record = feed.record(DOCS, b"{" + b"x" * 900_000, huge_key)
    messages, _ = run(processor, [record])
    (message,) = messages
    letter = DeadLetter.model_validate_json(message.value)
    assert message.size <= s.max_output_bytes
    assert letter.truncated and letter.value_size == 900_001 and letter.key_truncated
    assert message.key is not None and huge_key.startswith(message.key) and len(message.key) == 1_024


def test_processor_state_counts_dead_letters_by_the_new_reasons(
    double_runtime: Callable[..., ModelRuntime],
) -> None:
    processor = BatchProcessor(
        settings(max_message_bytes=2_000_000),
        double_runtime(),
        make_processor(double_runtime()).store,
        RuntimeCounters(),
        QualityTracker(10),
    )
    feed = Feed()
    run(
        processor, [feed.record(DOCS, nested(2_000)), feed.record(LABELS, b'{"id": "\\ud800", "labels": []}')]
    )
    assert processor.counters.group("dead_letters") == {"too_deep": 1, "invalid_utf8": 1}
