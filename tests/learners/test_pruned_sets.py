"""Pruned sets: a softmax over the frequent label sets, pooled with per-label log-odds, as a decision for
subset accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.base import SparseVector
from labelflow.operators.learners.decision_experts import DecisionExperts
from labelflow.operators.learners.pruned_sets import PrunedSetsClassifier, _logits
from labelflow.operators.learners.scaling import ScalingClassifier
from labelflow.operators.state import State

from .conformance import dense_stream, sparse_stream

NO_EVIDENCE = np.zeros(8)


def test_a_label_set_becomes_a_class_once_seen_min_count_times() -> None:
    model = PrunedSetsClassifier(min_count=3)
    x = np.ones(4, dtype=np.float32)
    for _ in range(2):
        model.learn(x, [1, 0])
    assert model.n_classes == 0 and model.decide(x, NO_EVIDENCE) is None
    model.learn(x, [0, 1])
    assert model.label_sets == [(0, 1)]
    assert model.decide(x, NO_EVIDENCE) == (0, 1)


def test_a_rare_set_teaches_its_largest_frequent_subsets_equally() -> None:
    model = PrunedSetsClassifier(min_count=2)
    x, other = np.array([1.0, 0.0], dtype=np.float32), np.array([0.0, 1.0], dtype=np.float32)
    for key in ([0], [0], [1], [1], [7], [7]):
        model.learn(other, key)
    assert model.label_sets == [(0,), (1,), (7,)]
    for k in range(300):  # {0, 1, k + 10}: each seen once, never a class
        model.learn(x, [0, 1, k + 10])
    assert model.label_sets == [(0,), (1,), (7,)]
    logits = np.zeros(3)
    _logits(np.arange(2), x, model._weights, model._bias, 3, logits)
    q = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert q[0] == pytest.approx(0.5, abs=0.05) and q[1] == pytest.approx(0.5, abs=0.05)  # a share each
    assert model.decide(x, np.zeros(3)) in ((0,), (1,))


def test_the_per_label_log_odds_veto_a_set_the_softmax_prefers() -> None:
    model = PrunedSetsClassifier()
    a, b = np.array([1.0, 0.0], dtype=np.float32), np.array([0.0, 1.0], dtype=np.float32)
    for _ in range(40):
        model.learn(a, [0, 1])
        model.learn(b, [2])
    assert model.decide(a, np.zeros(3)) == (0, 1)
    assert model.decide(a, np.array([-9.0, -9.0, 9.0])) == (2,)
    # Labels the per-label model does not know yet (no log-odds) add nothing.
    assert model.decide(a, np.zeros(0)) == (0, 1)


def test_classes_stop_at_the_memory_budget() -> None:
    model = PrunedSetsClassifier(min_count=1, memory_budget=8 * 16 * 3)  # 16 features: 3 classes
    x = np.ones(16, dtype=np.float32)
    for label in range(6):
        model.learn(x, [label])
    assert model.n_classes == 3


def test_a_changed_feature_dimension_is_refused() -> None:
    model = PrunedSetsClassifier()
    model.learn(np.ones(4, dtype=np.float32), [0])
    with pytest.raises(ValueError, match="feature dimension changed from 4 to 5"):
        model.learn(np.ones(5, dtype=np.float32), [0])


def test_state_round_trip_continues_identically(tmp_path) -> None:
    stream = list(sparse_stream(200, seed=1))
    ids = {"t0": [0], "t1": [1, 2], "t2": []}
    model = PrunedSetsClassifier()
    for x, y in stream[:100]:
        model.learn(x, ids[y[0]])
    model.state().save(tmp_path / "m")
    restored = PrunedSetsClassifier.from_state(State.load(tmp_path / "m"))
    log_odds = np.array([0.5, -0.2, 0.1])
    for x, y in stream[100:]:
        assert restored.decide(x, log_odds) == model.decide(x, log_odds)
        model.learn(x, ids[y[0]])
        restored.learn(x, ids[y[0]])
    np.testing.assert_array_equal(restored._weights, model._weights)
    assert restored.label_sets == model.label_sets


def test_sparse_and_dense_features_learn_the_same_model() -> None:
    sparse, dense = PrunedSetsClassifier(), PrunedSetsClassifier()
    for x, y in sparse_stream(150, seed=2):
        sparse.learn(x, [int(y[0][1])])
        dense.learn(x.to_dense(), [int(y[0][1])])
    np.testing.assert_allclose(sparse._weights, dense._weights, rtol=1e-6)
    probe = SparseVector(np.array([3, 25], dtype=np.int64), np.ones(2, dtype=np.float32), 64)
    assert sparse.decide(probe, np.zeros(3)) == dense.decide(probe.to_dense(), np.zeros(3))


def test_experts_of_a_state_written_before_the_pruned_sets_expert_restore_with_the_learners_record(
    tmp_path,
) -> None:
    experts = DecisionExperts("subset_accuracy")
    for i in range(30):
        experts.learn({"a"}, {"a": 0.7}, ["a"] if i % 3 else [], label_sets={"b"})
    state = experts.state()
    # The previous format: four experts (model, half, no-change, majority).
    state.arrays["loss"] = state.arrays["loss"][:4]
    state.arrays["micro"] = state.arrays["micro"][:4]
    state.arrays["macro"] = state.arrays["macro"][:4]
    state.save(tmp_path / "old")
    restored = DecisionExperts.from_state(State.load(tmp_path / "old"))
    assert restored.losses["pruned-sets"] == restored.losses["model"] == experts.losses["model"]
    assert restored.leader == experts.leader
    # It leads only once strictly better from here on.
    for _ in range(5):
        restored.learn({"a"}, {"a": 0.7}, ["b"], label_sets={"b"})
    assert restored.leader == "pruned-sets"
    assert restored.decide({"a"}, {"a": 0.7}, {"b"}) == {"b"}
    assert restored.decide({"a"}, {"a": 0.7}) == {"a"}  # no label-set model: the learner's decision


def test_the_default_learner_decides_by_pruned_sets_only_under_subset_accuracy(tmp_path) -> None:
    stream = list(dense_stream(300, seed=7))
    assert ScalingClassifier().label_sets is None
    model = ScalingClassifier(objective="subset_accuracy")
    for x, y in stream[:200]:
        model.predict_one(x)
        model.learn_one(x, y)
    assert model.label_sets is not None
    assert sorted(model.label_sets.label_sets) == sorted(
        tuple(sorted(model.flat.label_index.ids(y))) for y in (["a", "b"], ["c"])
    )
    model.state().save(tmp_path / "m")
    restored = ScalingClassifier.from_state(State.load(tmp_path / "m"))
    assert restored.label_sets is not None and restored.decisions.objective == "subset_accuracy"
    xs = [x for x, _ in stream[200:]]
    assert restored.predict_with_scores_many(xs) == model.predict_with_scores_many(xs)
    for x, y in stream[200:]:
        model.learn_one(x, y)
        restored.learn_one(x, y)
    assert restored.decisions.losses == model.decisions.losses


def test_subset_accuracy_states_do_not_depend_on_batch_boundaries() -> None:
    stream = list(dense_stream(120, seed=5))
    states = []
    for batch in (1, 7, 32):
        model = ScalingClassifier(objective="subset_accuracy")
        for start in range(0, len(stream), batch):
            chunk = stream[start : start + batch]
            model.predict_with_scores_many([x for x, _ in chunk])
            for x, y in chunk:
                model.learn_one(x, y)
        states.append((model.decisions.state(), model.label_sets.state()))
    for decisions, label_sets in states[1:]:
        for mine, first in ((decisions, states[0][0]), (label_sets, states[0][1])):
            assert mine.meta == first.meta
            for name, value in first.arrays.items():
                np.testing.assert_array_equal(mine.arrays[name], value, err_msg=name)


def test_learning_a_decided_instance_reuses_its_logits_and_learns_the_same_model() -> None:
    deciding, learning_only = PrunedSetsClassifier(), PrunedSetsClassifier()
    for x, y in sparse_stream(200, seed=3):
        ids = [int(y[0][1])] if y[0] != "t2" else [0, 1]
        deciding.decide(x, np.zeros(2))
        deciding.learn(x, ids)
        learning_only.learn(x, ids)
    np.testing.assert_array_equal(deciding._weights, learning_only._weights)
    np.testing.assert_array_equal(deciding._bias, learning_only._bias)


def test_the_weights_never_grow_past_the_memory_budget() -> None:
    model = PrunedSetsClassifier(min_count=1, memory_budget=8 * 16 * 20)  # 16 features: 20 classes
    x = np.ones(16, dtype=np.float32)
    for label in range(40):
        model.learn(x, [label])
    assert model.n_classes == 20 and model._weights.shape == (16, 20)
