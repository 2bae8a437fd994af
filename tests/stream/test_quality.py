"""The live model's prequential quality tracker: windowed and cumulative scores, and its state."""

from __future__ import annotations

import random

import numpy as np

from labelflow.stream.quality import QualityTracker


def _reference(pairs: list[tuple[set[str], set[str]]]) -> tuple[float, float]:
    """Micro-F1 and subset accuracy of (predicted, actual) pairs, computed directly."""
    tp = sum(len(p & a) for p, a in pairs)
    fp = sum(len(p - a) for p, a in pairs)
    fn = sum(len(a - p) for p, a in pairs)
    f1 = 1.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    return f1, sum(p == a for p, a in pairs) / len(pairs)


def test_window_and_cumulative_scores_match_a_direct_count_and_survive_a_state_round_trip() -> None:
    rng = random.Random(5)
    labels = "abcdef"
    pairs = [
        ({x for x in labels if rng.random() < 0.3}, {x for x in labels if rng.random() < 0.3})
        for _ in range(300)
    ]
    tracker = QualityTracker(window=50)
    for n, (predicted, actual) in enumerate(pairs, start=1):
        tracker.add(predicted, actual)
        window = pairs[max(0, n - 50) : n]
        f1_window, subset_window = _reference(window)
        assert tracker.micro_f1_window == f1_window
        assert tracker.subset_accuracy_window == subset_window
        assert tracker.micro_f1_cumulative == _reference(pairs[:n])[0]
    restored = QualityTracker.from_state(tracker.state(), window=50)
    assert restored.scored == tracker.scored == 300
    assert np.array_equal(restored.total, tracker.total)
    assert restored.total.dtype == np.int64
    assert (restored.micro_f1_window, restored.subset_accuracy_window, restored.size) == (
        tracker.micro_f1_window,
        tracker.subset_accuracy_window,
        50,
    )
    restored.add({"a"}, {"a"})
    tracker.add({"a"}, {"a"})
    assert restored.micro_f1_window == tracker.micro_f1_window
