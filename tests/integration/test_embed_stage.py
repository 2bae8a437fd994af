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
from labelflow.stream.testing import TopicCollector, WorkerThread, create_topics, with_overrides

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
    send_stream(embed, documents, plan)
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
        embedded.wait_until(lambda records: embedded.keys() >= ids, 180, "every document embedded")
        shares = [first.worker.progress().documents_in, second.worker.progress().documents_in]
    with WorkerThread(learn) as learner, TopicCollector(learn, learn.topics.predictions) as predictions_split:
        predictions_split.wait_until(
            lambda records: predictions_split.keys() >= ids, 180, "the learner's predictions"
        )
        split = learner.wait_for(lambda p: p.learned >= len(documents), 60, "the learner's learning")

    assert predictions.keys() == predictions_split.keys() == ids
    # Completeness is the embedded topic's keys (above); the counters may lag it by a batch.
    assert min(shares) > 0, f"the embed workers did not share the stream: {shares}"
    assert split.learned == reference.learned == len(documents)
    assert abs(split.micro_f1_cumulative - reference.micro_f1_cumulative) <= 0.01, (
        split.micro_f1_cumulative,
        reference.micro_f1_cumulative,
    )
