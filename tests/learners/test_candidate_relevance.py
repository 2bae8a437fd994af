"""The relevance model of a label tree's candidates: identity when fresh, what it learns, bounded memory, state."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.learners.candidate_relevance import CandidateRelevance
from labelflow.operators.learners.tree_classifier import LabelTreeClassifier
from labelflow.operators.state import State


def test_a_fresh_model_returns_the_tree_probabilities() -> None:
    p = np.array([0.97, 0.6, 0.2, 0.01, 1e-7])
    q = CandidateRelevance().relevance(p, np.arange(5))
    np.testing.assert_allclose(q, np.clip(p, 1e-4, 1 - 1e-4), rtol=1e-12)


def _bursty(model: CandidateRelevance, n_docs: int, seed: int = 0) -> None:
    """Two candidates of equal tree probability; each is relevant exactly when its label was relevant in
    the previous document (200 labels, so no label's own bias can tell)."""
    rng = np.random.default_rng(seed)
    last: set[int] = set()
    p = np.array([0.5, 0.5])
    for _ in range(n_docs):
        labels = rng.choice(200, size=2, replace=False)
        if last and rng.random() < 0.5:  # half of the time a candidate was relevant last time
            labels[0] = min(last)
            labels[1] = (labels[0] + 1 + labels[1] % 199) % 200
        relevant = np.array([int(label) in last for label in labels])
        model.learn(p, labels, relevant)
        truth = [int(label) for label, r in zip(labels, relevant, strict=True) if r]
        truth.append(int(rng.integers(200)))  # a label relevant in this document that was no candidate
        model.observe(truth)
        last = set(truth)


def test_labels_relevant_in_the_last_document_become_more_likely() -> None:
    model = CandidateRelevance()
    _bursty(model, 3000)
    model.observe([7])
    recent, stale = model.relevance(np.array([0.5, 0.5]), np.array([7, 8]))
    assert recent > 0.7 > 0.2 > stale, (recent, stale)


def test_per_label_memory_is_capped() -> None:
    model = CandidateRelevance(max_label_slots=8)
    model.learn(np.array([0.9, 0.4]), np.array([3, 1_000_003]), np.array([True, False]))
    model.observe([5, 2_000_000])
    assert model.bias.shape == model.bias_g2.shape == model.last_relevant.shape == (8,)
    assert model.last_irrelevant.shape == (8,)
    with pytest.raises(ValueError, match="max_label_slots"):
        CandidateRelevance(max_label_slots=0)


def test_state_round_trip_continues_exactly(tmp_path) -> None:
    model = CandidateRelevance()
    _bursty(model, 300)
    model.state().save(tmp_path / "relevance")
    restored = CandidateRelevance.from_state(State.load(tmp_path / "relevance"))
    _bursty(model, 50, seed=1)
    _bursty(restored, 50, seed=1)
    p, labels = np.array([0.8, 0.5, 0.1]), np.array([3, 17, 150])
    assert model.n == restored.n == 350
    np.testing.assert_array_equal(model.relevance(p, labels), restored.relevance(p, labels))


def _learned_tree(**settings: object) -> tuple[LabelTreeClassifier, np.ndarray]:
    rng = np.random.default_rng(0)
    model = LabelTreeClassifier(bits=16, **settings)  # type: ignore[arg-type]
    for _ in range(300):
        topic = int(rng.integers(4))
        x = rng.normal(size=6).astype(np.float32)
        x[topic] += 3.0
        model.learn_one(x, [f"t{topic}", f"u{topic % 2}"])
    x = np.zeros(6, dtype=np.float32)
    x[1] = 3.0
    return model, x


def test_the_tree_publishes_and_cuts_the_relevance() -> None:
    model, x = _learned_tree()
    decided, scores = model.predict_with_scores(x)
    search = model._search(x)
    expected = model.relevance.relevance(search.p, search.labels, search.leaf_p, search.clusters)  # type: ignore[union-attr]
    names = model.label_index.name
    assert scores == {
        names(int(label)): float(q)
        for label, q in sorted(zip(search.labels, expected, strict=True), key=lambda pair: -pair[1])
    }
    assert decided == {label for label, q in scores.items() if q >= model.cut.cut} == {"t1", "u1"}


def test_without_it_the_tree_publishes_its_own_probabilities() -> None:
    model, x = _learned_tree(candidate_relevance=False)
    _, scores = model.predict_with_scores(x)
    search = model._search(x)
    assert model.relevance is None
    assert list(scores.values()) == search.p.tolist()


def test_a_tree_state_from_before_the_relevance_model_restores_with_a_fresh_one() -> None:
    model, x = _learned_tree()
    state = model.state()
    del state.meta["children"]["relevance"]
    state.arrays = {k: v for k, v in state.arrays.items() if not k.startswith("relevance/")}
    restored = LabelTreeClassifier.from_state(state)
    assert restored.relevance is not None and restored.relevance.n == 0
    _, scores = restored.predict_with_scores(x)
    search = restored._search(x)
    np.testing.assert_allclose(
        list(scores.values()), np.clip(search.p, 1e-4, 1 - 1e-4), rtol=1e-12
    )  # identity


def test_labels_that_were_a_wrong_candidate_last_time_become_less_likely() -> None:
    """A candidate is relevant half of the time, never when its label was a wrong candidate in the
    previous document (200 labels: no label's own bias can tell)."""
    model, rng = CandidateRelevance(), np.random.default_rng(0)
    p, wrong = np.array([0.5, 0.5]), -1
    for _ in range(3000):
        labels = rng.choice(200, size=2, replace=False)
        if wrong >= 0 and rng.random() < 0.5:
            labels[0] = wrong
            labels[1] = (wrong + 1 + labels[1] % 199) % 200
        relevant = np.array([label != wrong and rng.random() < 0.5 for label in labels.tolist()])
        model.learn(p, labels, relevant)
        model.observe([int(label) for label in labels[relevant]])
        wrong = int(labels[0]) if not relevant[0] else -1
    model.learn(p, np.array([7, 8]), np.array([False, True]))
    model.observe([8])
    just_wrong, other = model.relevance(p, np.array([7, 9]))
    assert just_wrong < 0.1 < 0.3 < other, (just_wrong, other)


def test_candidates_sharing_a_cluster_with_others_can_become_more_likely() -> None:
    """A candidate is relevant exactly when another candidate shares its cluster (500 labels)."""
    model, rng = CandidateRelevance(), np.random.default_rng(0)
    p = np.array([0.5, 0.5, 0.5])
    for _ in range(2000):
        labels = rng.choice(500, size=3, replace=False)
        clusters = rng.integers(2, size=3)
        relevant = np.array([int((clusters == c).sum()) > 1 for c in clusters])
        model.learn(p, labels, relevant, None, clusters)
        model.observe([])
    together, alone = model.relevance(p, np.array([1, 2, 3]), None, np.array([5, 5, 6]))[[0, 2]]
    assert together > 0.8 > 0.2 > alone, (together, alone)
