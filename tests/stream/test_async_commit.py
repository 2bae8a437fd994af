"""The per-batch commit is sent without waiting; its answer, read on a later poll, counts as a
synchronous commit's would (the commit itself is exercised on the broker by the integration tests)."""

from __future__ import annotations

import pytest
from kafka.errors import CommitFailedError, KafkaTimeoutError

from labelflow.stream.config import Settings
from labelflow.stream.worker import Worker


def commit_failures(worker: Worker) -> float:
    value = worker.metrics.registry.get_sample_value("labelflow_commit_failures_total")
    return 0.0 if value is None else value


def test_a_refused_asynchronous_commit_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    worker = Worker(Settings(brokers="127.0.0.1:9"), handle_signals=False)
    worker._committed({}, CommitFailedError("rebalance"))
    assert commit_failures(worker) == 1 and "event=commit_failed" in caplog.text
    assert worker.health.reachable  # a refusal is an answer: the broker is there


def test_an_asynchronous_commit_that_timed_out_marks_the_broker_failing() -> None:
    worker = Worker(Settings(brokers="127.0.0.1:9"), handle_signals=False)
    worker._committed({}, KafkaTimeoutError())
    assert commit_failures(worker) == 1 and not worker.health.reachable
    worker._committed({}, None)  # a later commit answered
    assert commit_failures(worker) == 1 and worker.health.reachable
