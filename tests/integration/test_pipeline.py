"""The worker on the real broker with the real model: predictions, delayed feedback, dead letters,
routing, metrics, graceful restart from a checkpoint."""

from __future__ import annotations

import base64
import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig
from labelflow.stream.checkpoint import CheckpointStore, IncompatibleCheckpointError
from labelflow.stream.config import Settings
from labelflow.stream.feed import FeedPlan, encode, feed
from labelflow.stream.kafka_io import build_producer
from labelflow.stream.testing import TopicCollector, WorkerThread, create_topics, send, with_overrides

pytestmark = pytest.mark.broker

DOCS_MD = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def synthetic(n: int, seed: int = 3) -> list[dict[str, Any]]:
    stream = SyntheticStream(SyntheticStreamConfig(seed=seed, n_documents=n, drift_events=[]))
    return [document.to_dict() for document in stream]


def send_stream(settings: Settings, documents: list[dict[str, Any]], plan: FeedPlan) -> dict[str, int]:
    counts = {"documents": 0, "inline": 0, "feedback": 0}
    messages = []
    for kind, message in feed(documents, plan):
        key, value = encode(message)
        if kind == "document":
            messages.append((settings.topics.documents, key, value))
            counts["documents"] += 1
            counts["inline"] += "labels" in message
        else:
            messages.append((settings.topics.labels, key, value))
            counts["feedback"] += 1
    send(settings, messages)
    return counts


def test_every_document_gets_a_prediction_and_delayed_feedback_is_learned(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for()
    create_topics(settings)
    documents = synthetic(800)
    counts = send_stream(
        settings, documents, FeedPlan(labelled_fraction=0.4, feedback_fraction=0.4, feedback_delay=50, seed=1)
    )
    with (
        WorkerThread(settings) as worker,
        TopicCollector(settings, settings.topics.predictions) as predictions,
    ):
        progress = worker.wait_for(
            lambda p: p.documents_in >= counts["documents"] and p.feedback_in >= counts["feedback"],
            120,
            "all input read",
        )
        predictions.wait_until(lambda records: len(records) >= len(documents), 30, "every prediction")
    assert predictions.keys() == {d["id"] for d in documents}
    assert len(predictions.records) == len(documents)  # exactly one each: nothing was replayed
    learned = progress.counters["learned"]
    assert learned == {"inline": counts["inline"], "feedback": counts["feedback"]}
    assert progress.counters["feedback"].get("matched", 0) == counts["feedback"]
    first = predictions.values()[0]
    assert set(first) == {
        "id",
        "labels",
        "scores",
        "model_version",
        "partition_version",
        "latency_ms",
        "produced_at",
    }
    last = [p for p in predictions.values() if p["id"] == documents[-1]["id"]][0]
    assert last["scores"] and last["model_version"] > 0
    # The model learns: prequential micro-F1 over the stream is far above chance on this stream.
    assert progress.micro_f1_cumulative > 0.5


BAD_INPUTS: dict[str, tuple[str, bytes]] = {
    "invalid JSON": ("invalid_json", b'{"id": "b1", "text": '),
    "wrong types": ("wrong_type", b'{"id": 12, "text": "number id"}'),
    "missing id": ("missing_field", b'{"text": "who am I"}'),
    "empty text": ("empty_value", b'{"id": "b4", "text": ""}'),
    "over the size limit": ("oversize", json.dumps({"id": "b5", "text": "word " * 1_000}).encode()),
    "invalid UTF-8": ("invalid_utf8", b'{"id": "b6", "text": "caf\xe9"}'),
    "misspelt field": ("unknown_field", b'{"id": "b7", "text": "x", "label": ["label_00"]}'),
    "labels not a list": ("wrong_type", b'{"id": "b8", "text": "x", "labels": "label_00"}'),
}


def test_each_malformed_input_is_dead_lettered_while_the_worker_keeps_running(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for(max_message_bytes=2_000, topics__partitions=1)
    create_topics(settings)
    good = synthetic(40, seed=5)
    producer = build_producer(settings, enable_idempotence=False)
    offsets: dict[str, int] = {}
    try:
        for i, document in enumerate(good):
            producer.send(
                settings.topics.documents, key=document["id"].encode(), value=json.dumps(document).encode()
            )
            if i == 10:  # the bad inputs sit in the middle of the stream
                for name, (_, raw) in BAD_INPUTS.items():
                    offsets[name] = producer.send(settings.topics.documents, value=raw).get(timeout=10).offset
        producer.send(settings.topics.labels, value=b'{"id": "x", "labels": "label_00"}')
        producer.flush()
    finally:
        producer.close()
    with (
        WorkerThread(settings) as worker,
        TopicCollector(settings, settings.topics.deadletter) as letters,
        TopicCollector(settings, settings.topics.predictions) as predictions,
    ):
        letters.wait_until(lambda r: len(r) >= len(BAD_INPUTS) + 1, 60, "every dead letter")
        predictions.wait_until(lambda r: len(r) >= len(good), 60, "the good documents after the bad ones")
        assert worker.worker.ready.is_set() and worker.error is None
    by_offset = {(v["topic"], v["offset"]): v for v in letters.values()}
    for name, (reason, raw) in BAD_INPUTS.items():
        letter = by_offset[(settings.topics.documents, offsets[name])]
        assert letter["reason"] == reason, name
        assert letter["partition"] == 0 and letter["error_message"]
        prefix = base64.b64decode(letter["value_b64"])
        assert raw.startswith(prefix) and letter["value_size"] == len(raw)
    feedback_letters = [v for v in letters.values() if v["topic"] == settings.topics.labels]
    assert [v["reason"] for v in feedback_letters] == ["wrong_type"]
    assert predictions.keys() == {d["id"] for d in good}


def test_routing_topics_get_the_documents_predicted_with_their_labels(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for(
        routing=[
            {"label": "label_00", "topic": "routed.anchor"},
            {"pattern": "^label_0[12]$", "topic": "routed.pair"},
        ]
    )
    create_topics(settings)
    documents = synthetic(500, seed=9)
    send_stream(settings, documents, FeedPlan(labelled_fraction=0.6, feedback_fraction=0.0, seed=2))
    with WorkerThread(settings), TopicCollector(settings, settings.topics.predictions) as predictions:
        predictions.wait_until(lambda r: len(r) >= len(documents), 120, "every prediction")
        with (
            TopicCollector(settings, "routed.anchor") as anchor,
            TopicCollector(settings, "routed.pair") as pair,
        ):
            anchor.drain()
            pair.drain()
    predicted = {p["id"]: set(p["labels"]) for p in predictions.values()}
    expect_anchor = {doc_id for doc_id, labels in predicted.items() if "label_00" in labels}
    expect_pair = {doc_id for doc_id, labels in predicted.items() if labels & {"label_01", "label_02"}}
    assert expect_anchor and expect_pair, "the model should predict the routed labels on this stream"
    assert anchor.keys() == expect_anchor and len(anchor.records) == len(expect_anchor)
    assert pair.keys() == expect_pair and len(pair.records) == len(
        expect_pair
    )  # once per document, not per label
    original = {d["id"]: d["text"] for d in documents}
    record = anchor.records[0]
    assert json.loads(record.value)["text"] == original[record.key.decode()]
    assert "label_00" in json.loads(dict(record.headers)["labelflow-labels"])


def scrape(port: int) -> dict[str, list[Any]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def test_metrics_endpoint_serves_the_documented_series(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(metrics__port=0)
    create_topics(settings)
    documents = synthetic(300)
    counts = send_stream(
        settings, documents, FeedPlan(labelled_fraction=0.5, feedback_fraction=0.3, feedback_delay=20)
    )
    send(settings, [(settings.topics.documents, None, b"not json")])
    with WorkerThread(settings) as worker:
        worker.wait_for(
            lambda p: p.predictions_out >= len(documents) and p.feedback_in >= counts["feedback"],
            120,
            "the stream",
        )
        worker.wait_for(lambda p: p.checkpoints >= 1, 30, "a checkpoint")
        samples = scrape(worker.worker.metrics_port)
    documented = set(re.findall(r"`(labelflow_[a-z0-9_]+)`", DOCS_MD.read_text()))
    histograms = {name for name in documented if any(s.startswith(name + "_bucket") for s in samples)}
    missing = {name for name in documented - histograms if name not in samples}
    assert not missing, f"documented series not served: {sorted(missing)}"

    def value(name: str, **labels: str) -> float:
        return sum(s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items()))

    assert value("labelflow_predictions_out_total") == len(documents)
    assert value("labelflow_learned_documents_total", source="inline") == counts["inline"]
    assert value("labelflow_dead_letters_total", reason="invalid_json") == 1
    assert value("labelflow_stage_seconds_count", stage="predict") >= 1
    assert value("labelflow_stage_seconds_count", stage="embed") >= 1
    assert 0.0 < value("labelflow_micro_f1_windowed") <= 1.0
    assert value("labelflow_labels") >= 8 and value("labelflow_clusters") >= 1
    assert value("labelflow_worker_up") == 1
    for sample in samples.get("labelflow_drift_events_total", []):
        assert sample.labels["level"] in ("global", "cluster")


def test_graceful_stop_and_restart_learns_each_document_once(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for()
    create_topics(settings)
    documents = synthetic(600, seed=11)
    plan = FeedPlan(labelled_fraction=0.5, feedback_fraction=0.3, feedback_delay=30, seed=4)
    first_half = send_stream(settings, documents[:300], plan)
    with WorkerThread(settings) as worker:
        worker.wait_for(
            lambda p: p.documents_in >= 300 and p.feedback_in >= first_half["feedback"], 120, "the first half"
        )
    second_half = send_stream(settings, documents[300:], plan)
    with WorkerThread(settings) as worker:  # restores the shutdown checkpoint and seeks to its offsets
        progress = worker.wait_for(
            lambda p: (
                p.documents_in >= 600 and p.feedback_in >= first_half["feedback"] + second_half["feedback"]
            ),
            120,
            "the rest",
        )
    assert progress.learned == sum(c["inline"] + c["feedback"] for c in (first_half, second_half))
    checkpoint = CheckpointStore(settings.checkpoint.dir).latest()
    assert checkpoint is not None
    assert checkpoint.model.meta.get("n_learned", progress.learned) == progress.learned
    with TopicCollector(settings, settings.topics.predictions) as predictions:
        predictions.drain()
    assert len(predictions.records) == 600  # a graceful stop replays nothing

    # The checkpoint can be inspected, and a different model setup refuses to resume from it.
    from labelflow.stream.cli import main

    assert main(["inspect", str(settings.checkpoint.dir)]) == 0
    other = with_overrides(settings, model__embedder_kwargs={"n_features": 2**10})
    with pytest.raises(IncompatibleCheckpointError, match="embedder"):
        WorkerThread(other).start()
