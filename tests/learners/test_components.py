"""Unit tests of the parts of the default learner."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.base import SparseVector
from labelflow.operators.learners.feature_scaling import FeatureScaler
from labelflow.operators.learners.label_index import LabelIndex
from labelflow.operators.learners.linear import LinearHeads
from labelflow.operators.learners.neighbours import RecentNeighbours
from labelflow.operators.learners.powerset import LabelSetDecoder
from labelflow.operators.learners.registry import make_learner
from labelflow.operators.learners.thresholds import AdaptiveThresholds
from labelflow.operators.state import State


def round_trip(obj, tmp_path):
    obj.state().save(tmp_path / "s")
    return type(obj).from_state(State.load(tmp_path / "s"))


def test_label_index_grows_in_first_seen_order_and_round_trips(tmp_path):
    index = LabelIndex()
    assert index.ids(["b", "a", "b"]) == [0, 1]
    assert index.ids(["c"], add=False) == []
    assert round_trip(index, tmp_path).names == ["b", "a"]


def test_scaler_standardises_dense_and_normalises_sparse():
    scaler = FeatureScaler()
    rng = np.random.default_rng(0)
    rows = rng.normal(5.0, 3.0, size=(500, 4)).astype(np.float32)
    for row in rows:
        scaler.learn_one(row)
    z = np.array([scaler.transform(r) for r in rows]) * np.sqrt(4)
    assert np.allclose(z.mean(axis=0), 0, atol=0.05) and np.allclose(z.std(axis=0), 1, atol=0.05)
    v = SparseVector(np.array([1, 5]), np.array([3.0, 4.0], dtype=np.float32), 10)
    out = scaler.transform(v)
    assert out.indices.tolist() == [1, 5] and np.isclose(np.linalg.norm(out.values), 1.0)


@pytest.mark.parametrize("scale", [8e37, 1e20, 1e-25, 1e-40])  # 4 * 8e37 is near float32's largest
def test_scaler_normalises_sparse_values_of_any_float32_magnitude(scale: float) -> None:
    # Squares of values above ~1e19 overflow float32 (the vector became NaN, or zero) and below ~1e-19
    # underflow (it stayed unnormalised); the direction does not depend on the scale.
    scaler = FeatureScaler()
    for indices in ([1, 5], [5, 7], [1]):
        scaler.learn_one(SparseVector(np.array(indices), np.ones(len(indices), dtype=np.float32), 10))
    values = np.array([3.0, -4.0, 0.5], dtype=np.float32)
    plain = scaler.transform(SparseVector(np.array([1, 5, 7]), values, 10))
    scaled = scaler.transform(SparseVector(np.array([1, 5, 7]), (values * np.float32(scale)), 10))
    assert np.all(np.isfinite(scaled.values))
    assert np.allclose(scaled.values, plain.values, rtol=1e-5, atol=1e-4 if scale < 1e-38 else 0)


def test_a_sparse_document_of_float32_extremes_leaves_the_default_learner_finite() -> None:
    model = make_learner()
    rng = np.random.default_rng(1)
    for i in range(200):
        indices = np.sort(rng.choice(50, 5, replace=False))
        model.learn_one(SparseVector(indices, np.ones(5, dtype=np.float32), 50), {f"l{i % 3}", f"l{i % 5}"})

    def non_finite() -> dict[str, int]:  # some arrays hold infinities by design (the clusterer's sentinels)
        arrays = model.state().arrays
        counts = {k: int((~np.isfinite(a)).sum()) for k, a in arrays.items() if a.dtype.kind == "f"}
        return {k: n for k, n in counts.items() if n}

    before = non_finite()
    extreme = SparseVector(np.array([3, 8]), np.array([3.4e38, -3.4e38], dtype=np.float32), 50)
    model.predict_one(extreme)
    model.learn_one(extreme, {"l0"})
    assert non_finite() == before
    scores = model.predict_proba_one(SparseVector(np.array([3, 9]), np.ones(2, dtype=np.float32), 50))
    assert scores and all(0.0 <= p <= 1.0 for p in scores.values())


def test_scaler_rejects_a_changed_dimension():
    scaler = FeatureScaler()
    scaler.learn_one(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="dimension changed from 3 to 4"):
        scaler.transform(np.zeros(4, dtype=np.float32))


def test_linear_heads_sparse_and_dense_updates_agree():
    dense, sparse = LinearHeads(), LinearHeads()
    x = np.array([0.0, 0.6, 0.0, 0.8], dtype=np.float32)
    xs = SparseVector(np.array([1, 3]), np.array([0.6, 0.8], dtype=np.float32), 4)
    y = np.array([1.0, 0.0, 1.0], dtype=np.float32)
    for _ in range(5):
        dense.learn(x, y, dense.probabilities(x, 3))
        sparse.learn(xs, y, sparse.probabilities(xs, 3))
    assert np.allclose(dense.weights, sparse.weights)
    assert (dense.probabilities(x, 3) > 0.5).tolist() == [True, False, True]


def test_linear_heads_grow_with_new_labels_keeping_old_weights():
    heads = LinearHeads()
    x = np.ones(2, dtype=np.float32)
    heads.learn(x, np.array([1.0], dtype=np.float32), heads.probabilities(x, 1))
    before = heads.weights[:, 0].copy()
    heads.probabilities(x, 40)
    assert heads.weights.shape[1] >= 40 and np.array_equal(heads.weights[:, 0], before)


def test_neighbours_vote_for_the_closest_recent_instances_and_forget_old_ones():
    knn = RecentNeighbours(window=3, k=1, prior_weight=0.0)
    a, b = np.array([1.0, 0.0], dtype=np.float32), np.array([0.0, 1.0], dtype=np.float32)
    knn.learn(a, np.array([1.0, 0.0], dtype=np.float32))
    knn.learn(b, np.array([0.0, 1.0], dtype=np.float32))
    assert knn.votes(a, 2).tolist() == [1.0, 0.0]
    for _ in range(3):  # pushes the only "a" out of the window
        knn.learn(b, np.array([0.0, 1.0], dtype=np.float32))
    votes = knn.votes(a, 2)
    assert votes[0] < 0.5 < votes[1] and np.isfinite(votes).all()


def test_neighbours_sketch_wide_sparse_inputs_and_round_trip(tmp_path):
    knn = RecentNeighbours(window=50, k=3, sketch_dim=64)
    rng = np.random.default_rng(1)
    data = []
    for i in range(60):
        topic = i % 2
        idx = np.unique(rng.integers(0, 50, size=5) + 1000 * topic)
        data.append((SparseVector(idx, np.ones(len(idx), dtype=np.float32), 10_000), topic))
    for x, topic in data[:55]:
        knn.learn(x, np.array([1.0 - topic, float(topic)], dtype=np.float32))
    restored = round_trip(knn, tmp_path)
    for x, topic in data[55:]:
        votes = knn.votes(x, 2)
        assert int(np.argmax(votes)) == topic
        assert np.array_equal(votes, restored.votes(x, 2))


def test_thresholds_default_to_one_pooled_micro_f1_cut():
    th = AdaptiveThresholds(refresh_every=10)
    rng = np.random.default_rng(0)
    for _ in range(400):
        truth = (rng.random(3) < [0.5, 0.2, 0.05]).astype(np.float32)
        scores = np.clip(truth * 0.5 + rng.random(3) * 0.5, 0, 1).astype(np.float32)
        th.update(scores, truth)
    values = th.values(3)
    assert np.all(values == values[0]) and 0.3 < values[0] < 0.6


def test_thresholds_round_trip(tmp_path):
    th = AdaptiveThresholds(refresh_every=1)
    th.update(np.array([0.9, 0.1], dtype=np.float32), np.array([1.0, 0.0], dtype=np.float32))
    restored = round_trip(th, tmp_path)
    assert np.array_equal(restored.values(2), th.values(2)) and restored.shrinkage == float("inf")


def test_decoder_keeps_seen_combinations_and_allows_new_ones():
    decoder = LabelSetDecoder(prior_weight=1.0)
    decoder.set_partition([(0, 1, 2)])
    for _ in range(100):
        decoder.learn([0, 1])
        decoder.learn([2])
    # A weak label that always co-occurs with a strong one is completed...
    assert decoder.decode(np.array([3.0, -0.3, -4.0])).tolist() == [True, True, False]
    # ...but strong evidence for a combination never seen still wins.
    assert decoder.decode(np.array([4.0, 4.0, 4.0])).tolist() == [True, True, True]
    # With no dependence weight it is plain thresholding.
    plain = LabelSetDecoder(prior_weight=0.0)
    plain.set_partition([(0, 1, 2)])
    assert plain.decode(np.array([3.0, -0.3, -4.0])).tolist() == [True, False, False]


def test_decoder_carries_counts_across_splits_and_restores_exactly(tmp_path):
    decoder = LabelSetDecoder()
    decoder.set_partition([(0, 1, 2, 3)])
    for _ in range(50):
        decoder.learn([0, 1])
        decoder.learn([2, 3])
    decoder.set_partition([(0, 1), (2, 3)])
    tables = {tuple(t.labels.tolist()): t for t in decoder._clusters}
    assert tables[(0, 1)].rows.keys() == {(0, 1)} and tables[(2, 3)].rows.keys() == {(0, 1)}
    s = np.array([2.0, -0.2, -3.0, -3.0])
    restored = round_trip(decoder, tmp_path)
    assert np.array_equal(restored.decode(s), decoder.decode(s))
    assert decoder.decode(s).tolist() == [True, True, False, False]


def test_label_ids_of_lists_are_first_seen_distinct_ids_whatever_the_path():
    rng = np.random.default_rng(5)
    index, names = LabelIndex(), [f"l{i}" for i in range(12)]
    expected: dict[str, int] = {}
    for _ in range(400):
        y = [names[int(i)] for i in rng.integers(0, 12, size=int(rng.integers(0, 5)))]  # repeats too
        add = bool(rng.random() < 0.8)
        want: list[int] = []
        for name in y:
            if name not in expected and add:
                expected[name] = len(expected)
            if name in expected and expected[name] not in want:
                want.append(expected[name])
        assert index.ids(y, add=add) == want
    assert index.names == sorted(expected, key=expected.__getitem__)
