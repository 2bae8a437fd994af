"""The batch processor: prequential predict-then-learn, the feedback join, dead letters, routing, replay.

These tests drive the processor with in-memory records (no broker) and the test-double model; the
integration tests run the same code on the real broker with the real model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from labelflow.stream.config import Settings, load_settings
from labelflow.stream.feedback_store import FeedbackStore
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.processor import BatchProcessor, InputRecord, RuntimeCounters
from labelflow.stream.quality import QualityTracker

DOCS, LABELS = "t.documents", "t.labels"


def settings(**overrides: Any) -> Settings:
    return load_settings(
        None,
        {
            "topics.documents": DOCS,
            "topics.labels": LABELS,
            "topics.predictions": "t.predictions",
            "topics.deadletter": "t.deadletter",
            "topics.drift": "t.drift",
            "max_message_bytes": 2_000,
            **overrides,
        },
    )


class Feed:
    """Builds records with increasing offsets per topic."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    def record(self, topic: str, value: bytes | dict | None, key: bytes | None = None) -> InputRecord:
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        raw = json.dumps(value).encode() if isinstance(value, dict) else value
        return InputRecord(topic, 0, offset, key, raw, 1_700_000_000_000)

    def doc(self, doc_id: str, text: str, labels: list[str] | None = None) -> InputRecord:
        message: dict[str, Any] = {"id": doc_id, "text": text}
        if labels is not None:
            message["labels"] = labels
        return self.record(DOCS, message, doc_id.encode())

    def feedback(self, doc_id: str, labels: list[str]) -> InputRecord:
        return self.record(LABELS, {"id": doc_id, "labels": labels}, doc_id.encode())


def make_processor(
    runtime: ModelRuntime, s: Settings | None = None, store: FeedbackStore | None = None
) -> BatchProcessor:
    s = s or settings()
    return BatchProcessor(
        s,
        runtime,
        store or FeedbackStore(100, 3600, 1000),
        RuntimeCounters(),
        QualityTracker(100),
        worker_id="test",
    )


def by_topic(outcome, topic: str) -> list[dict]:
    return [json.loads(m.value) for m in outcome.messages if m.topic == topic]


def text_for(labels: list[str]) -> str:
    return " ".join(f"word{label} " * 3 for label in labels) + " common text"


def test_every_document_is_predicted_once_and_labelled_ones_learned_after(
    double_runtime: Callable[..., ModelRuntime],
) -> None:
    runtime = double_runtime()
    processor = make_processor(runtime)
    feed = Feed()
    records = [
        feed.doc(f"d{i}", text_for(["a"] if i % 2 else ["b"]), ["a"] if i % 2 else ["b"]) for i in range(6)
    ]
    records.insert(3, feed.doc("u1", text_for(["a"])))
    outcome = processor.process(records)
    predictions = by_topic(outcome, "t.predictions")
    assert [p["id"] for p in predictions] == ["d0", "d1", "d2", "u1", "d3", "d4", "d5"]
    assert all(
        m.key == p["id"].encode()
        for m, p in zip([m for m in outcome.messages if m.topic == "t.predictions"], predictions, strict=True)
    )
    # model_version counts the labelled documents learned before each prediction: test-then-train.
    assert [p["model_version"] for p in predictions] == [0, 1, 2, 3, 3, 4, 5]
    assert predictions[0]["scores"] == {} and set(predictions[-1]["scores"]) == {"a", "b"}
    assert processor.counters.group("learned") == {"inline": 6}
    assert runtime.model.n_learned == 6
    assert processor.quality.scored == 6
    assert processor.store.waiting_documents == 1  # u1 waits for feedback


def test_each_bad_input_is_dead_lettered_with_reason_and_offset(
    double_runtime: Callable[..., ModelRuntime],
) -> None:
    processor = make_processor(double_runtime())
    feed = Feed()
    bad = {
        "invalid_json": b'{"id": "x", ',
        "wrong_type": b'{"id": "x", "text": 5}',
        "missing_field": b'{"text": "no id"}',
        "empty_value": b'{"id": "x", "text": ""}',
        "oversize": json.dumps({"id": "x", "text": "y" * 3_000}).encode(),
        "invalid_utf8": b'{"id": "x", "text": "\xff"}',
        "unknown_field": b'{"id": "x", "text": "y", "label": ["red"]}',  # misspelt: rejected by any policy
        "empty_message": None,
    }
    records = [feed.doc("ok-1", "fine")]
    expected_offsets = {}
    for reason, raw in bad.items():
        record = feed.record(DOCS, raw)
        expected_offsets[reason] = record.offset
        records.append(record)
    records.append(feed.record(LABELS, b'{"id": "x", "labels": "not-a-list"}'))
    records.append(feed.doc("ok-2", "also fine"))
    outcome = processor.process(records)
    letters = by_topic(outcome, "t.deadletter")
    got = {letter["reason"]: letter for letter in letters if letter["topic"] == DOCS}
    assert set(got) == set(bad)
    for reason, letter in got.items():
        assert letter["offset"] == expected_offsets[reason] and letter["partition"] == 0
    label_letters = [letter for letter in letters if letter["topic"] == LABELS]
    assert len(label_letters) == 1 and label_letters[0]["reason"] == "wrong_type"
    assert [p["id"] for p in by_topic(outcome, "t.predictions")] == ["ok-1", "ok-2"]
    assert sum(processor.counters.group("dead_letters").values()) == 9
    reasons = {m.headers[0][1].decode() for m in outcome.messages if m.topic == "t.deadletter"}
    assert reasons == set(bad) | {"wrong_type"}


def test_feedback_outcomes(double_runtime: Callable[..., ModelRuntime]) -> None:
    clock = [0.0]
    store = FeedbackStore(max_entries=2, ttl_s=10, remember_ids=100, clock=lambda: clock[0])
    runtime = double_runtime()
    processor = make_processor(runtime, store=store)
    feed = Feed()
    processor.process([feed.doc("m", text_for(["a"])), feed.doc("inline", text_for(["b"]), ["b"])])
    processor.process([feed.feedback("m", ["a"])])  # matched: its document waits
    processor.process([feed.feedback("early", ["a"])])  # its document has not come yet
    processor.process([feed.doc("early", text_for(["a"]))])  # now it comes: learned at once
    processor.process([feed.feedback("inline", ["b"]), feed.feedback("m", ["a"])])  # duplicates
    processor.process(
        [feed.doc("e1", "one"), feed.doc("e2", "two"), feed.doc("e3", "three")]
    )  # e1 evicted (2 slots)
    processor.process([feed.feedback("e1", ["a"])])  # late
    processor.process([feed.feedback("never", ["a"])])  # early, and its document never comes
    clock[0] = 100.0
    processor.process([])  # expiry
    feedback = processor.counters.group("feedback")
    assert feedback == {"matched": 2, "early": 2, "duplicate": 2, "late": 1, "unmatched": 1}
    assert processor.counters.group("learned") == {"inline": 1, "feedback": 2}
    assert runtime.model.n_learned == 3
    assert processor.counters.get("expired_documents") == 1 + 2  # e1 by size, e2 and e3 by age


def test_a_re_sent_labelled_document_is_not_learned_twice(
    double_runtime: Callable[..., ModelRuntime],
) -> None:
    runtime = double_runtime()
    processor = make_processor(runtime)
    feed = Feed()
    outcome = processor.process(
        [feed.doc("d", text_for(["a"]), ["a"]), feed.doc("d", text_for(["a"]), ["a"])]
    )
    assert len(by_topic(outcome, "t.predictions")) == 2  # both copies are predicted (same key)
    assert runtime.model.n_learned == 1 and processor.counters.get("duplicate_documents") == 1


def test_routing_by_label_and_pattern(double_runtime: Callable[..., ModelRuntime]) -> None:
    s = settings(
        routing=[{"label": "sport", "topic": "t.sport"}, {"pattern": "^sci\\.", "topic": "t.science"}]
    )
    processor = make_processor(double_runtime(), s)
    feed = Feed()
    for _ in range(20):  # teach the double which words mean which labels
        processor.process(
            [
                feed.doc("s", "football goal match", ["sport"]),
                feed.doc("p", "rocket orbit planet", ["sci.space"]),
            ]
        )
    sport, space, other = (
        feed.doc("q1", "football goal match"),
        feed.doc("q2", "rocket orbit planet"),
        feed.doc("q3", "nothing at all"),
    )
    outcome = processor.process([sport, space, other])
    routed = {(m.topic, m.key) for m in outcome.messages if m.topic in ("t.sport", "t.science")}
    assert routed == {("t.sport", b"q1"), ("t.science", b"q2")}
    message = next(m for m in outcome.messages if m.topic == "t.sport")
    assert message.value == sport.value and json.loads(dict(message.headers)["labelflow-labels"]) == ["sport"]


def test_a_document_the_model_fails_on_is_dead_lettered_and_the_stream_goes_on(
    double_runtime: Callable[..., ModelRuntime],
) -> None:
    runtime = double_runtime(fail_on="poison")
    processor = make_processor(runtime)
    feed = Feed()
    outcome = processor.process(
        [feed.doc("a", "x", ["ok"]), feed.doc("b", "y", ["poison"]), feed.doc("c", "z", ["ok"])]
    )
    assert [p["id"] for p in by_topic(outcome, "t.predictions")] == ["a", "b", "c"]
    letters = by_topic(outcome, "t.deadletter")
    assert (
        len(letters) == 1
        and letters[0]["reason"] == "processing_error"
        and "poison" in letters[0]["error_message"]
    )
    assert runtime.model.n_learned == 2


def test_features_instead_of_text(double_runtime: Callable[..., ModelRuntime]) -> None:
    processor = make_processor(double_runtime(), settings(max_message_bytes=20_000))
    feed = Feed()
    outcome = processor.process(
        [
            feed.record(DOCS, {"id": "sparse", "features": {"3": 1.0, "900": 0.5}, "labels": ["a"]}),
            feed.record(
                DOCS, {"id": "too-far", "features": {"5000": 1.0}}
            ),  # the hashing embedder has 1024 columns
            feed.record(DOCS, {"id": "dense", "features": [0.1] * 1024}),
            feed.record(DOCS, {"id": "short", "features": [0.1, 0.2]}),  # not this model's input space
        ]
    )
    assert [p["id"] for p in by_topic(outcome, "t.predictions")] == ["sparse", "dense"]
    letters = by_topic(outcome, "t.deadletter")
    assert [letter["reason"] for letter in letters] == ["invalid_value", "invalid_value"]
    assert (
        "this model takes 1024 (its embedder's dimension; set model.feature_dim)"
        in letters[1]["error_message"]
    )


def test_one_document_of_another_dimension_cannot_take_the_model() -> None:
    # A model fixes its input dimension on the first document it learns: three numbers sent first to a
    # text worker used to make every later text a dead letter ('feature dimension changed').
    s = settings(max_message_bytes=100_000)
    processor = make_processor(ModelRuntime.from_settings(s.model), s)
    feed = Feed()
    first = feed.record(DOCS, {"id": "odd", "features": [1.0, 2.0, 3.0], "labels": ["a"]})
    texts = [feed.doc(f"t{i}", f"corn wheat harvest {i % 3}", [f"l{i % 3}"]) for i in range(6)]
    outcome = processor.process([first, *texts])
    assert [letter["reason"] for letter in by_topic(outcome, "t.deadletter")] == ["invalid_value"]
    assert [p["id"] for p in by_topic(outcome, "t.predictions")] == [f"t{i}" for i in range(6)]
    assert processor.counters.learned_total == 6


def test_with_model_feature_dim_texts_of_another_dimension_are_refused() -> None:
    # The reverse: a numeric worker (model.feature_dim 4) whose first document is a text (embedded into
    # 2**18 hashed features) must not take its model either.
    s = settings(max_message_bytes=100_000, **{"model.feature_dim": 4})
    processor = make_processor(ModelRuntime.from_settings(s.model), s)
    feed = Feed()
    text = feed.doc("text", "a text", ["a"])
    numbers = [
        feed.record(DOCS, {"id": f"n{i}", "features": [float(i % 2), 1.0, 0.0, 2.0], "labels": [f"l{i % 2}"]})
        for i in range(6)
    ]
    outcome = processor.process([text, *numbers])
    (letter,) = by_topic(outcome, "t.deadletter")
    assert (
        letter["reason"] == "invalid_value"
        and "this model takes 4 (model.feature_dim)" in letter["error_message"]
    )
    assert [p["id"] for p in by_topic(outcome, "t.predictions")] == [f"n{i}" for i in range(6)]
    assert processor.counters.learned_total == 6


def test_model_events_become_drift_alerts(double_runtime: Callable[..., ModelRuntime]) -> None:
    processor = make_processor(double_runtime())
    feed = Feed()
    outcome = processor.process([feed.doc("a", "x", ["alpha"]), feed.doc("b", "y", ["beta"])])
    alerts = by_topic(outcome, "t.drift")
    assert [a["labels"] for a in alerts] == [["alpha"], ["beta"]]
    assert [a["position"] for a in alerts] == [1, 2]  # the stream position of the document that caused it
    assert all(a["kind"] == "label_structure" and a["level"] == "global" for a in alerts)
    assert processor.counters.group("drift_events") == {"label_structure/global": 2}


def test_replay_from_a_snapshot_learns_each_labelled_document_once(
    double_runtime: Callable[..., ModelRuntime],
) -> None:
    """What a checkpoint restore does: state at record k, then records k.. again = the uninterrupted run."""
    feed = Feed()
    rng = np.random.default_rng(0)
    records = []
    for i in range(120):
        labels = [["a"], ["b"], ["a", "b"]][int(rng.integers(3))]
        if i % 3 == 0:
            records.append(feed.doc(f"d{i}", text_for(labels), labels))
        else:
            records.append(feed.doc(f"d{i}", text_for(labels)))
            if i % 3 == 1:
                records.append(feed.feedback(f"d{i}", labels))
    straight = make_processor(double_runtime())
    for start in range(0, len(records), 25):
        straight.process(records[start : start + 25])

    first = make_processor(double_runtime())
    first.process(records[:50])
    model_state = first.runtime.state()
    model_state.arrays = {
        k: v.copy() for k, v in model_state.arrays.items()
    }  # a checkpoint is written at once
    snapshot = (model_state, first.store.state(), first.counters.as_dict(), first.quality.state())
    first.process(records[50:80])  # work after the snapshot that a crash loses

    restored_runtime = double_runtime()
    restored_runtime.restore(snapshot[0])
    resumed = BatchProcessor(
        settings(),
        restored_runtime,
        FeedbackStore.from_state(snapshot[1], max_entries=100, ttl_s=3600, remember_ids=1000),
        RuntimeCounters.from_dict(snapshot[2]),
        QualityTracker.from_state(snapshot[3], 100),
        worker_id="test",
    )
    for start in range(50, len(records), 40):  # other batch boundaries than the straight run
        resumed.process(records[start : start + 40])

    assert resumed.counters.as_dict() == straight.counters.as_dict()
    assert resumed.runtime.model.n_learned == straight.runtime.model.n_learned == 80
    np.testing.assert_allclose(resumed.runtime.model.w, straight.runtime.model.w, rtol=1e-6)
    assert resumed.quality.micro_f1_cumulative == pytest.approx(straight.quality.micro_f1_cumulative)


def test_a_saved_model_of_another_input_dimension_is_refused_at_restore() -> None:
    # A worker restarted with other settings than the model learned on would dead-letter every document:
    # it stops at start with the setting to change instead (stages turn this into
    # IncompatibleCheckpointError, an exit with the message).
    numeric = ModelRuntime.from_settings(settings(**{"model.feature_dim": 4}).model)
    numeric.learn(np.array([1.0, 0.0, 2.0, 1.0], dtype=np.float32), ["a"])
    state = numeric.state()
    with pytest.raises(ValueError, match=r"dimension 4, and this worker's input dimension is 262144"):
        ModelRuntime.from_settings(settings().model).restore(state)
    same = ModelRuntime.from_settings(settings(**{"model.feature_dim": 4}).model)
    same.restore(state)
    assert same.labels == ["a"]
