"""The last line of defence: a record whose processing kills the worker is dead-lettered with reason
``poison`` after a restart instead of crashing every restart.

The crash is injected through the clearly named test hook ``LABELFLOW_TESTING_CRASH_ON_BYTES``: the
worker process dies (no exception handling, no cleanup, as in a crash of native code) when it is about
to process a record containing those bytes. The input checks of the message boundary would catch any
known crashing input; this tests what happens with one nobody knows yet.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from labelflow.stream.broker import EmbeddedBroker
from labelflow.stream.checkpoint import CheckpointStore
from labelflow.stream.config import Settings
from labelflow.stream.poison import MARKER_NAME, TEST_CRASH_ENV
from labelflow.stream.testing import TopicCollector, WorkerProcess, create_topics

from .conftest import documents, send_documents

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TRIGGER = "crash-the-worker-here"


def test_a_record_that_kills_the_worker_is_dead_lettered_as_poison(
    broker: EmbeddedBroker, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for(
        "poison", topics__partitions=1, poison_after_crashes=1, checkpoint__interval_s=600.0, batch__size=50
    )
    create_topics(settings)
    before, after = documents(0, 120), documents(200, 80)
    poison = {"id": "killer", "text": f"an ordinary looking document {TRIGGER}", "labels": ["l1"]}
    send_documents(settings, [*before, poison, *after])
    env = {TEST_CRASH_ENV: TRIGGER}
    runs: list[WorkerProcess] = []

    def start(n: int) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path, f"poison-{n}", extra_env=env)
        runs.append(worker.start())
        return worker

    try:
        # 1st run: dies in the batch holding the record; 2nd: processes that batch record by record and
        # dies on the record alone; 3rd: dead-letters it and goes on.
        for n in (1, 2):
            worker = start(n)
            assert worker.process is not None
            code = worker.process.wait(timeout=120)
            assert code != 0, worker.log()[-3000:]
            assert (Path(settings.checkpoint.dir) / MARKER_NAME).exists()
        marker = json.loads((Path(settings.checkpoint.dir) / MARKER_NAME).read_text())
        assert marker["kind"] == "alone" and len(marker["records"]) == 1
        third = start(3)
        with (
            TopicCollector(settings, settings.topics.deadletter) as dead,
            TopicCollector(settings, settings.topics.predictions) as predictions,
        ):
            dead.wait_until(lambda r: len(r) >= 1, 120, "the poison dead letter")
            predictions.wait_until(
                lambda r: {x.key.decode() for x in r} >= {d["id"] for d in [*before, *after]},
                120,
                "predictions of every other document",
            )
            letter = json.loads(dead.records[0].value)
            assert third.terminate() == 0, third.log()[-3000:]
        assert letter["reason"] == "poison", letter
        assert dead.records[0].key == b"killer"
        assert "killer" not in {r.key.decode() for r in predictions.records}
        assert not (Path(settings.checkpoint.dir) / MARKER_NAME).exists()
        checkpoint = CheckpointStore(settings.checkpoint.dir).latest()
        assert checkpoint is not None
        counters = checkpoint.runtime.meta["counters"]
        assert counters["dead_letters"] == {"poison": 1}
        assert counters["documents_in"] == 201
        assert sum(counters["learned"].values()) == sum("labels" in d for d in [*before, *after])
    finally:
        for worker in runs:
            worker.ensure_stopped()


def test_a_record_that_kills_an_embed_worker_is_dead_lettered_as_poison(
    broker: EmbeddedBroker, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    """The stateless embed stage keeps its marker under checkpoint.dir/embed-inflight/<client id>: the
    restarted process (same client id, as a restarted pod keeps its name) finds it."""
    settings = settings_for(
        "poison-embed", role="embed", topics__partitions=1, poison_after_crashes=1, batch__size=50
    )
    create_topics(settings)
    before, after = documents(0, 60), documents(100, 40)
    poison = {"id": "killer", "text": f"an ordinary looking document {TRIGGER}"}
    send_documents(settings, [*before, poison, *after])
    marker = Path(settings.checkpoint.dir) / "embed-inflight" / "embed-worker" / MARKER_NAME
    runs: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path, "embed-worker", extra_env={TEST_CRASH_ENV: TRIGGER})
        runs.append(worker.start())
        return worker

    try:
        for _ in range(2):  # dies in the batch, then on the record alone
            worker = start()
            assert worker.process is not None
            assert worker.process.wait(timeout=120) != 0, worker.log()[-3000:]
            assert marker.exists(), worker.log()[-3000:]
        third = start()
        with (
            TopicCollector(settings, settings.topics.deadletter) as dead,
            TopicCollector(settings, settings.topics.embedded) as embedded,
        ):
            dead.wait_until(lambda r: len(r) >= 1, 120, "the poison dead letter")
            embedded.wait_until(
                lambda r: {x.key.decode() for x in r} >= {d["id"] for d in [*before, *after]},
                120,
                "every other document embedded",
            )
            assert third.terminate() == 0, third.log()[-3000:]
        assert json.loads(dead.records[0].value)["reason"] == "poison"
        assert dead.records[0].key == b"killer"
        assert "killer" not in {r.key.decode() for r in embedded.records}
        assert not marker.exists()
    finally:
        for worker in runs:
            worker.ensure_stopped()
