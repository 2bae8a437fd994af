"""The label-tree learner: conformance, quality on a large power-law stream, state that follows learning."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.datasets.power_law import PowerLawLabelStream, PowerLawStreamConfig
from labelflow.operators.learners.tree_classifier import LabelTreeClassifier
from labelflow.operators.state import State

from .conformance import CHECKS, check_state_round_trip


def _small() -> LabelTreeClassifier:
    return LabelTreeClassifier(bits=18)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_conformance(check) -> None:
    check(_small)


def test_state_round_trip_is_exact(tmp_path) -> None:
    check_state_round_trip(_small, tmp_path)


def _prequential(model: LabelTreeClassifier, docs) -> tuple[float, float]:
    hits_at_1 = hits_at_5 = 0.0
    for doc in docs:
        top = model.predict_top(doc.features, 5)
        truth = set(doc.labels)
        hits_at_1 += bool(top) and top[0][0] in truth
        hits_at_5 += len({label for label, _ in top} & truth) / 5
        model.learn_one(doc.features, doc.labels)
    return hits_at_1 / len(docs), hits_at_5 / len(docs)


def test_learns_a_ten_thousand_label_stream() -> None:
    docs = PowerLawLabelStream(PowerLawStreamConfig(n_labels=10_000, seed=2)).take(6000)
    model = LabelTreeClassifier(bits=20)
    _prequential(model, docs[:4000])
    p_at_1, p_at_5 = _prequential(model, docs[4000:])
    # A label's four features identify it: after 4,000 documents the best label is mostly right.
    assert p_at_1 > 0.6 and p_at_5 > 0.3, (p_at_1, p_at_5)
    assert model.tree.height <= 4 and len(model.labels) > 3000


def test_scores_are_bounded_to_the_top_k_and_sorted() -> None:
    docs = PowerLawLabelStream(PowerLawStreamConfig(n_labels=1000, seed=1)).take(500)
    model = LabelTreeClassifier(bits=18, top_k=7)
    for doc in docs:
        model.learn_one(doc.features, doc.labels)
    decided, scores = model.predict_with_scores(docs[0].features)
    assert len(scores) == max(7, len(decided)) and len(model.labels) > 7
    assert decided <= set(scores)
    values = list(scores.values())
    assert values == sorted(values, reverse=True) and all(0.0 <= v <= 1.0 for v in values)


def test_checkpoint_size_follows_what_was_learned(tmp_path) -> None:
    stream = PowerLawLabelStream(PowerLawStreamConfig(n_labels=100_000, seed=3))
    model = LabelTreeClassifier()  # its table may grow to 2**26 weights: 512 MB with step sizes

    def stored_bytes(name: str) -> int:
        model.state().save(tmp_path / name)
        return sum(f.stat().st_size for f in (tmp_path / name).iterdir())

    empty = stored_bytes("empty")
    for doc in stream.take(200):
        model.learn_one(doc.features, doc.labels)
    early = stored_bytes("early")
    for doc in stream.take(1800):
        model.learn_one(doc.features, doc.labels)
    later = stored_bytes("later")
    assert empty < 20_000 < early < later < 40_000_000
    restored = LabelTreeClassifier.from_state(State.load(tmp_path / "later"))
    x = stream.take(1)[0].features
    assert restored.predict_with_scores(x) == model.predict_with_scores(x)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="at_least_one"):
        LabelTreeClassifier(at_least_one="sometimes")
    with pytest.raises(ValueError, match="bits"):
        LabelTreeClassifier(bits=40)
    with pytest.raises(ValueError, match="format"):
        LabelTreeClassifier.from_state(State(meta={"format": "other"}))


def test_dense_features_work_too() -> None:
    rng = np.random.default_rng(0)
    model = LabelTreeClassifier(bits=16)
    for _ in range(400):
        topic = int(rng.integers(3))
        x = rng.normal(size=6).astype(np.float32)
        x[topic] += 4.0
        model.learn_one(x, [f"t{topic}"])
    x = np.zeros(6, dtype=np.float32)
    x[2] = 4.0
    assert model.predict_one(x) == {"t2"}


def test_partition_reports_the_clusters() -> None:
    model = LabelTreeClassifier(bits=16, cluster_size=2)
    x = np.ones(3, dtype=np.float32)
    model.learn_one(x, ["a", "b", "c"])
    shape = model.partition
    assert shape.n_clusters == 2 and sorted(map(sorted, shape.clusters)) == [[0, 1], [2]]


def test_neighbour_vote_adds_labels_of_similar_documents_and_round_trips(tmp_path) -> None:
    stream = PowerLawLabelStream(PowerLawStreamConfig(n_labels=1000, seed=5))
    model = LabelTreeClassifier(bits=16, neighbours=8, neighbour_window=64)
    docs = stream.take(300)
    for doc in docs:
        model.learn_one(doc.features, doc.labels)
    last = docs[-1]
    # the last document is its own nearest neighbour: its labels are among the candidates
    assert set(last.labels) <= set(model.predict_proba_one(last.features))
    model.state().save(tmp_path / "s")
    restored = LabelTreeClassifier.from_state(State.load(tmp_path / "s"))
    assert restored.predict_with_scores(last.features) == model.predict_with_scores(last.features)


def _relabelled_stream(n_before: int, n_after: int):
    """A 1,000-label power-law stream whose 40 most frequent labels swap meanings after ``n_before``
    documents (label 2k now names what 2k+1 named, and back): a concept drift in their clusters."""
    docs = PowerLawLabelStream(PowerLawStreamConfig(n_labels=1000, seed=5)).take(n_before + n_after)
    counts: dict[str, int] = {}
    for doc in docs[:n_before]:
        for label in doc.labels:
            counts[label] = counts.get(label, 0) + 1
    top = sorted(counts, key=lambda label: -counts[label])[:40]
    swap = {a: b for i in range(0, 40, 2) for a, b in ((top[i], top[i + 1]), (top[i + 1], top[i]))}
    stream = [(doc.features, list(doc.labels)) for doc in docs[:n_before]]
    stream += [(doc.features, [swap.get(label, label) for label in doc.labels]) for doc in docs[n_before:]]
    return stream, set(top)


def test_drift_of_a_cluster_is_reported_with_its_labels_and_a_stationary_stream_is_quiet(tmp_path) -> None:
    stream, swapped = _relabelled_stream(4000, 3000)
    model = LabelTreeClassifier(bits=18)
    events = []
    for position, (x, labels) in enumerate(stream):
        model.predict_one(x)
        model.learn_one(x, labels)
        events += [(position, event) for event in model.drain_events()]
        if position == 5000:  # the watch goes through a checkpoint mid-drift and keeps its windows
            state = model.state()
            state.save(tmp_path / "tree")
            model = LabelTreeClassifier.from_state(State.load(tmp_path / "tree"))
    assert not [e for p, e in events if p < 4000 and e.severity == "drift"], "false alarms before the change"
    drifts = [e for p, e in events if p >= 4000 and e.severity == "drift"]
    assert any(e.level == "global" for e in drifts)
    clusters = [e for e in drifts if e.level != "global"]
    assert clusters and all(e.kind == "performance" and e.action == "alert" for e in clusters)
    assert all(set(e.labels) & swapped for e in clusters), "only clusters holding swapped labels drift"
    assert len({e.level for e in clusters}) >= 3


def test_drift_watch_can_be_switched_off_and_old_states_load_with_a_fresh_watch() -> None:
    docs = PowerLawLabelStream(PowerLawStreamConfig(n_labels=100, seed=1)).take(50)
    quiet = LabelTreeClassifier(bits=16, watch_drift=False)
    watched = LabelTreeClassifier(bits=16)
    for doc in docs:
        quiet.learn_one(doc.features, doc.labels)
        watched.learn_one(doc.features, doc.labels)
    assert quiet.drift is None and quiet.drain_events() == []
    state = watched.state()
    del state.meta["children"]["drift"]  # as a checkpoint written before the watch existed
    restored = LabelTreeClassifier.from_state(state)
    assert restored.drift is not None and not restored.drift.detectors
