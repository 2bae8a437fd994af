"""Scaling out the embed stage: two `--role embed` workers in one group feed one `--role learn` worker.

Issue acceptance: predictions for exactly the same documents as a single `--role all` worker on the same
stream, with prequential quality within 0.01 micro-F1.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig
from labelflow.stream.config import Settings
from labelflow.stream.feed import FeedPlan
from labelflow.stream.testing import (
    TopicCollector,
    WorkerThread,
    create_topics,
    wait_for,
    with_overrides,
)

from .test_pipeline import send_stream

pytestmark = pytest.mark.broker


def test_two_embed_workers_and_a_learner_match_one_worker(settings_for: Callable[..., Settings]) -> None:
    documents = [
        d.to_dict()
        for d in SyntheticStream(SyntheticStreamConfig(seed=21, n_documents=1500, drift_events=[]))
    ]
    plan = FeedPlan(labelled_fraction=1.0, feedback_fraction=0.0, seed=3)
    ids = {d["id"] for d in documents}

    single = settings_for("single")
    create_topics(single)
    send_stream(single, documents, plan)
    with WorkerThread(single) as worker, TopicCollector(single, single.topics.predictions) as predictions:
        predictions.wait_until(
            lambda records: predictions.keys() >= ids, 180, "the single worker's predictions"
        )
        reference = worker.wait_for(lambda p: p.learned >= len(documents), 60, "the single worker's learning")

    embed = settings_for("split", role="embed")
    create_topics(embed)
    learn = with_overrides(
        embed,
        role="learn",
        group_id=embed.group_id + "-learn",
        checkpoint__dir=str(embed.checkpoint.dir) + "-learn",
    )
    with (
        WorkerThread(embed) as first,
        WorkerThread(with_overrides(embed, client_id="embed-2")) as second,
        TopicCollector(embed, embed.topics.embedded) as embedded,
    ):
        # The stream goes out once both workers hold partitions of one group generation: a worker that
        # joined late (its start slowed by load) would find the other holding every partition, and this
        # embedder gets through the whole stream (three batches of ~0.05 s) before the group rebalances.
        wait_for(
            lambda: share_the_documents(embed, first, second), 60, "both embed workers to hold partitions"
        )
        send_stream(embed, documents, plan)
        embedded.wait_until(lambda records: embedded.keys() >= ids, 180, "every document embedded")
    # Read once both have stopped: a worker publishes its counters after committing the batch whose
    # outputs are already on the topic, so while running, a worker whose share is one batch (482
    # records of partition 2 here, batch size 500) can still say 0 when the last key arrives.
    shares = [first.progress().documents_in, second.progress().documents_in]
    with WorkerThread(learn) as learner, TopicCollector(learn, learn.topics.predictions) as predictions_split:
        predictions_split.wait_until(
            lambda records: predictions_split.keys() >= ids, 180, "the learner's predictions"
        )
        split = learner.wait_for(lambda p: p.learned >= len(documents), 60, "the learner's learning")

    assert predictions.keys() == predictions_split.keys() == ids
    assert min(shares) > 0 and sum(shares) >= len(documents), (
        f"the embed workers did not share the stream: {shares}"
    )
    assert split.learned == reference.learned == len(documents)
    assert abs(split.micro_f1_cumulative - reference.micro_f1_cumulative) <= 0.01, (
        split.micro_f1_cumulative,
        reference.micro_f1_cumulative,
    )


def share_the_documents(settings: Settings, *workers: WorkerThread) -> bool:
    """Whether every worker holds documents partitions, none twice, all of them between them."""
    held = [
        {p for topic, p in w.worker.ledger.assigned if topic == settings.topics.documents} for w in workers
    ]
    every = set(range(settings.topics.partitions))
    return all(held) and sum(map(len, held)) == len(every) and set().union(*held) == every
