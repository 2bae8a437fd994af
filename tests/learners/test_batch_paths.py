"""The vectorized batch paths give what the one-instance paths give."""

from __future__ import annotations

import numpy as np

from labelflow.operators.base import SparseVector
from labelflow.operators.learners.linear import LinearHeads
from labelflow.operators.learners.neighbours import RecentNeighbours
from labelflow.operators.learners.partitioned import PartitionedClassifier
from labelflow.operators.learners.powerset import LabelSetDecoder
from labelflow.operators.learners.thresholds import AdaptiveThresholds
from labelflow.operators.state import State


def sparse_rows(rng, n, dim, nnz=12):
    rows = []
    for _ in range(n):
        indices = np.sort(rng.choice(dim, size=nnz, replace=False)).astype(np.int64)
        rows.append(SparseVector(indices, rng.random(nnz).astype(np.float32), dim))
    return rows


def test_decode_many_matches_decode_row_by_row():
    rng = np.random.default_rng(3)
    decoder = LabelSetDecoder(prior_weight=0.5)
    decoder.set_partition([(0, 1, 2), (3, 4), (5,), (6, 7, 8, 9)])
    for _ in range(400):
        decoder.learn(sorted(set(rng.choice(10, size=int(rng.integers(0, 4)), replace=False).tolist())))
    shifted = rng.normal(0.0, 2.0, size=(300, 10))
    shifted[:20] = -5.0  # rows where nothing is positive
    many = decoder.decode_many(shifted)
    one = np.array([decoder.decode(row) for row in shifted])
    assert np.array_equal(many, one)
    assert one.any(axis=1).sum() > 200 and not one[:20].any()


def test_logits_many_matches_logits_for_sparse_and_dense_inputs():
    rng = np.random.default_rng(4)
    xs = sparse_rows(rng, 30, 500)
    heads = LinearHeads()
    for x in xs:
        heads.learn(x, (rng.random(5) < 0.3).astype(np.float32), heads.probabilities(x, 5))
    assert np.allclose(heads.logits_many(xs, 5), np.array([heads.logits(x, 5) for x in xs]), atol=1e-6)
    dense = [x.to_dense() for x in xs]
    assert np.allclose(heads.logits_many(dense, 5), np.array([heads.logits(x, 5) for x in dense]), atol=1e-6)


def test_votes_many_matches_votes_with_a_sketch_and_dense_inputs():
    rng = np.random.default_rng(5)
    for inputs in (
        sparse_rows(rng, 80, 5000, nnz=30),
        [rng.normal(size=16).astype(np.float32) for _ in range(80)],
    ):
        knn = RecentNeighbours(window=50, k=4, sketch_dim=256)
        for x in inputs[:60]:
            knn.learn(x, (rng.random(6) < 0.3).astype(np.float32))
        queries = inputs[60:]
        expected = np.array([knn.votes(x, 6) for x in queries])
        assert np.allclose(knn.votes_many(queries, 6), expected, atol=1e-6)


def test_partitioned_batch_prediction_matches_one_by_one_on_sparse_text_like_input():
    rng = np.random.default_rng(6)
    xs = sparse_rows(rng, 260, 4096, nnz=20)
    model = PartitionedClassifier()
    for x in xs[:200]:
        labels = [f"l{i}" for i in np.flatnonzero(x.to_dense()[:40] > 0).tolist()[:3]] or ["none"]
        model.predict_one(x)
        model.learn_one(x, labels)
    batch = model.predict_with_scores_many(xs[200:])
    for x, (labels, scores) in zip(xs[200:], batch, strict=True):
        one_labels, one_scores = model.predict_with_scores(x)
        assert labels == one_labels
        assert scores == one_scores  # the same to the bit: a model must not depend on how it was batched


def test_thresholds_counted_per_refresh_survive_a_round_trip_between_refreshes(tmp_path):
    rng = np.random.default_rng(7)
    scores = rng.random((160, 4)).astype(np.float32)
    truth = (scores + rng.normal(0, 0.2, size=scores.shape) > 0.6).astype(np.float32)
    th = AdaptiveThresholds(refresh_every=50)
    for s, t in zip(scores[:70], truth[:70], strict=True):  # 20 updates wait for the next refresh
        th.update(s, t)
    th.state().save(tmp_path / "th")
    restored = AdaptiveThresholds.from_state(State.load(tmp_path / "th"))
    for s, t in zip(scores[70:], truth[70:], strict=True):
        th.update(s, t)
        restored.update(s, t)
    assert np.array_equal(th.values(4), restored.values(4))
    assert np.allclose(th.log_odds(4), np.log(th.values(4) / (1 - th.values(4))))
    assert not np.allclose(th.values(4), 0.5)  # the cut moved away from the initial value
