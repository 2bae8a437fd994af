"""Label prior drift: per-label frequency tests, cardinality, new labels, on numeric and synthetic streams."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.datasets import SyntheticStream, SyntheticStreamConfig
from labelflow.operators.drift import LabelPriorDriftDetector, detector_from_state


def run(detector: LabelPriorDriftDetector, label_sets) -> list:
    return [e for i, y in enumerate(label_sets) if (e := detector.update(y, position=i)) is not None]


def test_prior_shift_and_new_label_are_detected_with_the_right_labels(label_set_stream):
    events = run(LabelPriorDriftDetector(), label_set_stream)
    assert len(events) == 2
    shift, new = events
    assert 3000 <= shift.position < 3500 and shift.labels == ("b",)
    # The test window may still hold some pre-drift sets when it fires: "after" lies between 0.1 and 0.4.
    assert shift.details["shifts"][0]["before"] < 0.15 < 0.2 < shift.details["shifts"][0]["after"]
    assert shift.details["new_labels"] == []
    assert 6000 <= new.position < 6500 and new.labels == ("d",)
    assert new.details["new_labels"] == ["d"] and new.details["shifts"][0]["before"] == 0.0
    assert all(e.kind == "label_prior" and e.level == "global" and e.statistic > e.threshold for e in events)


def test_cardinality_shift_without_a_single_strong_label_is_detected():
    rng = np.random.default_rng(1)
    names = [f"l{i}" for i in range(40)]
    # Every label gets a little more frequent (5% -> 7%): no single label test is sure quickly,
    # the mean label-set size (2.0 -> 2.8) is.
    sets = [[n for n in names if rng.random() < (0.05 if t < 4000 else 0.07)] for t in range(8000)]
    events = run(LabelPriorDriftDetector(), sets)
    assert events and 4000 <= events[0].position < 4600
    assert events[0].details["cardinality_after"] > events[0].details["cardinality_before"] + 0.4


def test_no_false_alarm_on_a_stationary_synthetic_stream():
    stream = SyntheticStream(SyntheticStreamConfig(seed=3, n_documents=60_000, drift_events=[]))
    detector = LabelPriorDriftDetector()
    assert run(detector, (doc.labels for doc in stream)) == []
    assert set(detector.known_labels) == set(stream.labels)


def test_the_synthetic_prior_shift_and_new_label_are_detected():
    stream = SyntheticStream(SyntheticStreamConfig(seed=4, n_documents=5000))
    drifts = {d.kind: d for d in stream.drift_events}
    events = run(LabelPriorDriftDetector(), (doc.labels for doc in stream))
    prior = drifts["label_prior"].position
    new = drifts["new_label"]
    assert any(prior <= e.position < prior + 500 for e in events)
    new_label_events = [e for e in events if new.details["labels"][0] in e.details["new_labels"]]
    assert new_label_events and new.position <= new_label_events[0].position < new.position + 500


def test_scope_restricts_the_watched_labels():
    rng = np.random.default_rng(2)
    sets = [
        [n for n, p in (("a", 0.3), ("b", 0.1 if t < 3000 else 0.5)) if rng.random() < p] for t in range(6000)
    ]
    assert run(LabelPriorDriftDetector(labels=["a"], level=4), sets) == []
    events = run(LabelPriorDriftDetector(labels=["b"], level=4), sets)
    assert events and events[0].labels == ("b",) and events[0].level == "4"


def test_many_labels_grow_the_tables_and_survive_a_state_round_trip():
    rng = np.random.default_rng(3)
    names = [f"label-{i}" for i in range(300)]
    detector = LabelPriorDriftDetector()
    sets = [list(rng.choice(names, size=3, replace=False)) for _ in range(2550)]
    run(detector, sets)
    restored = detector_from_state(detector.state())
    assert isinstance(restored, LabelPriorDriftDetector)
    assert restored.known_labels == detector.known_labels and len(restored.known_labels) == 300
    more = [list(rng.choice(names, size=3, replace=False)) + (["hot"] if t > 100 else []) for t in range(800)]
    assert [e.labels for e in run(detector, more)] == [e.labels for e in run(restored, more)]


def test_bad_input_and_parameters_are_refused():
    with pytest.raises(TypeError, match="collection of label names"):
        LabelPriorDriftDetector().update("abc")
    with pytest.raises(ValueError, match="min_reference_blocks"):
        LabelPriorDriftDetector(reference_blocks=5, min_reference_blocks=6)
    with pytest.raises(ValueError, match="alpha"):
        LabelPriorDriftDetector(alpha=0.0)


def test_duplicate_labels_in_one_set_count_once():
    detector = LabelPriorDriftDetector(
        block_size=2, test_blocks=1, reference_blocks=1, min_reference_blocks=1
    )
    detector.update(["a", "a", "b"])
    state = detector.state()
    assert state.arrays["open_counts"].tolist() == [1, 1]
    assert state.meta["open_cardinality"] == [2.0, 4.0]


def _indicators(label_sets: list[list[str]], names: list[str]) -> np.ndarray:
    matrix = np.zeros((len(label_sets), len(names)), dtype=bool)
    for row, labels in enumerate(label_sets):
        matrix[row, [names.index(label) for label in labels]] = True
    return matrix


@pytest.mark.parametrize("scope", [(), ("a", "d")])
def test_indicator_rows_give_the_events_and_state_of_label_sets(label_set_stream, scope):
    # Columns named before their label occurs ("d" from 6000 on), blocks of uneven sizes across the
    # detector's 100-set blocks, an optional scope: the same as feeding the label sets.
    names = ["c", "d", "b", "a"]
    by_sets, by_rows = LabelPriorDriftDetector(labels=scope), LabelPriorDriftDetector(labels=scope)
    rng = np.random.default_rng(0)
    start, set_events, row_events = 0, [], []
    while start < len(label_set_stream):
        chunk = label_set_stream[start : start + int(rng.integers(1, 70))]
        positions = list(range(start, start + len(chunk)))
        set_events += by_sets.update_many(chunk, positions=positions)
        row_events += by_rows.update_indicators(_indicators(chunk, names), names, positions=positions)
        start += len(chunk)
    assert [e.to_dict() for e in row_events] == [e.to_dict() for e in set_events]
    assert len(set_events) == (2 if not scope else 1)
    a, b = by_sets.state(), by_rows.state()
    assert a.meta == b.meta
    assert all(np.array_equal(a.arrays[key], b.arrays[key]) for key in a.arrays)


def test_indicator_columns_sharing_a_name_count_once_like_a_label_set():
    by_sets, by_rows = LabelPriorDriftDetector(block_size=2), LabelPriorDriftDetector(block_size=2)
    sets = [["1"], ["1", "x"], ["x"]]
    by_sets.update_many(sets)
    by_rows.update_indicators(np.array([[1, 0, 0], [1, 1, 1], [0, 0, 1]], dtype=bool), ["1", "1", "x"])
    assert by_sets.state().meta == by_rows.state().meta
