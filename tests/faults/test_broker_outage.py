"""Broker outages seen by real worker processes: health and lag tell the truth, the worker recovers by
itself when the broker returns, and SIGTERM during an outage exits in time with a checkpoint.

Each test owns its broker and stops it; see conftest for how a memory-only broker stands in for a Kafka
cluster that keeps its logs through an outage.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from labelflow.stream.broker import EmbeddedBroker, free_port
from labelflow.stream.checkpoint import CheckpointStore
from labelflow.stream.config import Settings
from labelflow.stream.testing import TopicCollector, WorkerProcess, create_topics, wait_for

from .conftest import documents, healthcheck, restart_with_log, scrape, send_documents

pytestmark = [pytest.mark.broker, pytest.mark.slow]

# Short health thresholds and shutdown timeout, so the outage shows within seconds.
HEALTH = {
    "health__unready_after_s": 2.0,
    "health__down_after_s": 4.0,
    "health__shutdown_timeout_s": 10.0,
    "topics__partitions": 1,
}


def metric(port: int, name: str) -> float | None:
    return scrape(port).get(name)


_GAUGES = ("worker_up", "worker_ready", "broker_unreachable_seconds", "consumer_lag", "documents_in_total")


def state(worker: WorkerProcess, port: int) -> Callable[[], str]:
    """What a timed-out wait reports: the worker's health gauges, whether it runs, and its log."""

    def explain() -> str:
        values = scrape(port)
        gauges = {name: values.get(f"labelflow_{name}") for name in _GAUGES}
        return f"gauges: {gauges}\n{worker.diagnosis()}"

    return explain


def test_idle_worker_outage_health_lag_and_recovery(
    broker: EmbeddedBroker, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for("idle", metrics__port=free_port(), **HEALTH)
    port = settings.metrics.port
    check = healthcheck().check
    create_topics(settings)
    before = documents(0, 300)
    send_documents(settings, before)
    worker = WorkerProcess(settings, tmp_path, "idle")
    why = state(worker, port)
    try:
        worker.start()
        wait_for(
            lambda: (metric(port, "labelflow_documents_in_total") or 0) >= 300,
            90,
            "the first documents",
            explain=why,
        )
        wait_for(
            lambda: metric(port, "labelflow_consumer_lag") == 0.0, 15, "lag 0 once caught up", explain=why
        )
        assert metric(port, "labelflow_worker_up") == 1.0 and metric(port, "labelflow_worker_ready") == 1.0
        assert check("127.0.0.1", port, ready=True).healthy

        broker.stop()
        wait_for(
            lambda: metric(port, "labelflow_worker_ready") == 0.0, 20, "readiness to turn false", explain=why
        )
        lag = metric(port, "labelflow_consumer_lag")
        assert lag is not None and math.isnan(lag), f"lag during the outage is {lag}, not unknown"
        wait_for(
            lambda: metric(port, "labelflow_worker_up") == 0.0, 20, "liveness to turn false", explain=why
        )
        verdict = check("127.0.0.1", port, ready=True)
        assert not verdict.healthy and "broker has not answered" in verdict.reason, verdict
        assert not check("127.0.0.1", port).healthy
        assert (metric(port, "labelflow_broker_unreachable_seconds") or 0) >= 4.0
        assert worker.alive(), worker.log()[-3000:]

        restart_with_log(broker, settings, before, worker)
        after = documents(1_000, 1_000)
        send_documents(settings, after)
        wait_for(
            lambda: (
                metric(port, "labelflow_worker_up") == 1.0 and metric(port, "labelflow_worker_ready") == 1.0
            ),
            30,
            "health back to true",
            explain=why,
        )
        with TopicCollector(settings, settings.topics.predictions) as predictions:
            predictions.wait_until(
                lambda r: {x.key.decode() for x in r} >= {d["id"] for d in after},
                90,
                "a prediction of every document sent after the outage",
            )
            wait_for(lambda: metric(port, "labelflow_consumer_lag") == 0.0, 30, "lag back to 0", explain=why)
            predictions.drain(idle_s=0.5)
        # The worker went on from its own position: the records it had processed before the outage
        # were not processed again.
        assert not predictions.keys() & {d["id"] for d in before}
        assert metric(port, "labelflow_documents_in_total") == 1_300
        assert check("127.0.0.1", port, ready=True).healthy
        assert worker.terminate(timeout_s=30) == 0, worker.log()[-3000:]
    finally:
        worker.ensure_stopped()


def test_sigterm_during_an_outage_exits_in_time_with_a_checkpoint(
    broker: EmbeddedBroker, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    # Checkpoints only at shutdown (and before a partition's first commit): what the worker learned
    # after its first batch exists nowhere but in its memory when the broker goes away.
    settings = settings_for("sigterm", metrics__port=free_port(), checkpoint__interval_s=600.0, **HEALTH)
    port = settings.metrics.port
    create_topics(settings)
    send_documents(settings, documents(0, 200))
    worker = WorkerProcess(settings, tmp_path, "sigterm")
    why = state(worker, port)
    store = CheckpointStore(settings.checkpoint.dir)
    try:
        worker.start()
        wait_for(
            lambda: (metric(port, "labelflow_documents_in_total") or 0) >= 200,
            90,
            "the first batch",
            explain=why,
        )
        send_documents(settings, documents(200, 300))
        wait_for(
            lambda: (metric(port, "labelflow_documents_in_total") or 0) >= 500,
            60,
            "the second batch",
            explain=why,
        )
        learned = metric(port, "labelflow_learned_documents_total")
        assert learned == 250
        first = store.latest()
        assert first is not None and first.runtime.meta["counters"]["documents_in"] == 200

        broker.stop()
        wait_for(
            lambda: metric(port, "labelflow_worker_ready") == 0.0,
            20,
            "the worker to notice the outage",
            explain=why,
        )
        started = time.monotonic()
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        worker.ensure_stopped()
    log = worker.log()
    assert code == 0, log[-3000:]
    assert took <= settings.health.shutdown_timeout_s + 3.0, f"SIGTERM took {took:.1f} s"
    newest = store.latest()
    assert newest is not None and newest.seq > first.seq, log[-3000:]
    counters = newest.runtime.meta["counters"]
    assert counters["documents_in"] == 500 and sum(counters["learned"].values()) == 250
    assert newest.offsets[settings.topics.documents] == {0: 500}
    assert "event=checkpoint_written reason=shutdown" in log
    assert "event=commit_failed" in log  # the broker was away: the checkpoint carries the offsets


def test_broker_restart_under_load_loses_nothing(
    broker: EmbeddedBroker, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for("load", metrics__port=free_port(), batch__size=50, **HEALTH)
    port = settings.metrics.port
    create_topics(settings)
    docs = documents(0, 4_000)
    send_documents(settings, docs)
    worker = WorkerProcess(settings, tmp_path, "load")
    why = state(worker, port)
    try:
        worker.start()
        assert worker.process is not None
        with TopicCollector(settings, settings.topics.predictions) as before:
            before.wait_until(lambda r: len(r) >= 1_000, 120, "the first predictions")
            # Frozen while the old broker's predictions are read to the end: what the worker
            # delivered before the outage is all seen (the memory-only broker forgets it).
            worker.process.send_signal(signal.SIGSTOP)
            before.drain(idle_s=0.5)
            seen = before.keys()
        broker.stop()
        worker.process.send_signal(signal.SIGCONT)
        wait_for(
            lambda: metric(port, "labelflow_worker_ready") == 0.0,
            20,
            "the worker to notice the outage",
            explain=why,
        )
        assert len(seen) < len(docs), "the worker finished before the outage"
        assert worker.alive(), worker.log()[-3000:]

        restart_with_log(broker, settings, docs, worker)
        with TopicCollector(settings, settings.topics.predictions) as after:
            after.wait_until(
                lambda r: seen | {x.key.decode() for x in r} >= {d["id"] for d in docs},
                180,
                "a prediction of every document, before or after the outage",
            )
        # The counter may trail the predictions by a batch; once it has the whole stream it must be
        # exactly the stream: a document read again after the outage would be in it twice.
        wait_for(
            lambda: (metric(port, "labelflow_documents_in_total") or 0) >= len(docs),
            60,
            "the whole stream",
            explain=why,
        )
        assert metric(port, "labelflow_documents_in_total") == len(docs), worker.log()[-3000:]
        assert worker.terminate(timeout_s=30) == 0, worker.log()[-3000:]
    finally:
        worker.ensure_stopped()
    assert "event=delivery_retry" in worker.log() or "event=broker_unreachable" in worker.log()
    checkpoint = CheckpointStore(settings.checkpoint.dir).latest()
    assert checkpoint is not None
    counters = checkpoint.runtime.meta["counters"]
    assert counters["documents_in"] == len(docs)
    assert sum(counters["learned"].values()) == sum("labels" in d for d in docs)
