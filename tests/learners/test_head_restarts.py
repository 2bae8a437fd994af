"""Restarting logistic heads after a drift: fresh step sizes for the restarted labels only."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.base import SparseVector
from labelflow.operators.learners.linear import LinearHeads
from labelflow.operators.state import State


def instances(n: int, seed: int, dim: int = 6):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x = rng.normal(size=dim).astype(np.float32)
        yield x, (x[:3] > 0).astype(np.float32)


def train(heads: LinearHeads, stream) -> None:
    for x, y in stream:
        heads.learn(x, y, heads.probabilities(x, y.shape[0]))


def test_reset_labels_relearn_with_fresh_step_sizes_and_the_others_keep_theirs():
    heads = LinearHeads(learning_rate=0.5)
    train(heads, instances(2000, seed=0))
    before = heads.weights.copy()
    heads.reset([1])
    assert np.all(heads.weights[:, 1] == 0.0) and np.array_equal(heads.weights[:, [0, 2]], before[:, [0, 2]])
    assert heads.restarted_labels == [1]

    x = np.zeros(6, dtype=np.float32)
    x[0] = 1.0
    p = heads.probabilities(x, 3)
    y = np.array([1.0, 1.0, 1.0], dtype=np.float32)
    w0 = heads.weights[0].copy()
    heads.learn(x, y, p)
    moved = heads.weights[0] - w0
    # Label 1's step counts only this instance (1 + x0^2 = 2); labels 0 and 2 use 2,000 instances of x0^2.
    assert moved[1] == pytest.approx(0.5 / np.sqrt(2.0) * (1.0 - p[1]), rel=1e-5)
    shared = 0.5 / np.sqrt(1.0 + heads._g2[0])
    assert moved[0] == pytest.approx(shared * (1.0 - p[0]), rel=1e-3)  # float32 accumulators
    assert moved[1] / (1.0 - p[1]) > 20 * moved[0] / (1.0 - p[0])


@pytest.mark.parametrize("sparse", [False, True])
def test_adopted_heads_continue_exactly_as_they_would_have_on_their_own(sparse):
    def as_input(x):
        return SparseVector(np.flatnonzero(x), x[np.flatnonzero(x)], x.shape[0]) if sparse else x

    old, new, later = list(instances(1500, 1)), list(instances(500, 2)), list(instances(300, 3))
    main = LinearHeads(learning_rate=0.5)
    train(main, ((as_input(x), y) for x, y in old))
    background = LinearHeads(learning_rate=0.5)  # starts at a warning and sees what main sees from then on
    for x, y in new:
        main.learn(as_input(x), y, main.probabilities(as_input(x), 3))
        background.learn(as_input(x), y[[2, 0]], background.probabilities(as_input(x), 2))
    main.adopt([2, 0], background)
    for x, y in later:
        main.learn(as_input(x), y, main.probabilities(as_input(x), 3))
        background.learn(as_input(x), y[[2, 0]], background.probabilities(as_input(x), 2))
    np.testing.assert_allclose(main.weights[:, [2, 0]], background.weights[:, :2], rtol=1e-4, atol=1e-6)


def test_restarted_labels_return_to_the_shared_step_sizes_once_these_are_close():
    heads = LinearHeads()
    train(heads, instances(100, 0))
    heads.reset([0])
    train(heads, instances(400, 1))
    assert heads.restarted_labels == [0]  # 500 instances, 400 since the restart: step sizes 12% apart
    train(heads, instances(100, 2))
    assert heads.restarted_labels == []  # 600 and 500: within 10%


def test_restarting_a_label_again_moves_it_and_the_number_of_restart_groups_is_bounded():
    heads = LinearHeads()
    train(heads, instances(50, 0))
    heads.reset([0, 1])
    heads.reset([1])
    assert [labels.tolist() for labels, _ in heads._restarted] == [[0], [1]]
    for label in range(40):
        heads.reset([label % 3])
    assert len(heads._restarted) <= 16 and heads.restarted_labels == [0, 1, 2]


def test_restarts_survive_a_checkpoint(tmp_path):
    heads = LinearHeads()
    train(heads, instances(800, 0))
    heads.reset([2])
    heads.state().save(tmp_path / "heads")
    restored = LinearHeads.from_state(State.load(tmp_path / "heads"))
    assert restored.restarted_labels == [2]
    train(heads, instances(50, 1))
    train(restored, instances(50, 1))
    np.testing.assert_array_equal(restored.weights, heads.weights)


def test_a_reset_before_anything_was_learned_does_nothing_and_adopting_needs_the_same_dimension():
    heads = LinearHeads()
    heads.reset([0, 1])
    assert heads.restarted_labels == []
    train(heads, instances(10, 0))
    other = LinearHeads()
    train(other, instances(10, 0, dim=4))
    with pytest.raises(ValueError, match="dimension"):
        heads.adopt([0], other)
