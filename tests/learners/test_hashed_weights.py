"""The hashed node weights: compiled steps learn, checkpoints of a full table take no second table."""

from __future__ import annotations

import tracemalloc

import numpy as np

from labelflow.operators.learners.hashed_weights import HashedNodeWeights
from labelflow.operators.state import State


def test_nodes_learn_their_own_targets() -> None:
    weights = HashedNodeWeights(bits=12)
    weights.add_nodes(3)
    rng = np.random.default_rng(0)
    nodes = np.arange(3)
    for _ in range(200):
        features = rng.choice(1000, size=8, replace=False)
        keys = weights.feature_keys(features)
        values = np.full(8, 8**-0.5, dtype=np.float32)
        targets = np.array([1.0, 0.0, float(features.min() < 100)])
        weights.learn(keys, values, nodes, weights.probabilities(keys, values, nodes) - targets)
    p = weights.probabilities(
        weights.feature_keys(np.arange(8) + 500), np.full(8, 8**-0.5, dtype=np.float32), nodes
    )
    assert p[0] > 0.9 and p[1] < 0.1


def test_floor_skips_nodes_that_are_already_right() -> None:
    weights = HashedNodeWeights(bits=12)
    weights.add_nodes(2)
    keys = weights.feature_keys(np.array([1, 2]))
    values = np.array([0.6, 0.8], dtype=np.float32)
    updated = weights.learn(keys, values, np.array([0, 1]), np.array([0.005, -0.5]), floor=0.01)
    assert updated == 1
    assert weights.bias[0] == 0.0 and weights.bias[1] > 0.0


def test_checkpoint_of_a_full_table_allocates_no_slot_list(tmp_path) -> None:
    weights = HashedNodeWeights(bits=20)
    weights.add_nodes(4)
    weights.g2[::2] = 1.0  # half the table in use: stored whole, no list of used slots is needed
    table_bytes = weights.g2.nbytes + weights.weights.nbytes
    tracemalloc.start()
    try:
        state = weights.state()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < table_bytes // 8  # listing the used slots took 4 MB, as much as the table's 8 MB
    state.save(tmp_path / "w")
    restored = HashedNodeWeights.from_state(State.load(tmp_path / "w"))
    assert np.array_equal(restored.g2, weights.g2) and restored.bits == weights.bits
