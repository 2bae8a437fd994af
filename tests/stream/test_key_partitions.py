"""Output records land on the partition Kafka's default partitioner gives their key."""

from __future__ import annotations

import threading
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2

from labelflow.stream.config import Settings
from labelflow.stream.delivery import OutputDelivery
from labelflow.stream.health import BrokerHealth
from labelflow.stream.kafka_io import build_producer
from labelflow.stream.key_partitions import key_partitions, murmur2_many
from labelflow.stream.outputs import OutputMessage
from labelflow.stream.testing import TopicCollector, create_topics


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=20))
def test_murmur2_of_a_batch_is_kafka_pythons_murmur2(keys: list[bytes]) -> None:
    assert murmur2_many(keys).tolist() == [murmur2(key) for key in keys]


def test_key_partitions_follow_the_default_partitioners_rule() -> None:
    keys = [f"doc-{i}".encode() for i in range(200)] + ["é東".encode(), b""]
    ids = [5, 1, 3]  # unsorted ids: the rule indexes the sorted ones
    expected = [sorted(ids)[(murmur2(key) & 0x7FFFFFFF) % 3] for key in keys]
    assert key_partitions(keys, ids) == expected
    assert len(set(expected)) == 3


def test_delivered_outputs_are_on_their_keys_partitions(settings_for: Callable[..., Settings]) -> None:
    s = settings_for("keyparts")
    create_topics(s)
    health = BrokerHealth(s.health.unready_after_s, s.health.down_after_s)
    delivery = OutputDelivery(lambda: build_producer(s), health, threading.Event())
    try:
        keyed = [OutputMessage(s.topics.predictions, f"doc-{i}".encode(), b"{}") for i in range(60)]
        unkeyed = [OutputMessage(s.topics.deadletter, None, b"{}")]
        assert delivery.deliver(keyed + unkeyed) == []
    finally:
        delivery.close(5.0)
    with TopicCollector(s, s.topics.predictions) as predictions:
        records = predictions.wait_until(lambda r: len(r) >= 60, 30, "every output")
    n = s.topics.partitions
    assert {r.key: r.partition for r in records} == {
        m.key: (murmur2(m.key or b"") & 0x7FFFFFFF) % n for m in keyed
    }
    assert len({r.partition for r in records}) == n
