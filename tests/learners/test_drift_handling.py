"""Drift handling inside the default learner: detection on blocks of labelled instances, adaptation, state."""

from __future__ import annotations

import numpy as np

from labelflow.operators.learners.partitioned import PartitionedClassifier
from labelflow.operators.state import State


def swapping_stream(n: int, swap_at: int, seed: int = 0):
    """Two independent groups of labels; at ``swap_at`` the inputs of the first group's labels swap."""
    rng = np.random.default_rng(seed)
    for t in range(n):
        first, second = int(rng.integers(2)), int(rng.integers(2))
        x = np.zeros(8, dtype=np.float32)
        x[first] = x[2 + second] = 3.0
        x += rng.normal(0.0, 0.3, size=8).astype(np.float32)
        label = ("a", "b")[first if t < swap_at else 1 - first]
        yield x, [label, ("c", "d")[second]]


def test_a_concept_swap_is_detected_after_it_happens_and_the_model_adapts():
    # Without the neighbour window and the latest label set the heads alone carry the concept, so the
    # swap costs accuracy long enough for the detectors to confirm it.
    model = PartitionedClassifier(drift_adaptation="reset", neighbours_k=0, temporal_context=False)
    events = []
    hits_after = []
    for t, (x, y) in enumerate(swapping_stream(6000, swap_at=3000)):
        predicted = model.predict_one(x)
        model.learn_one(x, y)
        events += model.drain_events()
        if t >= 5000:
            hits_after.append(predicted == set(y))
    drifts = [e for e in events if e.kind == "performance" and e.severity == "drift"]
    assert drifts, "the swap was not detected"
    assert all(e.position >= 3000 for e in drifts)
    assert min(e.position for e in drifts) < 3600
    assert any(e.action == "reset_cluster_model" for e in drifts)
    # The reset heads relearn with step sizes counted from the reset, not the converged model's.
    reset = {label for e in drifts if e.action == "reset_cluster_model" for label in e.labels}
    assert reset <= {model.labels[i] for i in model.heads.restarted_labels}
    assert np.mean(hits_after) > 0.9  # the model has learned the swapped concept


def test_state_with_observations_waiting_for_their_block_restores_exactly(tmp_path):
    stream = list(swapping_stream(4000, swap_at=2000, seed=1))
    model = PartitionedClassifier()
    for x, y in stream[:2010]:  # 2010 is not a multiple of the 32-instance detector block
        model.predict_one(x)
        model.learn_one(x, y)
    model.drain_events()
    assert model.drift.n_pending
    model.state().save(tmp_path / "model")
    restored = PartitionedClassifier.from_state(State.load(tmp_path / "model"))
    for x, y in stream[2010:]:
        assert restored.predict_with_scores(x) == model.predict_with_scores(x)
        model.learn_one(x, y)
        restored.learn_one(x, y)
        assert [e.to_dict() for e in restored.drain_events()] == [e.to_dict() for e in model.drain_events()]


def test_partition_changes_count_as_drift_after_three_lifetimes_of_the_clusterers_memory():
    from labelflow.operators.labels.clustering import LabelClusterer

    assert PartitionedClassifier().drift.structure.formation_age == 3000  # default fading 0.999
    slow = PartitionedClassifier(clusterer=LabelClusterer(fading_factor=0.9998))
    assert slow.drift.structure.formation_age == 15000


def test_waiting_observations_keep_rows_of_any_width_and_dense_inputs_as_one_array():
    from labelflow.operators.base import SparseVector
    from labelflow.operators.learners.drift_handling import _Observations

    waiting = _Observations(2)
    inputs = [np.arange(3, dtype=np.float32) + i for i in range(3)]
    for i, x in enumerate(inputs):  # more rows than allocated, labels growing past the allocated width
        waiting.add(
            x, np.ones(10 + 5 * i, dtype=bool), np.eye(1, 20 * (i + 1), 19 * i, dtype=np.float32)[0], i
        )
    assert waiting.n == 3 and np.array_equal(waiting.dense_rows(), np.stack(inputs))
    assert [waiting.predicted_row(i).size for i in range(3)] == [10, 15, 20]
    assert [np.flatnonzero(waiting.truth_row(i)).tolist() for i in range(3)] == [[0], [19], [38]]
    assert waiting.truth_row(2).dtype == np.float32
    waiting.add(
        SparseVector(np.array([1]), np.array([1.0], dtype=np.float32), 3), np.ones(2, bool), np.ones(2), 3
    )
    assert waiting.dense_rows() is None  # a sparse input: the detector gets the list
    waiting.clear()
    assert waiting.n == 0 and not waiting.predicted.any() and not waiting.truth.any()
    waiting.add(inputs[0], np.ones(2, bool), np.ones(2), 4)
    assert np.array_equal(waiting.dense_rows(), inputs[0][None, :])
