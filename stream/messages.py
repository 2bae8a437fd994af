"""The messages on labelflow's topics: pydantic models, JSON on the wire, UTF-8.

Input messages (``Document``, ``LabelFeedback``) are validated strictly: wrong types and empty values
are rejected, never coerced. ``decode_document`` / ``decode_feedback`` turn raw Kafka bytes into a model
or raise ``MessageError`` carrying a ``Reason`` code; the worker turns that error into a ``DeadLetter``
on the dead-letter topic.

Fields a message does not define follow the ``extra_fields`` policy (``ExtraFields``): ``"reject"``
dead-letters the message, ``"ignore"`` drops the fields, ``"meta"`` (the default) keeps them in the
document's ``meta``. Files carry such fields routinely (Reuters' JSON lines have ``split`` and ``date``)
and ``labelflow evaluate`` reads them; the worker must not refuse what the evaluator accepts. A field
whose name looks like a misspelt message field (``label``, ``txt``, ``Labels``) or belongs to the other
input message (``text`` on the labels topic) is rejected under every policy: ignoring it would turn a
labelled document into an unlabelled one without a word.
"""

from __future__ import annotations

import base64
import difflib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError, from_json

from labelflow.operators.drift.events import DriftEventKind


class Reason(StrEnum):
    """Why an input message went to the dead-letter topic (the ``reason`` of a ``DeadLetter``)."""

    EMPTY_MESSAGE = "empty_message"  # a record with no value (a tombstone) or zero bytes
    OVERSIZE = "oversize"  # more bytes than settings.max_message_bytes
    INVALID_UTF8 = "invalid_utf8"  # bytes that are not UTF-8, or a lone surrogate escape ("\ud800")
    TOO_DEEP = "too_deep"  # JSON nested deeper than settings.limits.max_json_depth
    LABEL_TOO_LONG = "label_too_long"  # a label name longer than settings.limits.max_label_chars
    TOO_MANY_LABELS = "too_many_labels"  # more labels than settings.limits.max_labels_per_document
    INVALID_JSON = "invalid_json"  # includes NaN/Infinity, which are not JSON
    NOT_AN_OBJECT = "not_an_object"  # valid JSON, but not a {...} object
    UNKNOWN_FIELD = "unknown_field"
    MISSING_FIELD = "missing_field"  # id missing, or a document with neither text nor features
    WRONG_TYPE = "wrong_type"  # e.g. labels not a list, id a number
    EMPTY_VALUE = "empty_value"  # empty id, empty text, empty features, empty label name
    INVALID_VALUE = "invalid_value"  # e.g. a negative feature index, an unparseable timestamp
    PROCESSING_ERROR = "processing_error"  # valid message the model or embedder failed on
    LABEL_BUDGET = "label_budget"  # new labels that would take the model past settings.model.max_labels
    # An output the record caused (prediction, routed copy, embedded document) is over
    # settings.max_output_bytes, or cannot be serialized: the record is dead-lettered instead.
    OUTPUT_TOO_LARGE = "output_too_large"
    OUTPUT_INVALID = "output_invalid"
    # The worker died while processing this record alone, settings.poison_after_crashes times.
    POISON = "poison"


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Structural limits on an input message, checked while decoding (``settings.limits``)."""

    max_depth: int = 32
    max_label_chars: int = 256
    max_labels: int = 1_000


DEFAULT_LIMITS = DecodeLimits()


class MessageError(ValueError):
    """An input message that cannot be processed; ``reason`` says which kind of bad input it is.

    >>> try:
    ...     decode_document(b'{"id": "d1", "text": ""}', max_bytes=1000)
    ... except MessageError as exc:
    ...     print(exc.reason.value, exc.field)
    empty_value text
    """

    def __init__(self, reason: Reason, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


class _Message(BaseModel):
    # strict: "1" is not an int and 1 is not a string; extra="forbid": a misspelt field is an error.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON, leaving out fields that are None."""
        return self.model_dump_json(exclude_none=True).encode("utf-8")


def _require_text(value: str, what: str) -> str:
    if not value.strip():
        raise PydanticCustomError(Reason.EMPTY_VALUE.value, f"{what} is empty")
    return value


def _check_labels(labels: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for label in labels:
        if not label.strip():
            raise PydanticCustomError(Reason.EMPTY_VALUE.value, "a label name is empty")
        seen.setdefault(label, None)
    return list(seen)  # duplicates removed, first occurrence order kept


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: The largest finite float32 (``numpy.finfo(numpy.float32).max``): the model holds features in float32,
#: so a larger JSON number (finite as a double, or an integer of any length) would reach it as infinity.
FLOAT32_MAX = 3.4028234663852886e38


def _check_feature_value(value: float | int) -> float:
    """``value`` as a float, refused where the model's float32 cannot hold it (infinity, NaN, > 3.4e38).

    The comparison never converts an integer, so a 400-digit integer is refused here rather than
    overflowing ``float()``.

    >>> _check_feature_value(3e38)
    3e+38
    >>> _check_feature_value(10**400)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.PydanticCustomError: features hold a number outside float32's finite range (magnitude at most 3.4028235e+38)
    """
    if not abs(value) <= FLOAT32_MAX:  # NaN compares False too
        raise PydanticCustomError(
            Reason.INVALID_VALUE.value,
            "features hold a number outside float32's finite range (magnitude at most 3.4028235e+38)",
        )
    return float(value)


class Document(_Message):
    """A document to classify. ``labels`` present means labelled: the worker predicts, then learns.

    ``features`` replaces the embedder for non-text streams: a dense list of numbers or a sparse
    ``{index: value}`` map (JSON object keys are decimal strings).

    >>> doc = Document.model_validate({"id": "d1", "text": "goal in extra time", "labels": ["sport"]})
    >>> doc.id, doc.labels
    ('d1', ['sport'])
    >>> Document.model_validate({"id": "d2", "features": {"3": 1.5}}).features
    {3: 1.5}
    """

    id: str
    text: str | None = None
    features: list[float] | dict[int, float] | None = None
    labels: list[str] | None = None
    timestamp: datetime | None = Field(default=None, strict=False)
    meta: dict[str, Any] | None = None

    @field_validator("id")
    @classmethod
    def _id_not_empty(cls, value: str) -> str:
        return _require_text(value, "id")

    @field_validator("text")
    @classmethod
    def _text_not_empty(cls, value: str | None) -> str | None:
        return None if value is None else _require_text(value, "text")

    @field_validator("labels")
    @classmethod
    def _labels_named(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_labels(value)

    @field_validator("features", mode="before")
    @classmethod
    def _features_numeric(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            if not value:
                raise PydanticCustomError(Reason.EMPTY_VALUE.value, "features is an empty list")
            if not all(_is_number(v) for v in value):
                raise PydanticCustomError(Reason.WRONG_TYPE.value, "features must be a list of numbers")
            return [_check_feature_value(v) for v in value]
        if isinstance(value, dict):
            if not value:
                raise PydanticCustomError(Reason.EMPTY_VALUE.value, "features is an empty map")
            sparse: dict[int, float] = {}
            for key, v in value.items():
                index = _parse_index(key)
                if not _is_number(v):
                    raise PydanticCustomError(Reason.WRONG_TYPE.value, "feature values must be numbers")
                sparse[index] = _check_feature_value(v)
            return sparse
        raise PydanticCustomError(
            Reason.WRONG_TYPE.value, "features must be a list of numbers or an {index: value} map"
        )

    @model_validator(mode="after")
    def _text_or_features(self) -> Document:
        if self.text is None and self.features is None:
            raise PydanticCustomError(Reason.MISSING_FIELD.value, "a document needs 'text' or 'features'")
        return self

    @property
    def labelled(self) -> bool:
        return self.labels is not None


def _parse_index(key: Any) -> int:
    if isinstance(key, int) and not isinstance(key, bool):
        index = key
    elif isinstance(key, str) and key.isascii() and key.isdigit():
        index = int(key)
    else:
        raise PydanticCustomError(
            Reason.INVALID_VALUE.value, f"feature index {key!r} is not a non-negative integer"
        )
    if index < 0:
        raise PydanticCustomError(Reason.INVALID_VALUE.value, f"feature index {index} is negative")
    return index


class LabelFeedback(_Message):
    """The labels of an earlier document, arriving later on the labels topic (key = document id).

    >>> LabelFeedback.model_validate({"id": "d7", "labels": ["a", "b"]}).labels
    ['a', 'b']
    """

    id: str
    labels: list[str]
    timestamp: datetime | None = Field(default=None, strict=False)

    @field_validator("id")
    @classmethod
    def _id_not_empty(cls, value: str) -> str:
        return _require_text(value, "id")

    @field_validator("labels")
    @classmethod
    def _labels_named(cls, value: list[str]) -> list[str]:
        return _check_labels(value)


class Prediction(_Message):
    """The worker's output for one document (key = document id, so replays are idempotent by key).

    ``model_version`` is the number of labelled documents the model had learned when it predicted;
    ``latency_ms`` runs from the document's Kafka record timestamp to this prediction.

    >>> p = Prediction(id="d1", labels=["a"], scores={"a": 0.9, "b": 0.1}, model_version=3,
    ...                partition_version=1, latency_ms=4.2, produced_at=utc_now())
    >>> Prediction.model_validate_json(p.to_bytes()).scores["a"]
    0.9
    """

    id: str
    labels: list[str]
    scores: dict[str, float]
    model_version: int
    partition_version: int
    latency_ms: float
    produced_at: datetime = Field(strict=False)


DriftKind = DriftEventKind  # the kinds of the operators' DriftEvent, one definition


class DriftAlert(_Message):
    """A drift detection: what changed, where (``level`` "global" or a cluster id), and what was done.

    >>> a = DriftAlert(kind="label_structure", level="global", labels=["a", "b"], detector="clusterer",
    ...                statistic=0.4, threshold=0.1, position=1200, detected_at=utc_now(), action="re-partition")
    >>> DriftAlert.model_validate_json(a.to_bytes()).kind
    'label_structure'
    """

    kind: DriftKind
    level: str
    labels: list[str] = Field(default_factory=list)
    detector: str
    statistic: float | None = None
    threshold: float | None = None
    position: int | None = None
    offsets: dict[str, dict[int, int]] | None = Field(default=None, strict=False)
    detected_at: datetime = Field(strict=False)
    action: str | None = None
    # "warning": evidence is building (e.g. a background learner started); "drift": a detection.
    severity: Literal["warning", "drift"] = "drift"
    details: dict[str, Any] | None = None


# The most key bytes a dead letter keeps (in its JSON and as its Kafka key): ids are short, so a longer
# key is kept as a prefix that still identifies the record, together with topic, partition and offset.
MAX_DEAD_LETTER_KEY_BYTES = 1_024


class DeadLetter(_Message):
    """A bad input message: where it came from, why it failed, and its bytes (a bounded prefix).

    >>> dl = DeadLetter.from_record(topic="t", partition=0, offset=5, key=b"k", value=b"{oops",
    ...                             error=MessageError(Reason.INVALID_JSON, "line 1"), max_bytes=64)
    >>> dl.reason.value, dl.original_bytes()
    ('invalid_json', b'{oops')
    """

    topic: str
    partition: int
    offset: int
    key: str | None = None
    # Keys are document ids and short; a longer one is kept as a prefix, like the value.
    key_truncated: bool = False
    value_b64: str
    value_size: int
    truncated: bool
    reason: Reason = Field(strict=False)
    error_class: str
    error_message: str
    detected_at: datetime = Field(strict=False)
    worker: str | None = None

    @classmethod
    def from_record(
        cls,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        error: Exception,
        max_bytes: int,
        worker: str | None = None,
    ) -> DeadLetter:
        raw = value or b""
        reason = error.reason if isinstance(error, MessageError) else Reason.PROCESSING_ERROR
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            key=None if key is None else key[:MAX_DEAD_LETTER_KEY_BYTES].decode("utf-8", errors="replace"),
            key_truncated=key is not None and len(key) > MAX_DEAD_LETTER_KEY_BYTES,
            value_b64=base64.b64encode(raw[:max_bytes]).decode("ascii"),
            value_size=len(raw),
            truncated=len(raw) > max_bytes,
            reason=reason,
            error_class=type(error).__name__,
            # Whatever the error quotes must serialize: a lone surrogate becomes a visible escape.
            error_message=str(error)[:2_000].encode("utf-8", "backslashreplace").decode("utf-8"),
            detected_at=utc_now(),
            worker=worker,
        )

    def original_bytes(self) -> bytes:
        """The kept prefix of the original message value."""
        return base64.b64decode(self.value_b64)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for every message: json.loads(..., parse_constant=...) builds a new one per call.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _load_json(value: bytes | None, max_bytes: int, limits: DecodeLimits) -> dict[str, Any]:
    if not value:
        raise MessageError(Reason.EMPTY_MESSAGE, "the record has no value")
    if len(value) > max_bytes:
        raise MessageError(Reason.OVERSIZE, f"{len(value)} bytes is over the limit of {max_bytes}")
    data = _parse_common_json(value)
    # jiter refuses lone surrogate escapes: only what ``json`` parsed can hold them.
    surrogates = data is None
    if data is None:
        data = _parse_json(value, limits)
    if not isinstance(data, dict):
        raise MessageError(Reason.NOT_AN_OBJECT, f"expected a JSON object, got {type(data).__name__}")
    _check_structure(data, value, limits, surrogates=surrogates)
    return data


def _parse_common_json(value: bytes) -> Any | None:
    """``value`` parsed by pydantic's JSON parser (jiter, several times faster than ``json``), or None.

    jiter gives what ``json`` gives for everything it accepts; with ``allow_inf_nan=False`` it refuses
    the tokens ``json`` refuses here (NaN, Infinity) and it refuses lone surrogate escapes, which
    ``json`` keeps for ``_check_structure`` to name. Whatever jiter refuses (invalid UTF-8 or JSON,
    nesting beyond its limit) is parsed again by ``_parse_json``, which names the error.
    """
    try:
        return from_json(value, allow_inf_nan=False)
    except ValueError:
        return None


def _parse_json(value: bytes, limits: DecodeLimits) -> Any:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError(Reason.INVALID_UTF8, f"byte {exc.start}: {exc.reason}") from None
    try:
        return _JSON.decode(text)
    except RecursionError:
        # The parser is recursive: nesting near Python's recursion limit (~1,000) exhausts the stack.
        raise MessageError(
            Reason.TOO_DEEP, f"JSON nested too deeply to parse (the limit is {limits.max_depth} levels)"
        ) from None
    except ValueError as exc:
        raise MessageError(Reason.INVALID_JSON, str(exc)) from None


def _check_structure(
    data: dict[str, Any], raw: bytes, limits: DecodeLimits, *, surrogates: bool = True
) -> None:
    """Refuse nesting deeper than ``limits.max_depth`` and strings holding lone surrogates.

    Both are rare, so two byte scans decide whether the parsed value needs walking at all: nesting
    needs that many brackets, and a surrogate can only come from a ``\\ud800``-style escape (strict
    UTF-8 decoding already refuses encoded surrogates). ``surrogates=False``: the parser refused lone
    surrogates already.
    """
    check_depth = raw.count(b"[") + raw.count(b"{") > limits.max_depth
    check_unicode = surrogates and (b"\\ud" in raw or b"\\uD" in raw)
    if not (check_depth or check_unicode):
        return
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    while stack:
        node, depth, where = stack.pop()
        if check_depth and depth > limits.max_depth:
            raise MessageError(
                Reason.TOO_DEEP,
                f"JSON nested deeper than {limits.max_depth} levels (at {where})",
                where.split(".")[0] or None,
            )
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            path = f"{where}.{key}" if where else str(key)
            for text in (key, child):
                if check_unicode and isinstance(text, str) and not _encodable(text):
                    raise MessageError(
                        Reason.INVALID_UTF8,
                        f"a lone surrogate escape (e.g. \\ud800) at {path} is not a Unicode character",
                        path.split(".")[0],
                    )
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1, path))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_labels_within(labels: list[str] | None, limits: DecodeLimits) -> None:
    if labels is None:
        return
    if len(labels) > limits.max_labels:
        raise MessageError(
            Reason.TOO_MANY_LABELS,
            f"{len(labels)} labels is over the limit of {limits.max_labels} per message",
            "labels",
        )
    longest = max((len(label) for label in labels), default=0)
    if longest > limits.max_label_chars:
        raise MessageError(
            Reason.LABEL_TOO_LONG,
            f"a label name of {longest} characters is over the limit of {limits.max_label_chars}",
            "labels",
        )


_WRONG_TYPE_SUFFIXES = ("_type", "is_instance_of", "union_tag_invalid")
_EMPTY_TYPES = {"string_too_short", "too_short"}

M = TypeVar("M", bound=_Message)


def _reason_of(error_type: str) -> Reason:
    if error_type in Reason._value2member_map_:
        return Reason(error_type)
    if error_type == "extra_forbidden":
        return Reason.UNKNOWN_FIELD
    if error_type == "missing":
        return Reason.MISSING_FIELD
    if error_type in _EMPTY_TYPES:
        return Reason.EMPTY_VALUE
    if error_type.endswith(_WRONG_TYPE_SUFFIXES):
        return Reason.WRONG_TYPE
    return Reason.INVALID_VALUE


ExtraFields = Literal["reject", "ignore", "meta"]
EXTRA_FIELDS_POLICIES: tuple[ExtraFields, ...] = ("reject", "ignore", "meta")

# Names within this similarity (difflib ratio, case-insensitive) of a message field are taken for a typo:
# "label", "lables", "txt", "feature" are rejected while "split", "date", "title" or "source" are not.
_TYPO_CUTOFF = 0.8


def _input_field_names() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*Document.model_fields, *LabelFeedback.model_fields]))


def _suspicious_field(name: str) -> str | None:
    """The input field that ``name`` probably meant, or None when ``name`` is an honest extra field."""
    fields = _input_field_names()
    if name in fields:  # a field of the other input message: sent to the wrong topic
        return name
    close = difflib.get_close_matches(name.lower(), fields, n=1, cutoff=_TYPO_CUTOFF)
    return close[0] if close else None


def _apply_extra_fields(model: type[M], data: dict[str, Any], policy: ExtraFields) -> dict[str, Any]:
    """``data`` with its unknown fields dropped or moved into ``meta``; "reject" leaves them to pydantic.

    >>> _apply_extra_fields(Document, {"id": "a", "text": "t", "split": "train"}, "meta")
    {'id': 'a', 'text': 't', 'meta': {'split': 'train'}}
    >>> _apply_extra_fields(Document, {"id": "a", "text": "t", "split": "train"}, "ignore")
    {'id': 'a', 'text': 't'}
    """
    known = model.model_fields
    extras = [name for name in data if name not in known]
    if not extras or policy == "reject":
        return data
    for name in extras:
        meant = _suspicious_field(name)
        if meant is not None:
            where = "a field of another message type" if meant == name else f"did you mean {meant!r}?"
            raise MessageError(
                Reason.UNKNOWN_FIELD, f"{model.__name__}: unknown field {name!r} ({where})", name
            )
    kept = {name: value for name, value in data.items() if name in known}
    if policy == "meta" and "meta" in known:
        own = data.get("meta")
        if own is not None and not isinstance(own, dict):
            return kept  # validation reports the wrong type of meta itself
        # The message's own meta wins over an extra field of the same name.
        kept["meta"] = {**{name: data[name] for name in extras}, **(own or {})}
    return kept


def _validate_plain(model: type[M], value: bytes | None, max_bytes: int, limits: DecodeLimits) -> M | None:
    """``model`` validated straight from ``value`` (one pass in pydantic-core, about half the CPU of
    parsing to a dict and validating that), or None: the general path then decides, and names the error.

    Only what the general path gives for the same bytes comes back. A message with a field the model
    does not define fails here (``extra="forbid"``), so no ``extra_fields`` policy applies; lone
    surrogate escapes and invalid UTF-8 fail here too (the same parser, jiter). Without ``meta`` (the
    one field of any JSON value), nothing can be nested deeper than a list in the object (depth 2) and
    no float can be one of JSON's refused constants (NaN, Infinity: ``features`` refuses them itself).
    """
    if not value or len(value) > max_bytes or limits.max_depth < 2:
        return None
    try:
        message = model.model_validate_json(value)
    except ValidationError:
        return None
    return None if getattr(message, "meta", None) is not None else message


def _validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        # A union (features) reports one error per member; its custom error names the real problem.
        first = next((e for e in errors if e["type"] in Reason._value2member_map_), errors[0])
        field = ".".join(
            str(p) for p in first["loc"] if isinstance(p, str) and p not in ("list[float]", "dict[int,float]")
        )
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or model.__name__}: {e['msg']}" for e in errors[:5]
        )
        raise MessageError(_reason_of(first["type"]), detail, field or None) from None


def load_json_object(
    value: bytes | None, max_bytes: int, *, limits: DecodeLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """A record value as a JSON object, with the checks every input message gets (size, UTF-8, JSON,
    object, depth); ``MessageError`` otherwise. For topics whose messages have no model.

    >>> load_json_object(b'{"a": 1}', max_bytes=100)
    {'a': 1}
    """
    return _load_json(value, max_bytes, limits)


def decode_document(
    value: bytes | None,
    max_bytes: int,
    extra_fields: ExtraFields = "meta",
    *,
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> Document:
    """Validate a documents-topic record value; raises ``MessageError`` for any kind of bad input.

    >>> decode_document(b'{"id": "a", "text": "hello"}', max_bytes=100).text
    'hello'
    >>> decode_document(b'{"id": "a", "text": "hi", "date": "1987-02-26"}', max_bytes=100).meta
    {'date': '1987-02-26'}
    >>> try:
    ...     decode_document(b'{"id": "a", "text": "hi", "label": ["x"]}', max_bytes=100)
    ... except MessageError as exc:
    ...     print(exc.reason.value, exc.detail)
    unknown_field Document: unknown field 'label' (did you mean 'labels'?)
    >>> try:
    ...     decode_document(b'{"id": "a", "text": "hi", "meta": [[[[1]]]]}', 100, limits=DecodeLimits(max_depth=3))
    ... except MessageError as exc:
    ...     print(exc.reason.value, exc.field)
    too_deep meta
    """
    document = _validate_plain(Document, value, max_bytes, limits)
    if document is None:
        data = _load_json(value, max_bytes, limits)
        document = _validate(Document, _apply_extra_fields(Document, data, extra_fields))
    _check_labels_within(document.labels, limits)
    return document


def decode_feedback(
    value: bytes | None,
    max_bytes: int,
    extra_fields: ExtraFields = "meta",
    *,
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> LabelFeedback:
    """Validate a labels-topic record value; raises ``MessageError`` for any kind of bad input.

    Feedback has no ``meta``: under the "meta" policy its extra fields are dropped as under "ignore".
    """
    feedback = _validate_plain(LabelFeedback, value, max_bytes, limits)
    if feedback is None:
        data = _load_json(value, max_bytes, limits)
        feedback = _validate(LabelFeedback, _apply_extra_fields(LabelFeedback, data, extra_fields))
    _check_labels_within(feedback.labels, limits)
    return feedback
