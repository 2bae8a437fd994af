"""A worker whose label set grows to 100,000 labels stays up, within memory, and keeps predicting (issue 12).

It used to stall at about 2,000 labels and fail at 4,097 (a 97.7 GiB allocation for the dense heads),
after which every document was dead-lettered while the worker reported healthy; a single document
carrying 100,000 labels did the same at once. Now the default learner hands over to the label tree, a
prediction carries the top-k scores only, and the 100,000-label document is a dead letter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from labelflow.stream.config import Settings
from labelflow.stream.testing import TopicCollector, WorkerThread, create_topics, send

pytestmark = [pytest.mark.broker]

N_DOCS = 1_000
NEW_LABELS_PER_DOC = 100  # 1,000 documents x 100 new labels = 100,000 labels
MEMORY_BUDGET = 1 << 30  # the worker's growth in resident memory over the whole stream


def _rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


def _document(i: int) -> tuple[str, bytes, bytes]:
    labels = [f"c{i * NEW_LABELS_PER_DOC + j}" for j in range(NEW_LABELS_PER_DOC)]
    features = {str((i * 7 + j) % 1024): 1.0 for j in range(4)}
    return (
        f"d{i}",
        f"d{i}".encode(),
        json.dumps({"id": f"d{i}", "features": features, "labels": labels}).encode(),
    )


def test_a_worker_grows_to_100k_labels_and_dead_letters_a_100k_label_document(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for(topics__partitions=1, model__feature_dim=1024)
    create_topics(settings)
    documents = settings.topics.documents
    giant = json.dumps({"id": "giant", "features": {"1": 1.0}, "labels": [str(i) for i in range(100_000)]})
    records = [(documents, key, value) for _, key, value in map(_document, range(N_DOCS // 2))]
    records.append((documents, b"giant", giant.encode()))
    records += [(documents, key, value) for _, key, value in map(_document, range(N_DOCS // 2, N_DOCS))]
    rss_before = _rss_bytes()
    send(settings, records)
    with (
        WorkerThread(settings) as worker,
        TopicCollector(settings, settings.topics.deadletter) as letters,
        TopicCollector(settings, settings.topics.predictions) as predictions,
    ):
        progress = worker.wait_for(lambda p: p.learned >= N_DOCS, 240, "every document learned")
        letters.wait_until(lambda r: len(r) >= 1, 30, "the 100,000-label document dead-lettered")
        predictions.wait_until(lambda r: len(r) >= N_DOCS, 60, "a prediction for every document")
        assert worker.error is None
        grown = _rss_bytes() - rss_before
    assert progress.labels == N_DOCS * NEW_LABELS_PER_DOC
    assert grown < MEMORY_BUDGET, f"the worker grew by {grown / 2**20:.0f} MB"
    [letter] = letters.values()
    assert letter["key"] == "giant" and letter["reason"] == "too_many_labels"
    last = [v for v in predictions.values() if v["id"] == f"d{N_DOCS - 1}"][0]
    # Predicted with 100,000 labels known: a bounded prediction (top 20 scores at most).
    assert 0 < len(last["scores"]) <= 20
    assert all(len(json.dumps(v)) < 4_000 for v in predictions.values())
