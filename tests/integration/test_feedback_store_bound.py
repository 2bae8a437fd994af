"""The feedback store's memory bound in a real worker (issue 13, defect 6).

Unlabelled documents wait in the feedback store for their labels. It was bounded by entries only: 400
large waiting documents took 1.15 GB, and 20,000 pending feedback messages became a 121 MB JSON
checkpoint file. Now the waiting entries stay within feedback.max_bytes, evictions are counted (metric
and checkpoint), and the store's checkpoint is arrays, not JSON.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest

from labelflow.stream.checkpoint import CheckpointStore
from labelflow.stream.config import Settings
from labelflow.stream.testing import WorkerThread, create_topics, send

pytestmark = [pytest.mark.broker]

MAX_BYTES = 1_000_000


def test_waiting_documents_stay_within_the_byte_bound_and_evictions_are_counted(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for(topics__partitions=1, feedback__max_bytes=MAX_BYTES)
    create_topics(settings)
    rng = random.Random(4)
    # Long texts of many distinct words: ~2,000 hashed features (~24 KB) per waiting document.
    docs = [
        (
            settings.topics.documents,
            f"u{i}".encode(),
            json.dumps(
                {"id": f"u{i}", "text": " ".join(f"w{rng.randrange(10**6)}" for _ in range(2_500))}
            ).encode(),
        )
        for i in range(150)
    ]
    feedback = [
        (
            settings.topics.labels,
            f"early{i}".encode(),
            json.dumps({"id": f"early{i}", "labels": ["x"]}).encode(),
        )
        for i in range(20)
    ]
    send(settings, feedback + docs)
    with WorkerThread(settings) as worker:
        progress = worker.wait_for(lambda p: p.documents_in >= 150, 60, "every document read")
        store = worker.worker.state.store
        assert store.nbytes <= MAX_BYTES
        assert 0 < store.waiting_documents < 150
    evictions = progress.counters["evictions"]
    assert evictions["documents"] == 150 - store.waiting_documents
    assert evictions["feedback"] == 20  # the oldest entries, the early feedback, went first
    checkpoint = CheckpointStore(settings.checkpoint.dir).latest()
    assert checkpoint is not None
    assert checkpoint.runtime.meta["counters"]["evictions"] == evictions
    feedback_meta = checkpoint.runtime.detach("feedback").meta
    assert len(json.dumps(feedback_meta)) < 1_000  # ids, labels and features are arrays
