"""Thin wrappers that build kafka-python clients from ``Settings`` and make sure topics exist."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, codec
from kafka.admin import NewTopic
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from labelflow.stream.config import Settings
from labelflow.stream.log_redaction import redact_in_logs

logger = logging.getLogger(__name__)

# Room for a record's own framing (key, headers, batch header) above the configured value limit.
_FRAMING_BYTES = 64 * 1024


class BrokerUnavailable(RuntimeError):
    """No broker answered at the configured bootstrap servers."""


class CodecUnavailable(RuntimeError):
    """A Kafka compression codec's library is not installed."""


def default_client_id(prefix: str = "labelflow") -> str:
    return f"{prefix}-{socket.gethostname()}-{os.getpid()}"


def _common(settings: Settings, client_id: str | None) -> dict[str, Any]:
    # kafka-python logs its configuration (and SASL requests) at DEBUG: the secrets it is given here
    # are redacted from every log handler first.
    redact_in_logs(settings.security.secret_values())
    return {
        "bootstrap_servers": list(settings.brokers),
        "bootstrap_timeout_ms": int(settings.connect_timeout_s * 1000),
        "client_id": client_id or settings.client_id or default_client_id(),
        **settings.security.kafka_kwargs(),
    }


def _connect(factory: Any, what: str, settings: Settings, **kwargs: Any) -> Any:
    try:
        return factory(**kwargs)
    except KafkaTimeoutError:
        raise BrokerUnavailable(
            f"no Kafka broker answered at {','.join(settings.brokers)} while creating the {what} "
            "(is the broker running? `labelflow broker` starts a local one)"
        ) from None


def build_producer(settings: Settings, *, client_id: str | None = None, **overrides: Any) -> KafkaProducer:
    """A producer for predictions, dead letters, drift alerts and routed documents.

    acks=all with idempotence: a retried send never duplicates a message, and a flush returns only
    when every replica has it (predictions are flushed before offsets are committed). Every output is
    checked against ``max_output_bytes`` before it is sent (``outputs.checked``), so the request limit
    only needs room for the record framing above it.
    """
    compression = settings.producer.compression
    config: dict[str, Any] = {
        **_common(settings, client_id),
        "acks": "all",
        "enable_idempotence": True,
        # A few milliseconds of lingering batches a micro-batch's outputs into few requests.
        "linger_ms": 5,
        "max_request_size": settings.max_output_bytes + _FRAMING_BYTES,
        "compression_type": None if compression == "none" else compression,
    }
    config.update(overrides)
    return _connect(KafkaProducer, "producer", settings, **config)


def check_codecs() -> None:
    """Fail at start, naming the package, when a Kafka compression codec's library is missing.

    Records compressed with any codec may arrive (librdkafka producers often use lz4, snappy or zstd);
    kafka-python decompresses them only with these libraries installed, and fails each fetch of such a
    record otherwise: a crash loop, not a dead letter. They are dependencies of labelflow; this check
    catches an environment where one is missing.
    """
    missing = [
        package
        for package, available in (
            ("lz4", codec.has_lz4()),
            ("python-snappy", codec.has_snappy()),
            ("zstandard", codec.has_zstd()),
        )
        if not available
    ]
    if missing:
        raise CodecUnavailable(
            "Kafka compression codecs are unavailable; install the package(s) "
            + ", ".join(missing)
            + " (labelflow's dependencies), or records compressed with them cannot be read"
        )


def build_consumer(settings: Settings, *, client_id: str | None = None, **overrides: Any) -> KafkaConsumer:
    """A group consumer with manual commits, sized so oversize records still arrive (and get dead-lettered).

    The range assignor gives one consumer the same partition numbers of every subscribed topic, so a
    document and its feedback (same key, same partition count) meet in the same worker.
    """
    check_codecs()
    fetch_bytes = max(settings.max_message_bytes * 4, 1_048_576) + _FRAMING_BYTES
    config: dict[str, Any] = {
        **_common(settings, client_id),
        "group_id": settings.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": settings.consumer.auto_offset_reset,
        "session_timeout_ms": settings.consumer.session_timeout_ms,
        "heartbeat_interval_ms": settings.consumer.heartbeat_interval_ms,
        "max_poll_interval_ms": settings.consumer.max_poll_interval_ms,
        "fetch_max_wait_ms": settings.consumer.fetch_max_wait_ms,
        "max_poll_records": settings.batch.size,
        "max_partition_fetch_bytes": fetch_bytes,
        "fetch_max_bytes": max(fetch_bytes, 52_428_800),
        "partition_assignment_strategy": (RangePartitionAssignor,),
        # The broker may not create topics behind our back with the wrong partition count.
        "allow_auto_create_topics": False,
    }
    config.update(overrides)
    return _connect(KafkaConsumer, "consumer", settings, **config)


def build_admin(settings: Settings, *, client_id: str | None = None) -> KafkaAdminClient:
    return _connect(KafkaAdminClient, "admin client", settings, **_common(settings, client_id))


def ensure_topics(settings: Settings, topics: dict[str, int], *, timeout_s: float = 10.0) -> list[str]:
    """Create the topics that do not exist yet (name -> partitions); the names it created."""
    admin = build_admin(settings)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing
        ]
        created: list[str] = []
        for topic in missing:
            try:
                admin.create_topics([topic], timeout_ms=int(timeout_s * 1000))
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass  # another worker created it between our listing and our request
        if created:
            logger.info("event=topics_created topics=%s", ",".join(created))
        _wait_for_topics(admin, list(topics), timeout_s)
        return created
    except KafkaError as exc:
        raise BrokerUnavailable(f"could not create topics {sorted(topics)}: {exc}") from exc
    finally:
        admin.close()


def _wait_for_topics(admin: KafkaAdminClient, names: Iterable[str], timeout_s: float) -> None:
    wanted = set(names)
    deadline = time.monotonic() + timeout_s
    while True:
        missing = wanted - set(admin.list_topics())
        if not missing:
            return
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"topics {sorted(missing)} did not appear within {timeout_s:.0f} s")
        time.sleep(0.05)


def worker_topics(settings: Settings) -> dict[str, int]:
    """Every topic a worker of these settings reads or writes, with the partition count to create."""
    partitions = settings.topics.partitions
    topics = {
        settings.input_documents_topic: partitions,
        settings.topics.labels: partitions,
        settings.topics.predictions: partitions,
        settings.topics.drift: 1,
        settings.topics.deadletter: 1,
    }
    if settings.role == "embed":
        topics[settings.topics.embedded] = partitions
        topics.setdefault(settings.topics.documents, partitions)
    for rule in settings.routing:
        topics.setdefault(rule.topic, partitions)
    return topics
