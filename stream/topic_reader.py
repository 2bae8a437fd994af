"""Read a whole topic without joining a consumer group (manual assignment, from the beginning)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from labelflow.stream.config import Settings
from labelflow.stream.kafka_io import build_consumer


class TopicNotFound(LookupError):
    """The topic does not exist on the broker."""


def assign_all(consumer: KafkaConsumer, topic: str, timeout_s: float = 5.0) -> list[TopicPartition]:
    """Assign every partition of ``topic`` to ``consumer`` from offset 0."""
    deadline = time.monotonic() + timeout_s
    partitions = consumer.partitions_for_topic(topic)
    while not partitions:
        if time.monotonic() > deadline:
            raise TopicNotFound(f"topic {topic!r} does not exist (or has no partitions)")
        time.sleep(0.1)
        consumer.topics()  # refreshes metadata
        partitions = consumer.partitions_for_topic(topic)
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    return assigned


def read_topic(
    settings: Settings,
    topic: str,
    *,
    idle_timeout_s: float = 2.0,
    follow: bool = False,
    max_messages: int | None = None,
) -> Iterator[ConsumerRecord]:
    """Records of ``topic`` from the beginning, until ``idle_timeout_s`` passes without one.

    ``follow`` keeps waiting for new records forever; ``max_messages`` stops early. No group is joined
    and nothing is committed, so reading never disturbs the workers.
    """
    consumer = build_consumer(settings, group_id=None, enable_auto_commit=False, max_poll_records=2_000)
    try:
        assign_all(consumer, topic)
        seen = 0
        last_record = time.monotonic()
        while max_messages is None or seen < max_messages:
            batch = consumer.poll(timeout_ms=200)
            records = [record for part in batch.values() for record in part]
            records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
            for record in records:
                yield record
                seen += 1
                if max_messages is not None and seen >= max_messages:
                    return
            if records:
                last_record = time.monotonic()
            elif not follow and time.monotonic() - last_record > idle_timeout_s:
                return
    finally:
        consumer.close()


def topic_size(settings: Settings, topic: str, timeout_s: float = 5.0) -> int:
    """Messages in ``topic``: the sum of its partitions' high-water marks, learnt from one fetch.

    (Tansu's offset lookup for "latest" is unreliable; the high-water mark in fetch responses is not.)
    """
    consumer = build_consumer(settings, group_id=None, max_poll_records=1)
    try:
        partitions = assign_all(consumer, topic)
        deadline = time.monotonic() + timeout_s
        while True:
            consumer.poll(timeout_ms=100, max_records=1)
            marks = [consumer.highwater(tp) for tp in partitions]
            if all(mark is not None for mark in marks):
                return int(sum(marks))
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no high-water mark for every partition of {topic!r} within {timeout_s:.0f} s"
                )
    finally:
        consumer.close()
