"""Micro-batches in record-timestamp order across all assigned partitions.

Kafka orders records within a partition only. A worker reads two topics (documents and their delayed
labels) and often several partitions of each; which partition a fetch happens to return first would
otherwise decide the order in which the model sees documents and feedback, so two runs over the same
data (or a replay after a crash) would learn in different orders. ``OrderedBatcher`` buffers what the
consumer returns per partition and hands records out smallest timestamp first, waiting (briefly) for a
partition whose next record is not fetched yet unless that partition is caught up with its high-water
mark. The result is the order the records were produced in, as far as the bounded wait
(``max_idle_s``) and buffer (``max_buffered``) allow: beyond them a batch goes on without the lagging
partition, which with several partitions and a backlog happens often (docs/operations.md, *Delivery
guarantees*, says what then holds).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from kafka import KafkaConsumer, TopicPartition


class OrderedBatcher:
    """Assembles micro-batches from ``consumer`` in timestamp order (ties: topic, partition, offset).

    Parameters
    ----------
    consumer
        A subscribed (or assigned) kafka-python consumer.
    max_buffered
        Records buffered in all; beyond it no more is fetched until the buffers drain, and a partition
        that is being waited for is not waited for any longer (bounds memory). kafka-python's own
        fetch buffer is bounded by the fetch sizes. (Pausing partitions would bound it more tightly,
        but kafka-python 3.0.12 can stop fetching a partition resumed while it had buffered data.)
    max_idle_s
        How long to wait for a partition that may hold earlier records before going on without it
        (like Kafka Streams' ``max.task.idle.ms``).
    """

    def __init__(self, consumer: KafkaConsumer, *, max_buffered: int, max_idle_s: float) -> None:
        self.consumer = consumer
        self.max_buffered = max_buffered
        self.max_idle_s = max_idle_s
        self._buffers: dict[TopicPartition, deque[Any]] = {}
        self._batch: list[Any] = []
        self.forced = 0  # batches that went on without a partition that was not caught up (for tests/logs)

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget everything buffered for ``partitions`` (revoked: their new owner reads them).

        Called from the rebalance callback while ``next_batch`` may be assembling a batch: records of
        these partitions already put into that batch are removed too.
        """
        gone = set(partitions)
        for tp in gone:
            self._buffers.pop(tp, None)
        if self._batch:
            self._batch[:] = [r for r in self._batch if TopicPartition(r.topic, r.partition) not in gone]

    def buffered(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def _caught_up(self, tp: TopicPartition) -> bool:
        highwater = self.consumer.highwater(tp)
        if highwater is None:
            return False
        try:
            position = self.consumer.position(tp, timeout_ms=0)
        except Exception:  # noqa: BLE001 - not assigned any more, or no position yet: not caught up
            return False
        return position is not None and position >= highwater

    def _blocked(self) -> bool:
        """Whether some assigned partition with nothing buffered may still hold an earlier record."""
        return any(not self._buffers.get(tp) and not self._caught_up(tp) for tp in self.consumer.assignment())

    def _fill(self, timeout_ms: int, max_records: int) -> None:
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        assigned = self.consumer.assignment()
        for tp, records in polled.items():
            if tp in assigned:
                self._buffers.setdefault(tp, deque()).extend(records)

    def _emit(self, size: int, force: bool) -> None:
        if not force and self._blocked():
            return
        # The buffers' heads in a heap: one push and one pop per record instead of a look at every
        # partition's head (the same order: timestamp, then topic and partition).
        heads = [(b[0].timestamp, tp.topic, tp.partition, tp) for tp, b in self._buffers.items() if b]
        heapq.heapify(heads)
        batch = self._batch
        while heads and len(batch) < size:
            tp = heapq.heappop(heads)[3]
            buffer = self._buffers.get(tp)
            if not buffer:  # dropped by a rebalance meanwhile
                continue
            batch.append(buffer.popleft())
            if buffer:
                heapq.heappush(heads, (buffer[0].timestamp, tp.topic, tp.partition, tp))
            elif not force and not self._caught_up(tp):
                return  # this partition ran dry and may have earlier records than the others' heads

    def next_batch(
        self, size: int, max_wait_s: float, stop: threading.Event, idle_poll_ms: int = 250
    ) -> list[Any]:
        """Up to ``size`` records: returns when full, ``max_wait_s`` after the first record, or when idle."""
        self._batch = []
        first_at: float | None = None
        blocked_since: float | None = None
        while len(self._batch) < size and not stop.is_set():
            now = time.monotonic()
            if first_at is not None and now - first_at >= max_wait_s:
                break
            if self.buffered():
                timeout_ms = 0 if blocked_since is None else 10
            elif first_at is None:
                timeout_ms = idle_poll_ms
            else:
                timeout_ms = max(1, int((first_at + max_wait_s - now) * 1000))
            full = self.buffered() >= self.max_buffered
            if not full:
                self._fill(timeout_ms, max_records=size)
            before = len(self._batch)
            force = full or (
                blocked_since is not None and time.monotonic() - blocked_since >= self.max_idle_s
            )
            self._emit(size, force)
            if force and len(self._batch) > before:
                self.forced += 1
            if len(self._batch) > before:
                blocked_since = None
                if first_at is None:
                    first_at = time.monotonic()
            elif self.buffered():
                blocked_since = blocked_since or time.monotonic()
            elif first_at is None:
                return []  # nothing to do: let the worker do its housekeeping
        batch, self._batch = self._batch, []
        return batch
