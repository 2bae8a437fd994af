"""The seeded synthetic multi-label text stream: determinism, learnability, and each kind of drift."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from labelflow.operators.datasets import DriftEventConfig, SyntheticStream, SyntheticStreamConfig
from labelflow.operators.embedders.hashing import HashingFeaturizer
from labelflow.operators.learners.linear import LinearHeads


def frequencies(docs, label: str) -> float:
    return sum(label in d.labels for d in docs) / len(docs)


def words_of(docs, label: str) -> Counter:
    return Counter(w for d in docs if label in d.labels for w in d.text.split())


@pytest.fixture(scope="module")
def demo():
    stream = SyntheticStream()
    return stream, list(stream)


def test_the_demo_stream_has_one_sudden_drift_of_each_kind(demo):
    stream, docs = demo
    assert len(docs) == len(stream) == 5000
    assert [(d.position, d.kind, d.details["mode"]) for d in stream.drift_events] == [
        (1000, "label_prior", "sudden"),
        (2000, "label_correlation", "sudden"),
        (3000, "new_label", "sudden"),
        (4000, "vocabulary", "sudden"),
    ]
    assert len(stream.labels) == 13 and all(d.details["labels"] for d in stream.drift_events)
    assert [d.position for d in docs] == list(range(5000))
    assert len({d.id for d in docs}) == 5000
    assert all(d.labels and d.text for d in docs)
    assert 1.3 < np.mean([len(d.labels) for d in docs]) < 2.5
    assert all(d.labels == sorted(d.labels, key=stream.labels.index) for d in docs[:200])


def test_same_seed_same_stream_other_seed_other_stream(demo):
    _, docs = demo
    again = list(SyntheticStream(SyntheticStreamConfig()))
    assert [(d.id, d.text, d.labels) for d in again] == [(d.id, d.text, d.labels) for d in docs]
    other = list(SyntheticStream(SyntheticStreamConfig(seed=8)))
    assert sum(a.text == b.text for a, b in zip(other, docs, strict=True)) == 0


def test_label_prior_shift_reverses_the_topic_weights(demo):
    stream, docs = demo
    shift = stream.drift_events[0]
    assert shift.details["topic_weights_after"] == shift.details["topic_weights_before"][::-1]
    before, after = docs[:1000], docs[1000:2000]
    # label_00 anchors the most common topic (then the rarest); label_03 the reverse.
    assert frequencies(before, "label_00") > 2 * frequencies(after, "label_00")
    assert frequencies(after, "label_03") > 2 * frequencies(before, "label_03")


def test_label_correlation_change_moves_labels_to_other_partners(demo):
    stream, docs = demo
    change = stream.drift_events[1]
    move = change.details["moves"][0]
    label, old_anchor, new_anchor = (
        move["label"],
        f"label_{move['from_topic']:02d}",
        f"label_{move['to_topic']:02d}",
    )

    def together(window, partner):
        with_label = [d for d in window if label in d.labels]
        return sum(partner in d.labels for d in with_label) / len(with_label)

    before, after = docs[1000:2000], docs[2000:3000]
    assert together(before, old_anchor) > 0.6 > 0.3 > together(after, old_anchor)
    assert together(after, new_anchor) > 0.6 > 0.3 > together(before, new_anchor)


def test_new_label_appears_at_its_position_with_its_own_words(demo):
    stream, docs = demo
    event = stream.drift_events[2]
    label = event.details["labels"][0]
    assert label == stream.labels[-1] == "label_12"
    assert frequencies(docs[:3000], label) == 0.0
    window = docs[3000:4000]  # before the vocabulary shift brings other new words
    assert 0.03 < frequencies(window, label) < 0.3
    earlier = {w for d in docs[:3000] for w in d.text.split()}
    new_words = {w for d in window for w in d.text.split()} - earlier
    assert len(new_words) >= 20
    occurrences = Counter(label in d.labels for d in window for w in d.text.split() if w in new_words)
    assert occurrences[True] / sum(occurrences.values()) > 0.8  # the new words come with the new label


def specific_words(docs, label: str) -> set[str]:
    """Words at least 3 times as frequent in documents with ``label`` as in the others."""
    with_label, without = Counter(), Counter()
    n_with = n_without = 0
    for d in docs:
        words = set(d.text.split())
        if label in d.labels:
            with_label.update(words)
            n_with += 1
        else:
            without.update(words)
            n_without += 1
    return {w for w, c in with_label.items() if c >= 3 and c / n_with >= 3 * (without[w] + 1) / n_without}


def test_vocabulary_shift_replaces_the_words_of_the_affected_labels_only(demo):
    stream, docs = demo
    event = stream.drift_events[3]
    affected = event.details["labels"]
    unaffected = [label for label in stream.labels[:12] if label not in affected]
    assert affected and unaffected

    def kept(label):
        before, after = specific_words(docs[3000:4000], label), specific_words(docs[4000:5000], label)
        return len(before & after) / len(before)

    assert max(kept(label) for label in affected) < 0.5
    assert min(kept(label) for label in unaffected) > 0.6


def test_gradual_drift_mixes_in_the_new_concept_linearly():
    config = SyntheticStreamConfig(
        n_documents=12_000,
        drift_events=[
            DriftEventConfig(kind="new_label", position=2000, mode="gradual", width=8000, magnitude=1.0)
        ],
    )
    stream = SyntheticStream(config)
    label = stream.drift_events[0].details["labels"][0]
    assert stream.drift_events[0].details["width"] == 8000
    docs = list(stream)
    shares = [frequencies(docs[s : s + 2000], label) for s in range(0, 12_000, 2000)]
    assert shares[0] == 0.0
    assert all(a < b for a, b in zip(shares[:5], shares[1:5], strict=False))  # rising through the transition
    assert shares[5] > 3 * shares[1]


def test_recurring_drift_alternates_and_records_every_switch():
    config = SyntheticStreamConfig(
        n_documents=5000,
        drift_events=[
            DriftEventConfig(kind="new_label", position=1000, mode="recurring", period=500, magnitude=1.0),
            DriftEventConfig(kind="label_prior", position=4000),
        ],
    )
    stream = SyntheticStream(config)
    switches = [(d.position, d.details.get("to")) for d in stream.drift_events if d.kind == "new_label"]
    assert switches == [
        (1000, "new"),
        (1500, "previous"),
        (2000, "new"),
        (2500, "previous"),
        (3000, "new"),
        (3500, "previous"),
    ]
    label = stream.drift_events[0].details["labels"][0]
    docs = list(stream)
    present = [frequencies(docs[s : s + 500], label) > 0 for s in range(0, 4000, 500)]
    assert present == [False, False, True, False, True, False, True, False]


def test_explicit_targets_of_drift_events():
    config = SyntheticStreamConfig(
        n_documents=2000,
        drift_events=[
            DriftEventConfig(kind="label_correlation", position=500, labels=["label_05"]),
            DriftEventConfig(kind="new_label", position=1000, labels=["fresh"]),
            DriftEventConfig(kind="vocabulary", position=1500, labels=["label_01"], magnitude=1.0),
        ],
    )
    stream = SyntheticStream(config)
    correlation, new, vocabulary = stream.drift_events
    assert "label_05" in correlation.details["labels"] and len(correlation.details["labels"]) == 2
    assert new.details["labels"] == ["fresh"] and stream.labels[-1] == "fresh"
    assert vocabulary.details["labels"] == ["label_01"]
    docs = list(stream)
    before = set(words_of(docs[1000:1500], "label_01"))
    after = set(words_of(docs[1500:], "label_01"))
    assert before and after


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drift_events": [DriftEventConfig(kind="label_prior", position=6000)]}, "past the stream end"),
        (
            {
                "drift_events": [
                    DriftEventConfig(kind="vocabulary", position=300),
                    DriftEventConfig(kind="label_prior", position=200),
                ]
            },
            "position order",
        ),
        ({"n_labels": 6, "n_topics": 4}, "anchor and a member"),
        ({"background_fraction": 0.8, "topic_fraction": 0.3}, "<= 1"),
        ({"words_per_document": (10, 5)}, "words_per_document"),
        ({"n_documents": 4}, "n_documents >= 5"),
        (
            {
                "n_topics": 1,
                "n_labels": 4,
                "drift_events": [DriftEventConfig(kind="label_correlation", position=10)],
            },
            "n_topics >= 2",
        ),
        ({"unknown_setting": 1}, "unknown_setting"),
    ],
)
def test_invalid_configs_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        SyntheticStreamConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "label_prior", "position": 10, "mode": "gradual"}, "width >= 1"),
        ({"kind": "label_prior", "position": 10, "width": 5}, "width only applies"),
        ({"kind": "label_prior", "position": 10, "mode": "recurring"}, "period >= 1"),
        ({"kind": "label_prior", "position": 10, "labels": ["a"]}, "takes no labels"),
        ({"kind": "new_label", "position": 10, "labels": ["a", "b"]}, "exactly one"),
        ({"kind": "vocabulary", "position": 10, "magnitude": 1.5}, "magnitude"),
    ],
)
def test_invalid_drift_events_are_refused(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        DriftEventConfig(**kwargs)


def test_unknown_or_duplicate_labels_in_events_are_refused_when_the_stream_is_built():
    with pytest.raises(ValueError, match="unknown labels"):
        SyntheticStream(
            SyntheticStreamConfig(
                drift_events=[DriftEventConfig(kind="vocabulary", position=10, labels=["nope"])]
            )
        )
    with pytest.raises(ValueError, match="already exists"):
        SyntheticStream(
            SyntheticStreamConfig(
                drift_events=[DriftEventConfig(kind="new_label", position=10, labels=["label_00"])]
            )
        )


def test_jsonl_and_drift_event_files(tmp_path):
    stream = SyntheticStream(SyntheticStreamConfig(n_documents=300, seed=3))
    assert stream.to_jsonl(tmp_path / "docs.jsonl") == 300
    lines = (tmp_path / "docs.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0] == next(iter(stream)).to_dict()
    assert all(set(r) == {"id", "text", "labels"} for r in records)
    stream.drift_events_to_json(tmp_path / "drifts.json")
    saved = json.loads((tmp_path / "drifts.json").read_text())
    assert saved["drift_events"] == [d.to_dict() for d in stream.drift_events]
    assert SyntheticStreamConfig.model_validate(saved["config"]) == stream.config


def test_a_linear_model_on_hashing_features_learns_the_stationary_stream():
    stream = SyntheticStream(SyntheticStreamConfig(seed=11, n_documents=2000, drift_events=[]))
    docs = list(stream)
    features = HashingFeaturizer(n_features=2**18).embed_many([d.text for d in docs])
    index = {label: i for i, label in enumerate(stream.labels)}
    heads = LinearHeads()
    tp = fp = fn = 0
    for t, (doc, x) in enumerate(zip(docs, features, strict=True)):
        y = np.zeros(len(index), dtype=np.float32)
        y[[index[label] for label in doc.labels]] = 1.0
        p = heads.probabilities(x, n_labels=len(index))
        if t >= 1000:  # prequential: predict first, then learn; scored on the second half
            predicted = p >= 0.5
            tp += int(np.sum(predicted & (y == 1)))
            fp += int(np.sum(predicted & (y == 0)))
            fn += int(np.sum(~predicted & (y == 1)))
        heads.learn(x, y, p)
    micro_f1 = 2 * tp / (2 * tp + fp + fn)
    assert micro_f1 >= 0.8, f"micro-F1 {micro_f1:.3f}"


def test_label_swap_exchanges_what_two_labels_mean() -> None:
    from collections import Counter

    from labelflow.operators.datasets.synthetic import (
        DriftEventConfig,
        SyntheticStream,
        SyntheticStreamConfig,
    )

    config = SyntheticStreamConfig(
        seed=3,
        n_documents=4000,
        drift_events=[DriftEventConfig(kind="label_swap", position=2000, labels=["label_00", "label_05"])],
    )
    docs = list(SyntheticStream(config))

    def words(label: str, part: slice) -> Counter:
        return Counter(w for d in docs[part] if label in d.labels for w in set(d.text.split()))

    def overlap(a: Counter, b: Counter) -> float:
        top_a = {w for w, _ in a.most_common(40)}
        top_b = {w for w, _ in b.most_common(40)}
        return len(top_a & top_b) / 40

    before, after = slice(0, 2000), slice(2000, 4000)
    # After the swap, documents labelled label_00 look like label_05's documents before it, and back.
    assert overlap(words("label_00", after), words("label_05", before)) > 0.5
    assert overlap(words("label_00", after), words("label_00", before)) < overlap(
        words("label_00", after), words("label_05", before)
    )
