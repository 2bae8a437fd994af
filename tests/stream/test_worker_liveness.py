"""A batch that takes longer than the session timeout does not cost the worker its partitions:
kafka-python heartbeats from its own thread while the model works."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from labelflow.stream.config import Settings
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.testing import TopicCollector, WorkerThread, create_topics, send

pytestmark = pytest.mark.broker


def test_slow_batches_keep_group_membership(
    settings_for: Callable[..., Settings], double_runtime: Callable[..., ModelRuntime]
) -> None:
    settings = settings_for(
        batch__size=5, **{"consumer__session_timeout_ms": 2_000, "consumer__heartbeat_interval_ms": 300}
    )
    create_topics(settings)
    runtime = double_runtime()
    original = runtime.predict

    def slow_predict(xs: Any) -> Any:
        time.sleep(0.8 * len(xs))  # a batch of 5 documents takes 4 s: twice the session timeout
        return original(xs)

    runtime.predict = slow_predict  # type: ignore[method-assign]
    send(
        settings,
        [
            (settings.topics.documents, f"d{i}".encode(), json.dumps({"id": f"d{i}", "text": "x"}).encode())
            for i in range(10)
        ],
    )
    with (
        WorkerThread(settings, runtime=runtime) as worker,
        TopicCollector(settings, settings.topics.predictions) as predictions,
    ):
        predictions.wait_until(lambda r: len(r) >= 10, 90, "the slow predictions")
        rebalances = worker.worker.metrics.rebalances._value.get()
        failures = worker.worker.metrics.commit_failures._value.get()
    assert rebalances == 1, "the worker lost its partitions during a slow batch"
    assert failures == 0
    assert len(predictions.records) == 10  # nothing re-delivered
