"""Reliability bins and expected calibration error (operators/evaluation/calibration.py)."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.evaluation.calibration import ReliabilityBins


def test_ece_matches_its_definition_computed_directly() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=5000)
    y = (rng.uniform(size=5000) < p**1.5).astype(float)
    bins = ReliabilityBins(n_bins=10)
    for start in range(0, 5000, 700):  # added in pieces: the same as all at once
        bins.add(p[start : start + 700], y[start : start + 700])
    index = np.minimum((p * 10).astype(int), 9)
    expected = sum(
        (index == b).sum() / p.size * abs(p[index == b].mean() - y[index == b].mean()) for b in range(10)
    )
    assert bins.ece() == pytest.approx(expected)
    assert bins.n == 5000 and bins.counts.sum() == 5000
    assert bins.brier() == pytest.approx(float(((p - y) ** 2).mean()))
    upper = index >= 3
    expected_upper = sum(
        (index == b).sum() / upper.sum() * abs(p[index == b].mean() - y[index == b].mean())
        for b in range(3, 10)
    )
    assert bins.ece(min_bin=3) == pytest.approx(expected_upper)


def test_calibrated_outcomes_give_a_small_ece_and_the_table_shows_each_bin() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(size=200_000)
    bins = ReliabilityBins(n_bins=15)
    bins.add(p, (rng.uniform(size=p.size) < p).astype(float))
    assert bins.ece() < 0.005
    table = bins.table()
    assert len(table) == 15 and table[0]["low"] == 0.0 and table[-1]["high"] == 1.0
    assert sum(row["count"] for row in table) == p.size
    assert all(abs(row["mean_predicted"] - row["observed"]) < 0.02 for row in table)


def test_probability_one_falls_in_the_last_bin_and_empty_bins_are_reported_as_none() -> None:
    bins = ReliabilityBins(n_bins=4)
    bins.add([1.0, 0.0], [1, 0])
    assert bins.counts.tolist() == [1, 0, 0, 1]
    assert bins.ece() == 0.0 and bins.log_loss() < 1e-9
    assert bins.table()[1]["mean_predicted"] is None
    assert np.isnan(ReliabilityBins().ece())


def test_bad_input_is_refused() -> None:
    bins = ReliabilityBins()
    with pytest.raises(ValueError):
        bins.add([0.5, 1.2], [0, 1])
    with pytest.raises(ValueError):
        bins.add([0.5], [2])
    with pytest.raises(ValueError):
        bins.add([0.5, 0.4], [1])
    with pytest.raises(ValueError):
        ReliabilityBins(n_bins=0)
