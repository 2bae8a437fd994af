"""Input drift: random-feature MMD on dense embeddings and sparse hashing features."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelflow.operators.datasets import DriftEventConfig, SyntheticStream, SyntheticStreamConfig
from labelflow.operators.drift import InputDriftDetector, detector_from_state
from labelflow.operators.embedders.hashing import HashingFeaturizer


def batched(detector: InputDriftDetector, xs, batch: int = 256) -> list:
    events = []
    for start in range(0, len(xs), batch):
        chunk = xs[start : start + batch]
        events += detector.update_many(chunk, positions=list(range(start, start + len(chunk))))
    return events


def test_mean_shift_of_dense_vectors_is_detected_within_a_window():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 64)).astype(np.float32)
    x[4000:] += 0.8 * rng.normal(size=64).astype(np.float32) / 8  # a small shift in a random direction
    x[4000:, :8] += 0.6
    events = batched(InputDriftDetector(), x)
    assert len(events) == 1
    assert 4000 <= events[0].position < 4500
    assert events[0].kind == "input" and events[0].labels == ()
    assert events[0].statistic > events[0].threshold > events[0].details["null_mean"]


def test_covariance_change_with_the_same_mean_is_detected():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 8))
    x[3000:] *= np.array([3.0, 0.3, 1, 1, 1, 1, 1, 1])
    events = batched(InputDriftDetector(normalize=False), x)
    assert events and 3000 <= events[0].position < 3500


def test_no_false_alarm_on_100k_stationary_vectors():
    rng = np.random.default_rng(2)
    detector = InputDriftDetector()
    for _ in range(10):
        assert batched(detector, rng.standard_t(3, size=(10_000, 32))) == []
    assert detector.n_references == 1  # one reference, never refreshed: no alarm reset it


def test_vocabulary_shift_of_a_synthetic_text_stream_is_detected_on_hashing_features():
    config = SyntheticStreamConfig(
        seed=5, n_documents=6000, drift_events=[DriftEventConfig(kind="vocabulary", position=4000)]
    )
    stream = SyntheticStream(config)
    features = HashingFeaturizer(n_features=2**18, ngram_range=(1, 1)).embed_many([d.text for d in stream])
    events = batched(InputDriftDetector(), features)
    assert len(events) == 1 and 4000 <= events[0].position < 4500


def test_threshold_is_infinite_until_the_reference_is_full():
    detector = InputDriftDetector(reference_size=100, window_size=50)
    rng = np.random.default_rng(3)
    detector.update_many(rng.normal(size=(99, 4)))
    assert not detector.monitoring and math.isinf(detector.threshold)
    detector.update(rng.normal(size=4))
    assert detector.monitoring and math.isfinite(detector.threshold)
    state = detector.state()
    assert state.meta["threshold"] == detector.threshold
    restored = detector_from_state(state)
    assert isinstance(restored, InputDriftDetector) and restored.threshold == detector.threshold


def test_a_detection_starts_a_new_reference():
    rng = np.random.default_rng(4)
    x = np.vstack([rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8)) + 2.0])
    detector = InputDriftDetector()
    events = batched(detector, x)
    assert len(events) == 1 and detector.n_references == 2 and detector.monitoring


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        InputDriftDetector(alpha=1.0)
    with pytest.raises(ValueError, match="bandwidth"):
        InputDriftDetector(bandwidth=0.0)
    with pytest.raises(ValueError, match="window_size"):
        InputDriftDetector(window_size=1)
    with pytest.raises(ValueError, match="positions"):
        InputDriftDetector().update_many(np.zeros((3, 2)), positions=[1])


def test_dense_rows_as_one_array_give_the_events_and_state_of_a_list_of_them():
    rng = np.random.default_rng(4)
    inputs = np.vstack([rng.normal(size=(1500, 12)), rng.normal(size=(1000, 12)) + 1.0]).astype(np.float32)
    by_list, by_rows = InputDriftDetector(reference_size=256), InputDriftDetector(reference_size=256)
    list_events, row_events = [], []
    for start in range(0, len(inputs), 37):
        block = inputs[start : start + 37]
        positions = list(range(start, start + len(block)))
        list_events += by_list.update_many(list(block), positions=positions)
        row_events += by_rows.update_rows(block, positions=positions)
    assert list_events and [e.to_dict() for e in row_events] == [e.to_dict() for e in list_events]
    a, b = by_list.state(), by_rows.state()
    assert a.meta == b.meta and all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)


def test_the_reference_bandwidth_is_the_median_distance_over_the_whole_matrix_bit_for_bit():
    rng = np.random.default_rng(5)
    detector = InputDriftDetector(reference_size=64)
    detector.update_many(rng.normal(size=(64, 10)))
    reference = detector._reference
    squared = np.sum(reference**2, axis=1)
    distances = squared[:, None] + squared[None, :] - 2.0 * reference @ reference.T
    median = np.median(distances[np.triu_indices(64, k=1)])
    assert detector.monitoring and detector._fitted_bandwidth == float(np.sqrt(median))


def test_the_bandwidth_median_is_numpys_median_to_the_bit():
    from labelflow.operators.drift.input import _median

    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4, 101, 7776, 130816):  # 130,816: the distances of a reference window of 512
        for scale in (1e-3, 1.0, 1e3):
            values = rng.random(n) * scale
            assert _median(values) == np.median(values)
            rounded = np.round(values, 1)  # ties across the middle
            assert _median(rounded) == np.median(rounded)
    with_nan = rng.random(50)
    with_nan[7] = np.nan
    assert math.isnan(_median(with_nan)) and math.isnan(np.median(with_nan))
