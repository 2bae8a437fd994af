"""One micro-batch of input records in, the messages to publish out: the worker's logic without Kafka.

Order of work in a batch:

1. decode and validate every record (bad input becomes a dead letter, never an exception);
2. embed the documents' texts in one call;
3. walk the records in order: unlabelled documents are predicted in runs, a document whose labels are
   known (inline, or feedback that arrived early) is predicted and then learned before the next
   document is predicted, so every prediction is made by the model that has learned exactly the
   labelled documents before it (prequential, test-then-train); a feedback message is joined to its
   waiting document and learned where it stands in the record order;
4. expire old waiting entries, and turn the model's events into drift alerts.

Every change of model or runtime state happens here, in record order, so replaying the same records
from a checkpoint reproduces the same state.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labelflow.operators.base import Features
from labelflow.stream.config import Settings
from labelflow.stream.drift_alerts import alert_from_event, metric_level
from labelflow.stream.feedback_store import Evictions, FeedbackOutcome, FeedbackStore
from labelflow.stream.messages import (
    DeadLetter,
    Document,
    LabelFeedback,
    MessageError,
    Reason,
    decode_document,
    decode_feedback,
    utc_now,
)
from labelflow.stream.model_runtime import ModelInconsistentError, ModelRuntime, Scored
from labelflow.stream.outputs import (
    OutputMessage,
    checked,
    dead_letter_key,
    dead_letter_prefix_bytes,
    fitted_alert,
    prediction_bytes,
)
from labelflow.stream.quality import QualityTracker
from labelflow.stream.routing import LabelRouter

logger = logging.getLogger(__name__)

HEADER_REASON = "labelflow-reason"
HEADER_LABELS = "labelflow-labels"


@dataclass(frozen=True, slots=True)
class InputRecord:
    """A consumed Kafka record, reduced to what processing needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


class RuntimeCounters:
    """Monotonic counters of the runtime; checkpointed with the model so they count each record once.

    >>> c = RuntimeCounters()
    >>> c.inc("documents_in", 2); c.inc_group("dead_letters", "invalid_json")
    >>> c.as_dict()["dead_letters"], c.learned_total
    ({'invalid_json': 1}, 0)
    """

    SIMPLE = (
        "documents_in",
        "feedback_in",
        "predictions_out",
        "routed",
        "duplicate_documents",
        "expired_documents",
    )
    GROUPS = ("dead_letters", "learned", "feedback", "drift_events", "evictions")

    def __init__(self) -> None:
        self.simple: dict[str, int] = {name: 0 for name in self.SIMPLE}
        self.groups: dict[str, dict[str, int]] = {name: defaultdict(int) for name in self.GROUPS}

    def inc(self, name: str, n: int = 1) -> None:
        self.simple[name] += n

    def inc_group(self, group: str, key: str, n: int = 1) -> None:
        self.groups[group][key] += n

    def get(self, name: str) -> int:
        return self.simple[name]

    def group(self, name: str) -> dict[str, int]:
        return dict(self.groups[name])

    @property
    def learned_total(self) -> int:
        return sum(self.groups["learned"].values())

    def as_dict(self) -> dict[str, Any]:
        return {**self.simple, **{name: dict(values) for name, values in self.groups.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuntimeCounters:
        counters = cls()
        for name in cls.SIMPLE:
            counters.simple[name] = int(data.get(name, 0))
        for name in cls.GROUPS:
            for key, value in (data.get(name) or {}).items():
                counters.groups[name][str(key)] = int(value)
        return counters


def dead_letter_message(
    settings: Settings, counters: RuntimeCounters, record: InputRecord, error: Exception, worker_id: str
) -> OutputMessage:
    """The dead-letter message for a bad record (counted by reason); the reason is also a header.

    It always fits in ``max_output_bytes``: the kept prefix of the original and the key are bounded.
    """
    letter = DeadLetter.from_record(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        error=error,
        max_bytes=dead_letter_prefix_bytes(settings.dead_letter_max_bytes, settings.max_output_bytes),
        worker=worker_id,
    )
    counters.inc_group("dead_letters", letter.reason.value)
    return OutputMessage(
        settings.topics.deadletter,
        dead_letter_key(record.key),
        letter.to_bytes(),
        ((HEADER_REASON, letter.reason.value.encode()),),
    )


@dataclass
class BatchOutcome:
    """What a batch produced and how long each stage took."""

    messages: list[OutputMessage] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    latencies_s: list[float] = field(default_factory=list)
    predictions: int = 0
    learned: int = 0
    drift_alerts: int = 0


@dataclass
class _Pending:
    record: InputRecord
    doc: Document
    x: Features


class BatchProcessor:
    """Decodes, embeds, predicts, learns and joins feedback for one micro-batch at a time.

    Parameters
    ----------
    settings
        Topic names, size limits and routing rules.
    runtime
        The model and embedder.
    store
        The feedback join store.
    counters, quality
        Runtime counters and the prequential quality tracker (both checkpointed by the worker).
    worker_id
        Written into dead letters.
    """

    def __init__(
        self,
        settings: Settings,
        runtime: ModelRuntime,
        store: FeedbackStore,
        counters: RuntimeCounters,
        quality: QualityTracker,
        worker_id: str = "labelflow",
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.store = store
        self.counters = counters
        self.quality = quality
        self.worker_id = worker_id
        self.router = LabelRouter(settings.routing)
        self._documents = settings.input_documents_topic
        self._labels = settings.topics.labels
        self._position = counters.get("documents_in")  # documents read before the one being processed

    # -- helpers --------------------------------------------------------------------------------------

    def _dead_letter(self, out: BatchOutcome, record: InputRecord, error: Exception) -> None:
        out.messages.append(dead_letter_message(self.settings, self.counters, record, error, self.worker_id))

    def _dead_letter_failure(
        self, out: BatchOutcome, record: InputRecord, stage: str, error: Exception
    ) -> None:
        """An unexpected exception while ``stage`` handled ``record``: logged with its traceback (a defect
        to fix), and the record dead-lettered as a processing error while the stream goes on."""
        logger.exception("event=%s_failed topic=%s offset=%d", stage, record.topic, record.offset)
        detail = f"{stage} failed: {type(error).__name__}: {error}"
        self._dead_letter(out, record, MessageError(Reason.PROCESSING_ERROR, detail))

    def _learn(
        self, out: BatchOutcome, record: InputRecord, x: Features, labels: Sequence[str], source: str
    ) -> bool:
        started = time.perf_counter()
        try:
            self.runtime.learn(x, labels)
        except ModelInconsistentError:
            raise  # fatal: the worker stops and restarts from its checkpoint (labels without models)
        except MessageError as exc:  # refused before learning (label budget): dead-lettered with its reason
            self._dead_letter(out, record, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - the stream goes on; the record is dead-lettered
            self._dead_letter_failure(out, record, "learn", exc)
            return False
        finally:
            out.stage_seconds["learn"] += time.perf_counter() - started
        self.counters.inc_group("learned", source)
        out.learned += 1
        # Events are collected right after the update that caused them, so alerts carry exact positions.
        self._collect_events(out, self._position)
        return True

    # -- the batch --------------------------------------------------------------------------------

    def process(self, records: Sequence[InputRecord]) -> BatchOutcome:
        out = BatchOutcome()
        max_bytes = self.settings.max_message_bytes
        extra = self.settings.extra_fields
        limits = self.settings.decode_limits
        started = time.perf_counter()
        positions: dict[int, int] = {}  # stream position (documents read so far) of each document record
        decoded: list[tuple[InputRecord, Document | LabelFeedback]] = []
        for record in records:
            try:
                if record.topic == self._documents:
                    self.counters.inc("documents_in")
                    positions[id(record)] = self.counters.get("documents_in")
                    decoded.append((record, decode_document(record.value, max_bytes, extra, limits=limits)))
                elif record.topic == self._labels:
                    self.counters.inc("feedback_in")
                    decoded.append((record, decode_feedback(record.value, max_bytes, extra, limits=limits)))
                else:
                    raise MessageError(Reason.INVALID_VALUE, f"record from unexpected topic {record.topic!r}")
            except MessageError as exc:
                self._dead_letter(out, record, exc)
            except Exception as exc:  # noqa: BLE001 - a decoder defect costs this record, not the worker
                self._dead_letter_failure(out, record, "decode", exc)
        out.stage_seconds["decode"] += time.perf_counter() - started

        documents = [(record, message) for record, message in decoded if isinstance(message, Document)]
        features: dict[int, Features] = {}
        if documents:
            started = time.perf_counter()
            embedded = self.runtime.features([doc for _, doc in documents])
            out.stage_seconds["embed"] += time.perf_counter() - started
            for (record, _), row in zip(documents, embedded, strict=True):
                if isinstance(row, MessageError):
                    self._dead_letter(out, record, row)
                else:
                    features[id(record)] = row

        # Records are applied in their order: the same records always give the same model, whatever
        # the batch boundaries (a replay after a restore cuts batches differently).
        run: list[_Pending] = []
        for record, message in decoded:
            if isinstance(message, Document):
                self._position = positions[id(record)]
                x = features.get(id(record))
                if x is None:
                    continue
                run.append(_Pending(record, message, x))
                labels, source = self._known_labels(message)
                if labels is not None:
                    self._predict_run(out, run, learn_last=(labels, source))
                    run = []
            else:
                if run:
                    self._predict_run(out, run, learn_last=None)
                    run = []
                self._join_feedback(out, record, message)
        if run:
            self._predict_run(out, run, learn_last=None)
        self._position = self.counters.get("documents_in")

        expired_documents, expired_feedback = self.store.expire()
        self.counters.inc("expired_documents", expired_documents)
        if expired_feedback:
            self.counters.inc_group("feedback", FeedbackOutcome.UNMATCHED.value, expired_feedback)
        self._collect_events(out, self._position)
        return out

    def _known_labels(self, doc: Document) -> tuple[list[str] | None, str]:
        """The labels to learn this document with right after predicting it, if any (and their source)."""
        if doc.labels is not None:
            if self.store.was_learned(doc.id):
                self.counters.inc("duplicate_documents")
                return None, ""
            early = self.store.take_early_feedback(doc.id)
            if early is not None:  # inline labels win; the early feedback is a duplicate of them
                self.counters.inc_group("feedback", FeedbackOutcome.DUPLICATE.value)
            return doc.labels, "inline"
        early = self.store.take_early_feedback(doc.id)
        if early is None:
            return None, ""
        if self.store.was_learned(doc.id):  # a re-sent document whose labels were learned already
            self.counters.inc_group("feedback", FeedbackOutcome.DUPLICATE.value)
            return None, ""
        return list(early.labels), "feedback"

    def _predict_run(
        self, out: BatchOutcome, run: list[_Pending], learn_last: tuple[list[str], str] | None
    ) -> None:
        started = time.perf_counter()
        xs = [item.x for item in run]
        if learn_last is not None and len(xs) > 1:
            # The document learned next is predicted on its own: a vectorized batch rounds differently,
            # and what the model learns must not depend on where the records were cut into batches.
            results = self.runtime.predict(xs[:-1]) + self.runtime.predict(xs[-1:])
        else:
            results = self.runtime.predict(xs)
        out.stage_seconds["predict"] += time.perf_counter() - started
        produced_at = utc_now()
        now_ms = produced_at.timestamp() * 1000.0
        model_version = self.counters.learned_total
        partition_version = self.runtime.partition_version
        for index, (item, result) in enumerate(zip(run, results, strict=True)):
            is_last = index == len(run) - 1
            if isinstance(result, Exception):
                self._dead_letter(
                    out,
                    item.record,
                    MessageError(
                        Reason.PROCESSING_ERROR, f"prediction failed: {type(result).__name__}: {result}"
                    ),
                )
                continue
            latency_ms = max(0.0, now_ms - item.record.timestamp_ms) if item.record.timestamp_ms else 0.0
            if not self._publish(
                out, item, result, model_version, partition_version, latency_ms, produced_at
            ):
                continue  # dead-lettered: its prediction cannot be produced, so it is not learned either
            if is_last and learn_last is not None:
                labels, source = learn_last
                if self._learn(out, item.record, item.x, labels, source):
                    self.quality.add(result.labels, labels)
                    self.store.mark_learned(item.doc.id)
                    self.store.discard_document(item.doc.id)
                    if source == "feedback":
                        self.counters.inc_group("feedback", FeedbackOutcome.MATCHED.value)
            elif item.doc.labels is None and not self.store.was_learned(item.doc.id):
                # Evicted entries are remembered as expired: their feedback will count as late.
                self._count_evictions(self.store.add_document(item.doc.id, item.x, result.labels))

    def _publish(
        self,
        out: BatchOutcome,
        item: _Pending,
        result: Scored,
        model_version: int,
        partition_version: int,
        latency_ms: float,
        produced_at: Any,
    ) -> bool:
        """Add the prediction (and routed copies) of one document; False if it was dead-lettered instead."""
        doc_id = item.doc.id
        labels = sorted(result.labels)
        limit = self.settings.max_output_bytes
        try:
            key = doc_id.encode("utf-8")
            value = prediction_bytes(
                id=doc_id,
                labels=labels,
                scores=result.scores,
                model_version=model_version,
                partition_version=partition_version,
                latency_ms=round(latency_ms, 3),
                produced_at=produced_at,
            )
            message = checked(OutputMessage(self.settings.topics.predictions, key, value), limit)
            routed: list[OutputMessage] = []
            if self.router:
                header = ((HEADER_LABELS, json.dumps(labels).encode("utf-8")),)
                for topic in self.router.topics_for(labels):
                    routed.append(checked(OutputMessage(topic, key, item.record.value or b"", header), limit))
        except (MessageError, UnicodeError) as exc:
            error = exc if isinstance(exc, MessageError) else MessageError(Reason.OUTPUT_INVALID, str(exc))
            self._dead_letter(out, item.record, error)
            return False
        out.messages.append(message)
        out.predictions += 1
        out.latencies_s.append(latency_ms / 1000.0)
        self.counters.inc("predictions_out")
        if routed:
            out.messages.extend(routed)
            self.counters.inc("routed", len(routed))
        return True

    def _join_feedback(self, out: BatchOutcome, record: InputRecord, message: LabelFeedback) -> None:
        doc_id = message.id
        if self.store.was_learned(doc_id):
            self.counters.inc_group("feedback", FeedbackOutcome.DUPLICATE.value)
            return
        waiting = self.store.take_document(doc_id)
        if waiting is not None:
            if self._learn(out, record, waiting.features, message.labels, "feedback"):
                self.quality.add(waiting.predicted, message.labels)
                self.store.mark_learned(doc_id)
                self.counters.inc_group("feedback", FeedbackOutcome.MATCHED.value)
            return
        if self.store.was_expired(doc_id):
            self.counters.inc_group("feedback", FeedbackOutcome.LATE.value)
            return
        self.counters.inc_group("feedback", FeedbackOutcome.EARLY.value)
        self._count_evictions(self.store.add_early_feedback(doc_id, message.labels))

    def _count_evictions(self, evicted: Evictions) -> None:
        """An evicted document counts as expired (its feedback will be late), evicted feedback as
        unmatched; both also count as evictions, by side."""
        if evicted.documents:
            self.counters.inc("expired_documents", evicted.documents)
            self.counters.inc_group("evictions", "documents", evicted.documents)
        if evicted.feedback:
            self.counters.inc_group("feedback", FeedbackOutcome.UNMATCHED.value, evicted.feedback)
            self.counters.inc_group("evictions", "feedback", evicted.feedback)

    def _collect_events(self, out: BatchOutcome, position: int) -> None:
        """Publish the model's pending events as drift alerts at stream ``position`` (documents read)."""
        events = self.runtime.drain_events()
        if not events:
            return
        for event in events:
            try:
                alert = alert_from_event(event, position=position)
            except (ValueError, TypeError) as exc:
                logger.warning("event=drift_event_unreadable type=%s error=%r", type(event).__name__, exc)
                continue
            if alert.severity == "drift":  # warnings are published, but only detections are counted
                self.counters.inc_group("drift_events", f"{alert.kind}/{metric_level(alert.level)}")
            # Keyed by kind/level: one partition keeps each detector's alerts in order, and a compacted
            # topic (on Apache Kafka) keeps the latest alert per detector.
            key = f"{alert.kind}/{alert.level}".encode()
            value = fitted_alert(alert, key, self.settings.max_output_bytes)
            out.messages.append(OutputMessage(self.settings.topics.drift, key, value))
            out.drift_alerts += 1
