"""A scheduled drift in the input stream reaches the drift topic as DriftAlert messages and the drift
counter on /metrics, through the real worker, model and broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labelflow.operators.datasets.synthetic import DriftEventConfig, SyntheticStream, SyntheticStreamConfig
from labelflow.stream.config import Settings
from labelflow.stream.feed import FeedPlan
from labelflow.stream.messages import DriftAlert
from labelflow.stream.testing import TopicCollector, WorkerThread, create_topics

from .test_pipeline import scrape, send_stream

pytestmark = pytest.mark.broker

DRIFT_AT = 1300  # the label-prior detector needs about 1,000 labelled documents of reference first


def test_a_scheduled_label_prior_drift_is_alerted(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(metrics__port=0)
    create_topics(settings)
    config = SyntheticStreamConfig(
        seed=5, n_documents=2000, drift_events=[DriftEventConfig(kind="label_prior", position=DRIFT_AT)]
    )
    documents = [d.to_dict() for d in SyntheticStream(config)]
    counts = send_stream(settings, documents, FeedPlan(labelled_fraction=1.0, feedback_fraction=0.0, seed=2))
    with WorkerThread(settings) as worker, TopicCollector(settings, settings.topics.drift) as drift_topic:
        worker.wait_for(lambda p: p.predictions_out >= counts["documents"], 180, "the whole stream")
        drift_topic.wait_until(
            lambda records: any(
                DriftAlert.model_validate_json(r.value).kind == "label_prior" for r in records
            ),
            30,
            "a label_prior alert",
        )
        samples = scrape(worker.worker.metrics_port)
    alerts = [DriftAlert.model_validate_json(r.value) for r in drift_topic.records]
    prior = [a for a in alerts if a.kind == "label_prior"]
    # Detected after the change, within the delay budget, and never before it.
    assert prior and all(a.position is not None and a.position >= DRIFT_AT for a in prior), prior
    assert min(a.position for a in prior) - DRIFT_AT <= 500
    assert all(r.key is not None for r in drift_topic.records)  # keyed by kind/level
    counted = sum(
        s.value for s in samples["labelflow_drift_events_total"] if s.labels["kind"] == "label_prior"
    )
    assert counted >= 1
