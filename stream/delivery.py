"""Delivering a batch's outputs: produce, flush, and keep trying through a broker outage.

A batch's outputs must be delivered before its offsets are committed (output at least once). While
the broker does not answer, ``OutputDelivery.deliver`` keeps the batch and retries (backing off up to a
few seconds) until the broker takes it, so a worker picks up where it was when the broker returns.
A producer that the broker no longer recognises (a broker that lost its state answers
``UnknownProducerId``) is replaced by a new one. Only two things end the wait: errors that no retry
can fix (an oversized record, a missing authorisation) raise ``ProduceError``, and a stop request
returns what is still undelivered, for the checkpoint to carry (see ``runtime_state``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidRecordError,
    InvalidTopicError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    SaslAuthenticationFailedError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
    UnsupportedVersionError,
)

from labelflow.stream.health import BrokerHealth
from labelflow.stream.kafka_io import BrokerUnavailable
from labelflow.stream.key_partitions import key_partitions
from labelflow.stream.outputs import OutputMessage

logger = logging.getLogger(__name__)

# Errors no retry can fix: the record or the configuration is wrong. Any other error is waited out:
# retriable ones with the same producer, the rest (the broker forgot this producer's id or sequence
# numbers, or answered with an error it does not explain) with a new producer.
_PERMANENT_ERRORS = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidRecordError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    SaslAuthenticationFailedError,
    UnsupportedVersionError,
    UnsupportedForMessageFormatError,
)
# How long one flush waits before the stop flag is looked at again.
_FLUSH_SLICE_S = 1.0
_BACKOFF_MIN_S, _BACKOFF_MAX_S = 0.2, 5.0


class ProduceError(RuntimeError):
    """Outputs of a batch could not be delivered and never will be; its offsets are not committed."""


def _retriable(exc: BaseException | None) -> bool:
    """Whether the same producer may simply send again."""
    return bool(getattr(exc, "retriable", False))


class OutputDelivery:
    """Produces output messages with one producer (rebuilt when the broker forgot it).

    Parameters
    ----------
    build
        Makes a new producer (``kafka_io.build_producer`` with the worker's settings).
    health
        Told of every answer and failure of the broker.
    stop
        Set when the worker must stop: an ongoing delivery then returns what is undelivered.
    """

    def __init__(
        self, build: Callable[[], KafkaProducer], health: BrokerHealth, stop: threading.Event
    ) -> None:
        self._build = build
        self.health = health
        self.stop = stop
        self.producer: KafkaProducer = build()
        self.rebuilt = 0  # producers replaced (for logs and tests)

    def deliver(self, messages: Sequence[OutputMessage]) -> list[OutputMessage]:
        """Produce ``messages`` and wait until the broker has them all; [] when delivered.

        Returns the undelivered messages only when a stop was requested during the wait.
        """
        pending = list(messages)
        backoff = _BACKOFF_MIN_S
        while pending:
            sent, unsent, rebuild = self._send(pending)
            self._flush(sent)
            failed = [m for m, f in sent if not (f.is_done and f.succeeded())] + unsent
            errors = [f.exception for _, f in sent if f.is_done and f.failed()]
            permanent = [e for e in errors if isinstance(e, _PERMANENT_ERRORS)]
            if permanent:
                raise ProduceError(
                    f"{len(permanent)} of {len(pending)} output messages cannot be delivered: {permanent[0]!r}"
                )
            if not failed:
                self.health.contact()
                return []
            self.health.failed()
            if self.stop.is_set():
                return failed
            rebuild = rebuild or any(not _retriable(e) for e in errors)
            logger.warning(
                "event=delivery_retry undelivered=%d error=%r new_producer=%s backoff_s=%.1f",
                len(failed),
                errors[0] if errors else "not acknowledged yet",
                rebuild,
                backoff,
            )
            if rebuild:
                self._replace_producer()
            self.stop.wait(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)
            pending = failed
        return []

    def _send(
        self, messages: list[OutputMessage]
    ) -> tuple[list[tuple[OutputMessage, Any]], list[OutputMessage], bool]:
        """Hand messages to the producer: (sent with futures, not sent, whether the producer is broken)."""
        sent: list[tuple[OutputMessage, Any]] = []
        try:
            partitions = self._partitions(messages)
        except _PERMANENT_ERRORS as exc:
            raise ProduceError(f"output messages cannot be produced: {exc!r}") from exc
        except KafkaError as exc:  # no metadata within max_block_ms: as a send() that found none
            return sent, messages, not _retriable(exc)
        for index, m in enumerate(messages):
            try:
                future = self._send_one(m, partitions[index])
            except _PERMANENT_ERRORS as exc:
                raise ProduceError(f"output message for {m.topic} cannot be produced: {exc!r}") from exc
            except KafkaError as exc:  # no metadata within max_block_ms (broker away), a broken producer
                return sent, messages[index:], not _retriable(exc)
            sent.append((m, future))
        return sent, [], False

    def _send_one(self, m: OutputMessage, partition: int | None) -> Any:
        headers = list(m.headers) or None
        try:
            return self.producer.send(m.topic, key=m.key, value=m.value, headers=headers, partition=partition)
        except ValueError:  # the topic's partitions changed since they were looked up: the producer picks
            if partition is None:
                raise
            return self.producer.send(m.topic, key=m.key, value=m.value, headers=headers)

    def _partitions(self, messages: list[OutputMessage]) -> list[int | None]:
        """Each keyed message's partition as the producer's default partitioner would pick it, for the
        whole batch in a few vectorized steps (``key_partitions``); None: no key, the producer picks."""
        keyed: dict[str, list[int]] = {}
        for index, m in enumerate(messages):
            if m.key is not None:
                keyed.setdefault(m.topic, []).append(index)
        partitions: list[int | None] = [None] * len(messages)
        for topic, indices in keyed.items():
            ids = self.producer.partitions_for(topic)  # the producer's metadata; waits when it has none
            keys = [messages[index].key or b"" for index in indices]
            for index, partition in zip(indices, key_partitions(keys, sorted(ids)), strict=True):
                partitions[index] = partition
        return partitions

    def _flush(self, sent: list[tuple[OutputMessage, Any]]) -> None:
        """Wait until every sent message is acknowledged or failed, or a stop is requested."""
        done = sum(f.is_done for _, f in sent)
        while done < len(sent):
            try:
                self.producer.flush(timeout=_FLUSH_SLICE_S)
            except KafkaTimeoutError:
                before, done = done, sum(f.is_done for _, f in sent)
                if done == before:  # not a slow broker: no answer at all during the slice
                    self.health.failed()
                    if self.stop.is_set():
                        return
                continue
            done = len(sent)

    def _replace_producer(self) -> None:
        try:
            new = self._build()
        except (BrokerUnavailable, KafkaError) as exc:  # the broker went away again: retry later
            logger.warning("event=producer_rebuild_failed error=%r", exc)
            return
        old, self.producer = self.producer, new
        self.rebuilt += 1
        try:
            old.close(timeout=0)
        except KafkaError as exc:  # closing a broken producer: nothing more to lose
            logger.debug("event=old_producer_close_failed error=%r", exc)

    def close(self, timeout_s: float) -> None:
        """Deliver what the producer still holds within ``timeout_s``, then close it."""
        try:
            self.producer.close(timeout=max(0.0, timeout_s))
        except KafkaError as exc:
            logger.warning("event=producer_close_failed error=%r", exc)
