"""Our vectorised metrics against river's multi-output metrics (the reference), and edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from river import metrics as rm
from river import utils

from labelflow.operators.evaluation.metrics import MultiLabelMetrics, WindowedMultiLabelMetrics

N_LABELS = 7


def random_stream(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.random((n, N_LABELS)) < 0.25
    pred = rng.random((n, N_LABELS)) < 0.3
    true[5], pred[5] = False, False  # an instance with empty truth and empty prediction
    true[:, 6], pred[:, 6] = False, False  # a label never positive and never predicted
    return true, pred


def river_references() -> dict[str, object]:
    mo = rm.multioutput
    return {
        "subset_accuracy": mo.ExactMatch(),
        "micro_f1": mo.MicroAverage(rm.F1()),
        "macro_f1": mo.MacroAverage(rm.F1()),
        "example_f1": mo.SampleAverage(rm.F1()),
        "micro_precision": mo.MicroAverage(rm.Precision()),
        "micro_recall": mo.MicroAverage(rm.Recall()),
        "macro_precision": mo.MacroAverage(rm.Precision()),
        "macro_recall": mo.MacroAverage(rm.Recall()),
        "example_precision": mo.SampleAverage(rm.Precision()),
        "example_recall": mo.SampleAverage(rm.Recall()),
        "hamming_loss": mo.MicroAverage(rm.Accuracy()),  # 1 - accuracy over all label decisions
    }


def as_dict(row: np.ndarray) -> dict[int, bool]:
    return {j: bool(row[j]) for j in range(N_LABELS)}


@pytest.mark.parametrize("seed", [0, 1])
def test_cumulative_metrics_equal_river(seed: int) -> None:
    true, pred = random_stream(seed)
    reference = river_references()
    one_by_one = MultiLabelMetrics(N_LABELS)
    batch = MultiLabelMetrics(N_LABELS)
    batch.update_many(true[:150], pred[:150])
    batch.update_many(true[150:], pred[150:])
    for t, p in zip(true, pred, strict=True):
        for metric in reference.values():
            metric.update(as_dict(t), as_dict(p))
        one_by_one.update(np.flatnonzero(t), np.flatnonzero(p))
    for name, metric in reference.items():
        expected = 1.0 - metric.get() if name == "hamming_loss" else metric.get()
        assert one_by_one.report()[name] == pytest.approx(expected, abs=1e-12), name
        assert batch.report()[name] == pytest.approx(expected, abs=1e-12), name
    assert np.array_equal(one_by_one.tp, batch.tp) and np.array_equal(one_by_one.fn, batch.fn)


def test_windowed_metrics_equal_river_rolling() -> None:
    true, pred = random_stream(3)
    mo = rm.multioutput
    rolling = {
        "subset_accuracy": utils.Rolling(mo.ExactMatch, window_size=50),
        "micro_f1": utils.Rolling(mo.MicroAverage, window_size=50, metric=rm.F1()),
        "macro_f1": utils.Rolling(mo.MacroAverage, window_size=50, metric=rm.F1()),
        "example_f1": utils.Rolling(mo.SampleAverage, window_size=50, metric=rm.F1()),
    }
    window = WindowedMultiLabelMetrics(50, N_LABELS)
    for i, (t, p) in enumerate(zip(true, pred, strict=True)):
        for metric in rolling.values():
            metric.update(as_dict(t), as_dict(p))
        window.update(np.flatnonzero(t), np.flatnonzero(p))
        if i % 37 == 0 or i == len(true) - 1:
            for name, metric in rolling.items():
                assert window.report()[name] == pytest.approx(metric.get(), abs=1e-9), (i, name)
    assert window.n_instances == 50


def test_windowed_update_many_equals_rows() -> None:
    true, pred = random_stream(4, n=120)
    a, b = WindowedMultiLabelMetrics(30, N_LABELS), WindowedMultiLabelMetrics(30, N_LABELS)
    a.update_many(true, pred)
    for t, p in zip(true, pred, strict=True):
        b.update(np.flatnonzero(t), np.flatnonzero(p))
    assert a.report() == pytest.approx(b.report())


def test_label_space_grows_with_the_ids_seen() -> None:
    m = MultiLabelMetrics()
    m.update([0], [0])  # one label known: a perfect instance
    m.update([3], [])  # four labels known now: one miss out of four decisions
    assert m.n_labels == 4
    assert m.hamming_loss == pytest.approx((0 + 1 / 4) / 2)
    # Labels 1 and 2 exist (ids below 3) with no positives and no predictions: F1 0 each.
    assert m.per_label_f1().tolist() == [1.0, 0.0, 0.0, 0.0]
    assert m.macro_f1 == pytest.approx(0.25)
    m.add_labels(10)
    assert m.n_labels == 10 and m.macro_f1 == pytest.approx(0.1)


def test_precision_at_k() -> None:
    m = MultiLabelMetrics(p_at_k=(1, 3))
    m.update([0, 2], [0], ranking=[2, 5, 0, 1])  # P@1 = 1, P@3 = 2/3
    m.update([1], [], ranking=[0])  # fewer labels ranked than k: still divided by k
    assert m.precision_at(1) == pytest.approx(0.5)
    assert m.precision_at(3) == pytest.approx((2 / 3 + 0) / 2)
    m.update([1], [1])  # no ranking: does not count towards P@k
    assert m.n_ranked == 2 and m.precision_at(1) == pytest.approx(0.5)
    with pytest.raises(KeyError):
        m.precision_at(5)

    batch = MultiLabelMetrics(p_at_k=(1, 2))
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1]])
    batch.update_many(np.array([[1, 0, 0], [0, 0, 1]]), np.array([[1, 0, 0], [0, 0, 0]]), scores)
    assert batch.precision_at(1) == pytest.approx(0.5)
    assert batch.precision_at(2) == pytest.approx((0.5 + 0.0) / 2)


def test_empty_metrics_and_bad_input() -> None:
    m = MultiLabelMetrics()
    report = m.report()
    assert report["n_instances"] == 0 and report["micro_f1"] == 0.0 and report["macro_f1"] == 0.0
    assert "p_at_1" not in report
    with pytest.raises(ValueError, match=">= 0"):
        m.update([-1], [])
    with pytest.raises(ValueError, match="shapes"):
        m.update_many(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError):
        MultiLabelMetrics(p_at_k=(0,))
    with pytest.raises(ValueError):
        WindowedMultiLabelMetrics(0)
