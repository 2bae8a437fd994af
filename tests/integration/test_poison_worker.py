"""Poison records through a real worker on the embedded broker (issue 13, defect 1).

Each record here used to stop the worker for good (exit 1 on every restart): JSON nested 5,000 levels
deep in either input topic, a lone surrogate escape in a label or an id, a 700 KB label name, an id
so long that its prediction exceeds the producer's size limit, and a feature given as a 400-digit
integer; a feature above float32's range left the model's weights NaN. Now each one is a dead letter
with its reason, and the documents after them are predicted and learned.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pytest

from labelflow.stream.config import Settings
from labelflow.stream.testing import (
    POISON_REASONS,
    TopicCollector,
    WorkerThread,
    create_topics,
    poison_records,
    send,
)

pytestmark = [pytest.mark.broker]


def test_each_poison_record_is_dead_lettered_and_the_worker_goes_on(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for(topics__partitions=1)
    create_topics(settings)
    poison = poison_records(settings.topics.documents, settings.topics.labels)
    good = [
        (
            settings.topics.documents,
            f"g{i}".encode(),
            json.dumps({"id": f"g{i}", "text": f"word{i % 3} text", "labels": [f"l{i % 3}"]}).encode(),
        )
        for i in range(30)
    ]
    send(settings, [*good[:10], *poison, *good[10:]])
    with (
        WorkerThread(settings) as worker,
        TopicCollector(settings, settings.topics.deadletter) as letters,
        TopicCollector(settings, settings.topics.predictions) as predictions,
    ):
        letters.wait_until(lambda r: len(r) >= len(poison), 60, "a dead letter per poison record")
        predictions.wait_until(lambda r: len(r) >= len(good), 60, "the documents after the poison")
        progress = worker.wait_for(lambda p: p.learned >= len(good), 30, "every good document learned")
        assert worker.error is None
    reasons = sorted(v["reason"] for v in letters.values())
    assert reasons == sorted(POISON_REASONS)
    assert {v["key"] for v in letters.values()} == {key.decode() for _, key, _ in poison}
    assert predictions.keys() == {f"g{i}" for i in range(30)}
    assert progress.counters["dead_letters"] == Counter(POISON_REASONS)
    # Nothing reached the model that could corrupt it: every later score is a number in [0, 1] (a NaN
    # weight once made every score null).
    scores = [s for v in predictions.values() for s in v["scores"].values()]
    assert scores and all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
