"""Output messages, checked before they are produced: serializable, and within the output size limit.

An output that cannot be sent would fail the whole batch's flush, and the restarted worker would fail
on the same record again. So every output is serialized and measured here first: a prediction, routed
copy or embedded document that does not fit becomes a dead letter of the record that caused it
(``output_too_large`` / ``output_invalid``), a drift alert that does not fit is shortened (its label
list), and a dead letter always fits (its prefix of the original shrinks to the room left).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import to_json

from labelflow.stream.messages import (
    MAX_DEAD_LETTER_KEY_BYTES,
    DriftAlert,
    MessageError,
    Prediction,
    Reason,
    _Message,
)

# A dead letter's JSON around its base64 prefix: origin, reason, error message (at most 2,000
# characters, up to 4 bytes each as UTF-8 escapes), key (at most MAX_DEAD_LETTER_KEY_BYTES, escaped).
_DEAD_LETTER_OVERHEAD = 16_384


@dataclass(frozen=True, slots=True)
class OutputMessage:
    """A message to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def size(self) -> int:
        """Bytes of key, value and headers: what counts against the producer's and broker's limits."""
        key = len(self.key) if self.key is not None else 0
        if not self.headers:
            return key + len(self.value)
        return key + len(self.value) + sum(len(name) + len(value) for name, value in self.headers)


def serialize(message: _Message) -> bytes:
    """``message`` as JSON bytes; ``MessageError(output_invalid)`` when it cannot be serialized."""
    try:
        return message.to_bytes()
    except (ValueError, TypeError, UnicodeError) as exc:
        raise MessageError(
            Reason.OUTPUT_INVALID,
            f"{type(message).__name__} cannot be serialized: {type(exc).__name__}: {exc}",
        ) from None


def prediction_bytes(
    *,
    id: str,
    labels: list[str],
    scores: dict[str, float],
    model_version: int,
    partition_version: int,
    latency_ms: float,
    produced_at: datetime,
) -> bytes:
    """``Prediction(...).to_bytes()`` for the worker's own values, without building the model.

    pydantic-core's serializer writes the fields as a plain dict in the model's field order (non-finite
    floats as null, as the model's default ``ser_json_inf_nan``): the same bytes at a third of the CPU.
    What it refuses (a lone surrogate in a name) goes the model's way, which writes or refuses it
    (``MessageError(output_invalid)``) as before.

    >>> from labelflow.stream.messages import utc_now
    >>> fields = dict(id="d1", labels=["a"], scores={"a": 0.9}, model_version=3, partition_version=1,
    ...               latency_ms=4.2, produced_at=utc_now())
    >>> prediction_bytes(**fields) == Prediction(**fields).to_bytes()
    True
    """
    fields: dict[str, Any] = {
        "id": id,
        "labels": labels,
        "scores": scores,
        "model_version": model_version,
        "partition_version": partition_version,
        "latency_ms": latency_ms,
        "produced_at": produced_at,
    }
    try:
        return to_json(fields, inf_nan_mode="null")
    except (ValueError, TypeError, UnicodeError):
        return serialize(Prediction(**fields))


def checked(message: OutputMessage, max_bytes: int) -> OutputMessage:
    """``message`` if it fits in ``max_bytes``; ``MessageError(output_too_large)`` otherwise.

    >>> checked(OutputMessage("t", b"k", b"v" * 10), max_bytes=100).size
    11
    >>> try:
    ...     checked(OutputMessage("preds", b"k", b"v" * 200), max_bytes=100)
    ... except MessageError as exc:
    ...     print(exc.reason.value)
    output_too_large
    """
    if message.size > max_bytes:
        raise MessageError(
            Reason.OUTPUT_TOO_LARGE,
            f"the output for topic {message.topic!r} would be {message.size} bytes, over the limit of "
            f"{max_bytes} (max_output_bytes)",
        )
    return message


def dead_letter_prefix_bytes(prefix_bytes: int, max_bytes: int) -> int:
    """How much of the original value a dead letter keeps so that it fits in ``max_bytes``: the
    configured ``prefix_bytes``, shrunk to the room the limit leaves for its base64 form.

    >>> dead_letter_prefix_bytes(65_536, 1_000_000), dead_letter_prefix_bytes(1_000_000, 1_000_000)
    (65536, 737712)
    """
    return min(prefix_bytes, max(0, (max_bytes - _DEAD_LETTER_OVERHEAD) * 3 // 4))


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The Kafka key of a dead letter: the record's key, bounded like the letter's copy of it."""
    return None if key is None else key[:MAX_DEAD_LETTER_KEY_BYTES]


def fitted_alert(alert: DriftAlert, key: bytes, max_bytes: int) -> bytes:
    """The alert's JSON within ``max_bytes`` with its key: a too-long label list is cut (and says so).

    A re-partition of a large label space can name thousands of labels; the alert keeps as many as fit,
    with ``details.labels_total`` giving the full count.

    >>> from labelflow.stream.messages import utc_now
    >>> alert = DriftAlert(kind="label_structure", level="global", labels=[f"label-{i}" for i in range(1000)],
    ...                    detector="clusterer", detected_at=utc_now())
    >>> value = fitted_alert(alert, b"k", max_bytes=2_000)
    >>> len(value) <= 2_000, DriftAlert.model_validate_json(value).details["labels_total"]
    (True, 1000)
    """
    value = _alert_bytes(alert)
    if len(value) + len(key) <= max_bytes:
        return value
    labels = alert.labels
    details = {"labels_total": len(labels), "labels_truncated": True}
    low, high = 0, len(labels)  # the most labels that fit, by bisection
    best = _alert_bytes(alert.model_copy(update={"labels": [], "details": details}))
    while low < high:
        middle = (low + high + 1) // 2
        candidate = _alert_bytes(alert.model_copy(update={"labels": labels[:middle], "details": details}))
        if len(candidate) + len(key) <= max_bytes:
            low, best = middle, candidate
        else:
            high = middle - 1
    return best


def _alert_bytes(alert: DriftAlert) -> bytes:
    try:
        return alert.to_bytes()
    except (ValueError, UnicodeError):
        # Label names that are not valid Unicode (learned before input was checked): escaped visibly.
        labels = [label.encode("utf-8", "backslashreplace").decode("utf-8") for label in alert.labels]
        return alert.model_copy(update={"labels": labels, "details": None}).to_bytes()
