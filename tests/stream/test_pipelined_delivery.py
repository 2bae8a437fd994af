"""A batch's outputs are delivered while the next batch is processed, and still: offsets are committed
only for records whose outputs the broker acknowledged, and a checkpoint is written with nothing in
flight (its offsets claim only delivered outputs)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from labelflow.stream.config import Settings
from labelflow.stream.delivery import OutputDelivery
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.outputs import OutputMessage
from labelflow.stream.processor import BatchOutcome, InputRecord
from labelflow.stream.stages import LearnStage
from labelflow.stream.testing import TopicCollector, WorkerThread, create_topics, send
from labelflow.stream.worker import Worker

pytestmark = pytest.mark.broker

N = 120


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: dict[tuple[str, int, int], bytes] = {}  # processed document records -> their key
        self.delivered: set[bytes] = set()
        self.delivering = 0  # deliveries under way
        self.processed_while_delivering = 0
        self.violations: list[str] = []

    def undelivered_below(self, offsets: dict[tuple[str, int], int]) -> list[tuple[str, int, int]]:
        with self.lock:
            return [
                record
                for record, key in self.keys.items()
                if record[2] < offsets.get((record[0], record[1]), -1) and key not in self.delivered
            ]


def test_outputs_are_delivered_while_the_next_batch_is_processed_and_commits_wait_for_them(
    settings_for: Callable[..., Settings],
    double_runtime: Callable[..., ModelRuntime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for(batch__size=10, checkpoint__interval_s=0.2)
    create_topics(settings)
    seen = Recorder()
    deliver, process = OutputDelivery.deliver, LearnStage.process
    commit, checkpoint = Worker._commit, Worker._checkpoint

    def slow_deliver(self: OutputDelivery, messages: Sequence[OutputMessage]) -> list[OutputMessage]:
        with seen.lock:
            seen.delivering += 1
        time.sleep(0.05)  # a slow broker: the next batch is processed meanwhile
        undelivered = deliver(self, messages)
        with seen.lock:
            seen.delivered |= {m.key for m in messages if m.key is not None and m not in undelivered}
            seen.delivering -= 1
        return undelivered

    def recording_process(self: LearnStage, records: Sequence[InputRecord]) -> BatchOutcome:
        with seen.lock:
            seen.processed_while_delivering += seen.delivering > 0
            for r in records:
                if r.topic == settings.topics.documents and r.key is not None:
                    seen.keys[(r.topic, r.partition, r.offset)] = r.key
        return process(self, records)

    def checked_commit(self: Worker, wait: bool = True) -> None:
        missing = seen.undelivered_below(self.ledger.commit_offsets())
        if missing:
            seen.violations.append(f"commit of records whose outputs are not delivered: {missing[:3]}")
        commit(self, wait)

    def checked_checkpoint(self: Worker, reason: str) -> bool:
        if self._inflight is not None:
            seen.violations.append(f"checkpoint ({reason}) with outputs in flight")
        missing = seen.undelivered_below(self.ledger.checkpoint_offsets())
        if missing:
            seen.violations.append(f"checkpoint ({reason}) claims undelivered records: {missing[:3]}")
        return checkpoint(self, reason)

    monkeypatch.setattr(OutputDelivery, "deliver", slow_deliver)
    monkeypatch.setattr(LearnStage, "process", recording_process)
    monkeypatch.setattr(Worker, "_commit", checked_commit)
    monkeypatch.setattr(Worker, "_checkpoint", checked_checkpoint)

    def document(i: int) -> dict[str, Any]:
        return {
            "id": f"d{i}",
            "text": f"word{i % 7} other{i % 3}",
            **({"labels": [f"l{i % 4}"]} if i % 2 else {}),
        }

    with (
        WorkerThread(settings, runtime=double_runtime()) as worker,
        TopicCollector(settings, settings.topics.predictions) as predictions,
    ):
        for start in range(0, N, 30):  # in a few bursts, so that batches come one after another
            send(
                settings,
                [
                    (settings.topics.documents, f"d{i}".encode(), json.dumps(document(i)).encode())
                    for i in range(start, start + 30)
                ],
            )
        predictions.wait_until(lambda r: len(r) >= N, 60, "every prediction")
        worker.wait_for(lambda p: p.checkpoints >= 2, 30, "checkpoints")
        progress = worker.stop()
    assert seen.violations == []
    assert seen.processed_while_delivering > 0  # batches were processed with outputs in flight
    assert {r.key for r in predictions.records} == {f"d{i}".encode() for i in range(N)}
    assert progress.predictions_out == N and progress.learned == N // 2
