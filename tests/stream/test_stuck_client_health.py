"""Health when a broker call never returns: readiness turns false once the call is overdue, and comes
back when it returns; a slow batch of model work, which waits on no broker call, leaves it alone."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from labelflow.stream.config import Settings
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.testing import TopicCollector, WorkerThread, create_topics, send, wait_for

pytestmark = pytest.mark.broker


def test_a_stuck_probe_turns_readiness_false_and_a_slow_batch_does_not(
    settings_for: Callable[..., Settings], double_runtime: Callable[..., ModelRuntime]
) -> None:
    settings = settings_for(batch__size=5, health__unready_after_s=1.0, health__down_after_s=2.0)
    create_topics(settings)
    runtime = double_runtime()
    original = runtime.predict

    def slow_predict(xs: Any) -> Any:
        time.sleep(0.8 * len(xs))  # a batch of 5 documents takes 4 s: twice down_after_s
        return original(xs)

    runtime.predict = slow_predict  # type: ignore[method-assign]
    docs = [json.dumps({"id": f"d{i}", "text": "x"}).encode() for i in range(5)]
    with WorkerThread(settings, runtime=runtime) as thread:
        health = thread.worker.health
        ready_seen: list[bool] = []
        with TopicCollector(settings, settings.topics.predictions) as predictions:
            send(settings, [(settings.topics.documents, f"d{i}".encode(), v) for i, v in enumerate(docs)])
            deadline = time.monotonic() + 60
            while len(predictions.records) < 5 and time.monotonic() < deadline:
                ready_seen.append(health.ready and health.alive)
                predictions.poll(timeout_ms=50)
        assert len(predictions.records) == 5 and len(ready_seen) > 20
        assert all(ready_seen), "a slow batch of model work turned health false"

        # A client stuck in a call that ignores its timeout (the probe asks the end offsets).
        consumer = thread.worker._consumer
        assert consumer is not None
        release = threading.Event()
        real = consumer.end_offsets

        def stuck(*args: Any, **kwargs: Any) -> Any:
            release.wait(60)
            return real(*args, **kwargs)

        consumer.end_offsets = stuck  # type: ignore[method-assign]
        try:
            started = time.monotonic()
            wait_for(lambda: not health.ready, 30, "readiness to turn false during the stuck call")
            # Overdue after the probe's 2 s timeout and 5 s of grace, then 1 s to unready.
            assert time.monotonic() - started >= 7.0
            wait_for(lambda: not health.alive, 10, "liveness to turn false during the stuck call")
        finally:
            consumer.end_offsets = real  # type: ignore[method-assign]
            release.set()
        wait_for(lambda: health.ready and health.alive, 10, "health back once the call returned")
