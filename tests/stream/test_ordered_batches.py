"""Timestamp-ordered micro-batches: the order records were produced in, whatever the fetch timing."""

from __future__ import annotations

import threading
from collections import namedtuple

from kafka import TopicPartition

from labelflow.stream.ordered_batches import OrderedBatcher

Record = namedtuple("Record", "topic partition offset timestamp")
DOCS, LABELS = TopicPartition("docs", 0), TopicPartition("labels", 0)


class ScriptedConsumer:
    """Serves pre-planned fetch results, one per poll (a stand-in for the network's timing)."""

    def __init__(
        self, fetches: list[dict[TopicPartition, list[Record]]], ends: dict[TopicPartition, int]
    ) -> None:
        self.fetches = list(fetches)
        self.ends = ends
        self.positions = {tp: 0 for tp in ends}
        self.paused: set[TopicPartition] = set()
        self.seen: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        if not self.fetches:
            return {}
        fetch = self.fetches.pop(0)
        out = {tp: records for tp, records in fetch.items() if tp not in self.paused}
        for tp, records in out.items():
            self.seen.add(tp)
            self.positions[tp] = records[-1].offset + 1 if records else self.positions[tp]
        return out

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.ends[tp] if tp in self.seen else None

    def position(self, tp: TopicPartition, timeout_ms: int = 0) -> int:
        return self.positions[tp]

    def pause(self, tp: TopicPartition) -> None:
        self.paused.add(tp)

    def resume(self, tp: TopicPartition) -> None:
        self.paused.discard(tp)


def records(tp: TopicPartition, timestamps: list[int], start: int = 0) -> list[Record]:
    return [Record(tp.topic, tp.partition, start + i, ts) for i, ts in enumerate(timestamps)]


def test_merges_by_timestamp_even_when_one_topic_is_fetched_first() -> None:
    docs = records(DOCS, [1, 2, 4, 5, 7])
    labels = records(LABELS, [3, 6])
    # The labels topic arrives whole first; the documents come in two fetches.
    consumer = ScriptedConsumer([{LABELS: labels}, {DOCS: docs[:2]}, {DOCS: docs[2:]}], {DOCS: 5, LABELS: 2})
    batcher = OrderedBatcher(consumer, max_buffered=100, max_idle_s=5.0)
    batch = batcher.next_batch(size=100, max_wait_s=0.2, stop=threading.Event())
    assert [r.timestamp for r in batch] == [1, 2, 3, 4, 5, 6, 7]
    assert batcher.forced == 0


def test_ties_put_documents_before_their_feedback() -> None:
    consumer = ScriptedConsumer(
        [{LABELS: records(LABELS, [5])}, {DOCS: records(DOCS, [5])}], {DOCS: 1, LABELS: 1}
    )
    batch = OrderedBatcher(consumer, max_buffered=10, max_idle_s=5.0).next_batch(10, 0.2, threading.Event())
    assert [r.topic for r in batch] == ["docs", "labels"]


def test_a_partition_that_never_answers_only_delays_by_max_idle() -> None:
    silent = TopicPartition("docs", 1)
    consumer = ScriptedConsumer([{DOCS: records(DOCS, [1, 2])}], {DOCS: 2, silent: 10})
    batcher = OrderedBatcher(consumer, max_buffered=10, max_idle_s=0.05)
    batch = batcher.next_batch(size=10, max_wait_s=1.0, stop=threading.Event())
    assert [r.timestamp for r in batch] == [1, 2] and batcher.forced == 1


def test_batches_are_bounded_and_buffering_stops_at_the_limit() -> None:
    silent = TopicPartition("docs", 1)  # never answers: without the limit the batcher would wait for it
    consumer = ScriptedConsumer(
        [{DOCS: records(DOCS, list(range(30)))}, {DOCS: records(DOCS, list(range(30, 60)), 30)}],
        {DOCS: 60, silent: 5},
    )
    batcher = OrderedBatcher(consumer, max_buffered=20, max_idle_s=30.0)
    first = batcher.next_batch(size=10, max_wait_s=1.0, stop=threading.Event())
    assert [r.offset for r in first] == list(range(10))
    assert len(consumer.fetches) == 1  # 30 buffered > 20: nothing more was fetched
    second = batcher.next_batch(size=100, max_wait_s=0.05, stop=threading.Event())
    assert [r.offset for r in second] == list(range(10, 60))


def test_dropping_revoked_partitions_removes_their_records_from_the_batch_being_built() -> None:
    consumer = ScriptedConsumer(
        [{DOCS: records(DOCS, [1, 2]), LABELS: records(LABELS, [3])}], {DOCS: 2, LABELS: 1}
    )
    batcher = OrderedBatcher(consumer, max_buffered=10, max_idle_s=0.05)
    batcher._batch = list(records(DOCS, [0]))
    batcher.drop([DOCS])
    assert batcher._batch == [] and batcher.buffered() == 0


def test_idle_returns_empty() -> None:
    consumer = ScriptedConsumer([], {DOCS: 0})
    assert (
        OrderedBatcher(consumer, max_buffered=10, max_idle_s=0.05).next_batch(
            10, 0.1, threading.Event(), idle_poll_ms=1
        )
        == []
    )
