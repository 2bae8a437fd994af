"""Label dependence drift: pair co-occurrence tests on label-id sets (operators/drift/dependence.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelflow.operators.drift import LabelDependenceDriftDetector, detector_from_state
from labelflow.operators.state import State


def run(detector: LabelDependenceDriftDetector, label_sets, start: int = 0, **kw) -> list:
    events = []
    for i, y in enumerate(label_sets):
        event = detector.update(y, position=start + i, **kw)
        if event is not None:
            events.append(event)
    return events


def summary(events) -> list[tuple]:
    return [(e.position, e.labels, e.severity, round(e.statistic, 9), e.details["pairs"]) for e in events]


def test_a_swap_of_correlated_labels_is_detected_within_a_few_hundred_instances(dependence_stream):
    events = run(LabelDependenceDriftDetector(), dependence_stream)
    assert [e.position for e in events] == [3099, 6099]  # the first block after each change
    for event in events:
        assert (event.kind, event.level, event.severity) == ("label_structure", "global", "drift")
        assert event.action == "alert"
        assert event.detector == "LabelDependenceDriftDetector"
        assert event.statistic > event.threshold == 4.0
        assert {"2", "5"} <= set(event.labels)  # the labels that changed company
        json.dumps(event.to_dict())
    first = events[0].details["pairs"][0]
    # 2 and 3 never occurred together before the swap; right after it, 3 accompanies most sets with 2
    assert first["labels"] == ["2", "3"] and first["p_b_given_a"][0] == 0.0 and first["p_b_given_a"][1] > 0.3
    assert events[0].details["test_window"] == 200 and events[0].details["n_tracked_labels"] == 6


def test_quiet_on_a_stationary_stream_and_on_a_pure_prior_shift(make_dependence_sets):
    assert run(LabelDependenceDriftDetector(), make_dependence_sets(20_000, seed=1)) == []
    # One group becomes nine times as frequent as the other: every label's frequency moves, but
    # which labels occur together does not.
    for seed in range(3):
        shifted = make_dependence_sets(12_000, seed=seed, prior_shift_at=4000)
        assert LabelDependenceDriftDetector().update_many(shifted) == []


def test_new_labels_are_tracked_and_their_arrival_is_no_dependence_drift(make_dependence_sets):
    detector = LabelDependenceDriftDetector()
    grown = make_dependence_sets(12_000, seed=3, new_group_at=2000, swaps=(7000,))
    events = detector.update_many(grown, label_names=[f"l{i}" for i in range(8)])
    assert sorted(detector.tracked_labels) == list(range(8))
    assert [e.position for e in events] == [7099]  # only the swap, well after the new labels arrived
    assert events[0].details["n_tracked_labels"] == 8 and {"l2", "l5"} <= set(events[0].labels)


def test_the_most_frequent_labels_take_the_slots():
    rng = np.random.default_rng(4)
    sets = [[i for i in range(6) if rng.random() < 0.05] for _ in range(3000)]
    sets += [
        [i for i in range(6) if rng.random() < 0.05] + ([9] if rng.random() < 0.6 else [])
        for _ in range(3000)
    ]
    detector = LabelDependenceDriftDetector(max_labels=4)
    detector.update_many(sets)
    assert 9 in detector.tracked_labels and len(detector.tracked_labels) == 4


def test_batches_matrices_and_single_updates_agree(dependence_stream):
    one_by_one = summary(run(LabelDependenceDriftDetector(), dependence_stream))
    batched, matrix = LabelDependenceDriftDetector(), LabelDependenceDriftDetector()
    indicator = np.zeros((len(dependence_stream), 6), dtype=bool)
    for i, y in enumerate(dependence_stream):
        indicator[i, y] = True
    events_batched, events_matrix = [], []
    for start in range(0, len(dependence_stream), 32):
        positions = list(range(start, min(start + 32, len(dependence_stream))))
        events_batched += batched.update_many(dependence_stream[start : start + 32], positions=positions)
        events_matrix += matrix.update_many(indicator[start : start + 32], positions=positions)
    assert summary(events_batched) == summary(events_matrix) == one_by_one
    assert batched.n_seen == matrix.n_seen == len(dependence_stream)
    # an indicator vector, a tuple, a numpy id array and duplicates are the same label set
    single = LabelDependenceDriftDetector(block_size=2, min_count=0)
    single.update(np.array([True, False, True]))
    single.update((0, 2, 2))
    state = single.state()
    assert sorted(state.arrays["slot_label"][:2].tolist()) == [0, 2]
    assert state.arrays["block_counts"].tolist() == [[2, 2]] and state.arrays["block_pairs"].tolist() == [[2]]


def test_state_round_trip_is_exact_mid_block(dependence_stream, tmp_path):
    original = LabelDependenceDriftDetector()
    run(original, dependence_stream[:4550])  # ends inside a block: the open block is in the state
    state = original.state()
    json.dumps(state.meta)
    state.save(tmp_path)
    restored = detector_from_state(State.load(tmp_path))
    assert isinstance(restored, LabelDependenceDriftDetector)
    assert restored.tracked_labels == original.tracked_labels and restored.n_seen == original.n_seen
    rest = dependence_stream[4550:]
    assert summary(run(original, rest, start=4550)) == summary(run(restored, rest, start=4550)) != []
    after, after_restored = original.state(), restored.state()
    assert after.meta == after_restored.meta
    for key, value in after.arrays.items():
        np.testing.assert_array_equal(value, after_restored.arrays[key], err_msg=key)


def test_cooldown_suppresses_the_second_drift(dependence_stream):
    detector = LabelDependenceDriftDetector(cooldown=5000)
    assert [e.position for e in run(detector, dependence_stream)] == [3099]
    assert detector.n_suppressed == 1 and detector.n_events == 1
    assert [e.position for e in run(LabelDependenceDriftDetector(cooldown=2000), dependence_stream)] == [
        3099,
        6099,
    ]


def test_label_names_from_a_sequence_or_an_index(dependence_stream):
    class Index:  # like the learner's LabelIndex
        def name(self, label_id: int) -> str:
            return "abcdef"[label_id]

    by_index = LabelDependenceDriftDetector().update_many(dependence_stream[:3500], label_names=Index())
    by_list = LabelDependenceDriftDetector().update_many(
        dependence_stream[:3500], label_names=["a", "b", "c"]
    )
    assert by_index[0].labels[:2] == ("c", "d")
    assert by_list[0].labels[:2] == ("c", "3")  # ids without a name keep their number


def test_bad_input_and_parameters_are_refused():
    detector = LabelDependenceDriftDetector()
    with pytest.raises(TypeError, match="label ids"):
        detector.update("ab")
    with pytest.raises(TypeError, match="integers"):
        detector.update([1.5])
    with pytest.raises(TypeError, match="integers"):
        detector.update_many([[0, 1], ["x"]])
    with pytest.raises(ValueError, match="non-negative"):
        detector.update_many([[0, -1]])
    with pytest.raises(ValueError, match="positions"):
        detector.update_many([[0], [1]], positions=[0])
    assert detector.n_seen == 0
    with pytest.raises(ValueError, match="alpha"):
        LabelDependenceDriftDetector(alpha=1.0)
    with pytest.raises(ValueError, match="min_reference_blocks"):
        LabelDependenceDriftDetector(reference_blocks=4, min_reference_blocks=5)
    with pytest.raises(ValueError, match="test_blocks"):
        LabelDependenceDriftDetector(test_blocks=[0, 2])
    with pytest.raises(ValueError, match="max_labels"):
        LabelDependenceDriftDetector(max_labels=1)
