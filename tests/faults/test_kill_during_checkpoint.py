"""kill -9 while a checkpoint is being written: the half-written one is discarded, the previous one
restored, and the stream completes with every document predicted and every label learned once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from labelflow.stream.broker import EmbeddedBroker
from labelflow.stream.checkpoint import CheckpointStore
from labelflow.stream.config import Settings
from labelflow.stream.testing import TopicCollector, WorkerProcess, create_topics, wait_for

from .conftest import documents, send_documents

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def writing(directory: Path) -> bool:
    return any(directory.glob(".tmp-ckpt-*"))


def test_kill_9_during_a_checkpoint_write(
    broker: EmbeddedBroker, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    # A wide hashing space makes each checkpoint a few MB, so a write lasts long enough to be caught.
    settings = settings_for(
        "ckpt-kill",
        topics__partitions=1,
        batch__size=50,
        checkpoint__interval_s=0.3,
        model__embedder_kwargs={"n_features": 2**17},
    )
    create_topics(settings)
    docs = documents(0, 3_000)
    send_documents(settings, docs)
    directory = Path(settings.checkpoint.dir)
    workers: list[WorkerProcess] = []
    caught = False
    try:
        for attempt in range(4):  # a write is caught mid-way almost always at the first attempt
            worker = WorkerProcess(settings, tmp_path, f"ckpt-kill-{attempt}").start()
            workers.append(worker)
            # Killed in the middle of a later write, so that a complete checkpoint precedes it.
            wait_for(lambda: bool(CheckpointStore(directory).paths()), 90, "a first complete checkpoint")
            deadline = time.monotonic() + 90
            while worker.alive() and time.monotonic() < deadline and not writing(directory):
                time.sleep(0.001)
            worker.kill()
            if writing(directory):  # the temporary directory outlived the process: killed mid-write
                caught = True
                break
        assert caught, "no kill landed during a checkpoint write"
        assert CheckpointStore(directory).paths(), "a complete checkpoint exists before the killed write"
        last = WorkerProcess(settings, tmp_path, "ckpt-kill-last").start()
        workers.append(last)
        with TopicCollector(settings, settings.topics.predictions) as predictions:
            predictions.wait_until(
                lambda r: {x.key.decode() for x in r} >= {d["id"] for d in docs}, 180, "every prediction"
            )
            wait_for(
                lambda: (
                    (c := CheckpointStore(directory).latest()) is not None
                    and c.runtime.meta["counters"]["documents_in"] == len(docs)
                ),
                60,
                "a checkpoint of the whole stream",
            )
        assert last.terminate() == 0, last.log()[-3000:]
    finally:
        for worker in workers:
            worker.ensure_stopped()
    assert not writing(directory), "the half-written checkpoint was not cleaned up"
    assert "event=checkpoint_restored" in last.log()
    checkpoint = CheckpointStore(directory).latest()
    assert checkpoint is not None
    counters = checkpoint.runtime.meta["counters"]
    assert counters["documents_in"] == len(docs)
    assert sum(counters["learned"].values()) == sum("labels" in d for d in docs)
