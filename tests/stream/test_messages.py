"""Message schemas: strict validation of every kind of bad input, with a reason code per kind."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelflow.stream import messages
from labelflow.stream.messages import (
    DEFAULT_LIMITS,
    EXTRA_FIELDS_POLICIES,
    DeadLetter,
    DecodeLimits,
    Document,
    DriftAlert,
    LabelFeedback,
    MessageError,
    Prediction,
    Reason,
    _parse_common_json,
    decode_document,
    decode_feedback,
    utc_now,
)

LIMIT = 1_000


def reason_of(raw: bytes | None, decode=decode_document) -> Reason:
    with pytest.raises(MessageError) as info:
        decode(raw, LIMIT)
    return info.value.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"id": "a", "text": ', Reason.INVALID_JSON),
        (b'{"id": "a", "features": [NaN]}', Reason.INVALID_JSON),
        (b'{"id": 7, "text": "x"}', Reason.WRONG_TYPE),
        (b'{"id": "a", "text": 3}', Reason.WRONG_TYPE),
        (b'{"id": "a", "text": "x", "labels": "sport"}', Reason.WRONG_TYPE),
        (b'{"id": "a", "text": "x", "labels": [1, 2]}', Reason.WRONG_TYPE),
        (b'{"id": "a", "features": "1,2"}', Reason.WRONG_TYPE),
        (b'{"id": "a", "features": [true]}', Reason.WRONG_TYPE),
        (b'{"text": "x"}', Reason.MISSING_FIELD),
        (b'{"id": "a"}', Reason.MISSING_FIELD),
        (b'{"id": "", "text": "x"}', Reason.EMPTY_VALUE),
        (b'{"id": "a", "text": ""}', Reason.EMPTY_VALUE),
        (b'{"id": "a", "text": "   "}', Reason.EMPTY_VALUE),
        (b'{"id": "a", "features": []}', Reason.EMPTY_VALUE),
        (b'{"id": "a", "text": "x", "labels": [""]}', Reason.EMPTY_VALUE),
        (b'{"id": "a", "text": "caf\xe9"}', Reason.INVALID_UTF8),
        (b'{"id": "a", "text": "x", "lables": ["y"]}', Reason.UNKNOWN_FIELD),
        (b'["a", "b"]', Reason.NOT_AN_OBJECT),
        (b"", Reason.EMPTY_MESSAGE),
        (None, Reason.EMPTY_MESSAGE),
        (b'{"id": "a", "features": {"-3": 1.0}}', Reason.INVALID_VALUE),
        (b'{"id": "a", "features": {"x": 1.0}}', Reason.INVALID_VALUE),
        (b'{"id": "a", "text": "x", "timestamp": "yesterday"}', Reason.INVALID_VALUE),
    ],
)
def test_each_bad_document_has_its_reason(raw: bytes | None, reason: Reason) -> None:
    assert reason_of(raw) is reason


def test_oversize_is_checked_before_parsing() -> None:
    raw = json.dumps({"id": "a", "text": "x" * LIMIT}).encode()
    assert reason_of(raw) is Reason.OVERSIZE


def test_valid_documents() -> None:
    doc = decode_document(
        b'{"id": "d", "text": "t", "labels": ["b", "a", "b"], "meta": {"src": 1}, "timestamp": 1700000000}',
        LIMIT,
    )
    assert doc.labels == ["b", "a"]  # duplicates dropped, order kept
    assert doc.labelled and doc.meta == {"src": 1} and doc.timestamp is not None
    assert decode_document(
        b'{"id": "d", "text": "t", "labels": []}', LIMIT
    ).labelled  # empty label set is a label set
    assert not decode_document(b'{"id": "d", "text": "t"}', LIMIT).labelled
    assert decode_document(b'{"id": "d", "features": [1, 2.5]}', LIMIT).features == [1.0, 2.5]
    assert decode_document(b'{"id": "d", "features": {"0": 1, "7": 0.5}}', LIMIT).features == {0: 1.0, 7: 0.5}


def test_feedback_validation() -> None:
    assert decode_feedback(b'{"id": "d", "labels": ["x"]}', LIMIT).labels == ["x"]
    assert reason_of(b'{"id": "d"}', decode_feedback) is Reason.MISSING_FIELD
    assert reason_of(b'{"id": "d", "labels": "x"}', decode_feedback) is Reason.WRONG_TYPE
    assert reason_of(b'{"id": "d", "labels": [], "text": "x"}', decode_feedback) is Reason.UNKNOWN_FIELD


def test_errors_name_the_field() -> None:
    with pytest.raises(MessageError) as info:
        decode_document(b'{"id": "a", "text": "x", "labels": "s"}', LIMIT)
    assert info.value.field == "labels" and "labels" in str(info.value)


def test_output_messages_round_trip() -> None:
    prediction = Prediction(
        id="d",
        labels=["a"],
        scores={"a": 0.75},
        model_version=3,
        partition_version=1,
        latency_ms=1.5,
        produced_at=utc_now(),
    )
    assert Prediction.model_validate_json(prediction.to_bytes()) == prediction
    alert = DriftAlert(
        kind="performance",
        level="3",
        labels=["a"],
        detector="adwin",
        statistic=0.2,
        threshold=0.1,
        position=10,
        offsets={"t": {0: 5}},
        detected_at=utc_now(),
        action="reset",
    )
    assert DriftAlert.model_validate_json(alert.to_bytes()) == alert
    with pytest.raises(ValueError):
        DriftAlert(kind="weather", level="global", detector="x", detected_at=utc_now())


def test_dead_letter_keeps_a_bounded_prefix_and_the_origin() -> None:
    value = b"x" * 100
    letter = DeadLetter.from_record(
        topic="t",
        partition=2,
        offset=41,
        key=b"\xffk",
        value=value,
        error=MessageError(Reason.OVERSIZE, "too big"),
        max_bytes=10,
        worker="w1",
    )
    parsed = DeadLetter.model_validate_json(letter.to_bytes())
    assert parsed.original_bytes() == b"x" * 10 and parsed.truncated and parsed.value_size == 100
    assert (parsed.topic, parsed.partition, parsed.offset, parsed.reason) == ("t", 2, 41, "oversize")
    assert parsed.key == "\ufffdk" and parsed.worker == "w1" and parsed.error_class == "MessageError"
    other = DeadLetter.from_record(
        topic="t", partition=0, offset=0, key=None, value=None, error=RuntimeError("boom"), max_bytes=10
    )
    assert other.reason == "processing_error" and other.value_size == 0


def test_documents_are_immutable_and_reject_extra_fields_in_python_too() -> None:
    doc = Document(id="a", text="t")
    with pytest.raises(ValueError):
        Document(id="a", text="t", extra=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        doc.id = "b"  # type: ignore[misc]
    assert LabelFeedback(id="a", labels=[]).labels == []


# -- extra fields: a policy, with misspelt message fields rejected under every policy ------------------

REUTERS_LIKE = b'{"id": "r1", "text": "cocoa", "labels": ["cocoa"], "split": "train", "date": "1987-02-26"}'


def test_extra_fields_are_kept_in_meta_by_default() -> None:
    doc = decode_document(REUTERS_LIKE, LIMIT)
    assert doc.labels == ["cocoa"] and doc.meta == {"split": "train", "date": "1987-02-26"}


def test_extra_fields_policy_ignore_and_reject() -> None:
    assert decode_document(REUTERS_LIKE, LIMIT, extra_fields="ignore").meta is None
    with pytest.raises(MessageError) as info:
        decode_document(REUTERS_LIKE, LIMIT, extra_fields="reject")
    assert info.value.reason is Reason.UNKNOWN_FIELD and info.value.field in ("split", "date")


def test_the_documents_own_meta_wins_over_an_extra_field_of_the_same_name() -> None:
    raw = b'{"id": "a", "text": "t", "meta": {"split": "mine", "k": 1}, "split": "file"}'
    assert decode_document(raw, LIMIT).meta == {"split": "mine", "k": 1}


@pytest.mark.parametrize("policy", ["meta", "ignore", "reject"])
@pytest.mark.parametrize("field", ["label", "lables", "Labels", "txt", "feature"])
def test_misspelt_message_fields_are_rejected_under_every_policy(policy: str, field: str) -> None:
    raw = json.dumps({"id": "a", "text": "t", field: ["x"]}).encode()
    with pytest.raises(MessageError) as info:
        decode_document(raw, LIMIT, extra_fields=policy)  # type: ignore[arg-type]
    assert info.value.reason is Reason.UNKNOWN_FIELD and info.value.field == field


def test_a_document_sent_to_the_labels_topic_is_rejected_not_taken_for_feedback() -> None:
    raw = b'{"id": "d", "labels": ["x"], "text": "a whole document"}'
    with pytest.raises(MessageError) as info:
        decode_feedback(raw, LIMIT)
    assert info.value.reason is Reason.UNKNOWN_FIELD and "another message type" in info.value.detail
    assert decode_feedback(b'{"id": "d", "labels": ["x"], "source": "crowd"}', LIMIT).labels == ["x"]


# -- the fast JSON parser -------------------------------------------------------------------------

_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON_VALUES, ascii_only=st.booleans())
def test_the_fast_json_parser_gives_what_json_gives_or_leaves_the_text_to_it(
    value: object, ascii_only: bool
) -> None:
    try:
        raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in the text has no UTF-8 form
        return
    fast = _parse_common_json(raw)
    assert fast is None or repr(fast) == repr(json.loads(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": NaN}',
        b'{"a": [Infinity]}',
        b'{"a": -Infinity}',
        b'{"a": "\\ud800"}',
        b'{"a": "\\udc00\\ud800"}',
        b'{"a": "\\ud800\\u0041"}',
        b'{"a": "x\ty"}',
        b'{"a": 1,}',
        b'\xef\xbb\xbf{"a": 1}',
        b'{"a": "\xed\xa0\x80"}',
        b"[" * 5_000 + b"]" * 5_000,
    ],
)
def test_the_fast_json_parser_leaves_what_json_refuses_or_keeps_differently_to_json(raw: bytes) -> None:
    assert _parse_common_json(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "a", "text": "x", "id": "b"}',
        b'{"id": "a", "text": "x", "meta": {"n": 1e400, "m": -0.0, "k": 123456789012345678901234567890}}',
        b'{"id": "a", "text": "\\ud83d\\ude00 \\u00e9 \xc3\xa9 \\/"}',
    ],
)
def test_valid_documents_decode_as_json_reads_them(raw: bytes) -> None:
    document = decode_document(raw, LIMIT)
    assert document == Document.model_validate(json.loads(raw))


# -- validation straight from the bytes ---------------------------------------------------------


def _outcome(decode: Callable[..., Any], raw: bytes, policy: str, limits: DecodeLimits) -> object:
    try:
        return decode(raw, LIMIT, policy, limits=limits)
    except MessageError as exc:
        return exc.reason, exc.field


def _general_outcome(
    monkeypatch: pytest.MonkeyPatch, decode: Callable[..., Any], raw: bytes, policy: str, limits: DecodeLimits
) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(messages, "_validate_plain", lambda *args: None)
        return _outcome(decode, raw, policy, limits)


_ODD_MESSAGES = [
    b'{"id": "a", "text": "x", "labels": ["b", "b", "c"]}',
    b'{"id": "a", "text": "x", "id": "b", "labels": ["c"]}',
    b'{"id": "a", "text": "x", "meta": {"v": NaN}}',
    b'{"id": "a", "text": "x", "meta": {"v": 1e400, "w": [[[[1]]]]}}',
    b'{"id": "a", "text": "x", "meta": {"a": 1, "a": 2}}',
    b'{"id": "a", "features": {"3": 1, "1": 2.5}, "labels": ["y"]}',
    b'{"id": "a", "features": {"01": 1}}',
    b'{"id": "a", "features": [1, 2.5, 1e400]}',
    b'{"id": "a", "features": {"3": true}}',
    b'{"id": "a", "text": "x", "timestamp": 1700000000}',
    b'{"id": "a", "text": "x", "timestamp": "2024-01-01"}',
    b'{"id": "a", "text": "x\\ud800", "labels": ["y"]}',
    b'{"id": "a", "text": "\\ud83d\\ude00", "labels": ["\\udfff"]}',
    b'{"id": "a", "text": "caf\xe9"}',
    b'\xef\xbb\xbf{"id": "a", "text": "x"}',
    b'{"id": "a", "text": "x"}garbage',
    b' {"id": "a", "labels": ["x"]} ',
    b'{"id": "a", "labels": ["x"], "text": "t", "split": "train"}',
    b'{"id": "a", "labels": ["x"], "label": ["y"]}',
    b'{"id": "a", "labels": ["x"], "timestamp": "2024-01-01T00:00:00Z", "note": 1}',
    b'{"id": "a", "labels": ' + json.dumps([f"l{i}" for i in range(30)]).encode() + b"}",
    b'{"id": "a", "labels": ["' + b"x" * 40 + b'"], "text": "y"}',
]


@pytest.mark.parametrize("raw", _ODD_MESSAGES)
@pytest.mark.parametrize("policy", EXTRA_FIELDS_POLICIES)
@pytest.mark.parametrize(
    "limits", [DEFAULT_LIMITS, DecodeLimits(max_depth=1, max_label_chars=20, max_labels=10)]
)
def test_validation_straight_from_the_bytes_decodes_as_the_general_path(
    monkeypatch: pytest.MonkeyPatch, raw: bytes, policy: str, limits: DecodeLimits
) -> None:
    for decode in (decode_document, decode_feedback):
        assert _outcome(decode, raw, policy, limits) == _general_outcome(
            monkeypatch, decode, raw, policy, limits
        )


_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.text(max_size=6) | st.integers(),
    "text": st.text(max_size=12) | st.none(),
    "labels": st.lists(st.text(max_size=4), max_size=4) | st.none() | st.text(max_size=3),
    "features": st.lists(st.floats(allow_nan=False) | st.integers(), max_size=3)
    | st.dictionaries(st.sampled_from(["0", "7", "-1", "x"]), st.floats(allow_nan=False), max_size=3),
    "timestamp": st.sampled_from(["2024-01-01T00:00:00Z", "2024-13-01", 0, None]),
    "meta": st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=2) | st.none(),
    "split": st.text(max_size=3),
}


@settings(max_examples=300, deadline=None)
@given(
    message=st.fixed_dictionaries({}, optional=_FIELD_VALUES),
    policy=st.sampled_from(EXTRA_FIELDS_POLICIES),
    ascii_only=st.booleans(),
)
def test_any_message_decodes_straight_from_the_bytes_as_the_general_path_decodes_it(
    message: dict[str, Any], policy: str, ascii_only: bool
) -> None:
    try:
        raw = json.dumps(message, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in the text has no UTF-8 form
        return
    with pytest.MonkeyPatch.context() as monkeypatch:
        for decode in (decode_document, decode_feedback):
            expected = _general_outcome(monkeypatch, decode, raw, policy, DEFAULT_LIMITS)
            assert _outcome(decode, raw, policy, DEFAULT_LIMITS) == expected


def test_plain_messages_are_validated_straight_from_the_bytes() -> None:
    # The comparisons above hold trivially if nothing takes this path.
    raw = b'{"id": "d1", "text": "goal", "labels": ["sport"], "timestamp": "2024-01-01T00:00:00Z"}'
    assert messages._validate_plain(Document, raw, LIMIT, DEFAULT_LIMITS) == decode_document(raw, LIMIT)
    feedback = b'{"id": "d1", "labels": ["sport"]}'
    assert messages._validate_plain(LabelFeedback, feedback, LIMIT, DEFAULT_LIMITS) == decode_feedback(
        feedback, LIMIT
    )
    with_meta = b'{"id": "d1", "text": "goal", "meta": {"a": 1}}'
    assert messages._validate_plain(Document, with_meta, LIMIT, DEFAULT_LIMITS) is None
