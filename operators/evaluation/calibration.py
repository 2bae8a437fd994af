"""How well a model's per-label probabilities match how often the labels occur: reliability bins and ECE.

Every probability a model emits for a label (relevant or not) is one observation ``(p, y)`` with ``y``
1 when the label turned out relevant. Observations fall into ``n_bins`` equal-width bins of ``p``; a
bin's *mean predicted* probability against its *observed frequency* is one point of the reliability
diagram. The expected calibration error (ECE) is the count-weighted mean gap between the two:

    ECE = sum over bins of (count_b / N) * |mean_predicted_b - observed_b|

Multi-label probabilities are mostly tiny (most labels are irrelevant to most documents), so the
all-observations ECE is dominated by the first bin; :meth:`ReliabilityBins.ece` with ``min_bin`` gives
the same error over the upper bins only (the region where decisions are made), normalised by their own
count. Reference: Naeini, Cooper and Hauskrecht, "Obtaining well calibrated probabilities using
Bayesian binning", AAAI 2015 (ECE); Guo et al., "On calibration of modern neural networks", ICML 2017.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_EPS = 1e-12


class ReliabilityBins:
    """Running reliability diagram of ``(probability, outcome)`` pairs in ``n_bins`` equal-width bins.

    Also accumulates the Brier score and the log loss of the same pairs.

    >>> bins = ReliabilityBins(n_bins=2)
    >>> bins.add([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 0])
    >>> bins.counts.tolist(), [round(v, 3) for v in bins.mean_predicted.tolist()], bins.observed.tolist()
    ([2, 2], [0.15, 0.85], [0.0, 0.5])
    >>> round(bins.ece(), 4)  # (2/4) * 0.15 + (2/4) * 0.35
    0.25
    >>> round(bins.ece(min_bin=1), 4)  # the upper bin alone
    0.35
    """

    def __init__(self, n_bins: int = 15) -> None:
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        self.n_bins = n_bins
        self.counts = np.zeros(n_bins, dtype=np.int64)
        self.sum_predicted = np.zeros(n_bins, dtype=np.float64)
        self.sum_observed = np.zeros(n_bins, dtype=np.float64)
        self.brier_sum = 0.0
        self.log_loss_sum = 0.0

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def add(self, p: np.ndarray | list[float], y: np.ndarray | list[float]) -> None:
        """Count the pairs ``(p[i], y[i])``; probabilities must lie in [0, 1] and outcomes be 0 or 1."""
        p = np.asarray(p, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if p.shape != y.shape or p.ndim != 1:
            raise ValueError(f"p and y must be 1-d of one length, got shapes {p.shape} and {y.shape}")
        if p.size == 0:
            return
        if not (np.all(p >= 0.0) and np.all(p <= 1.0)):
            raise ValueError("probabilities must lie in [0, 1]")
        if not np.all((y == 0.0) | (y == 1.0)):
            raise ValueError("outcomes must be 0 or 1")
        index = np.minimum((p * self.n_bins).astype(np.int64), self.n_bins - 1)
        self.counts += np.bincount(index, minlength=self.n_bins)
        self.sum_predicted += np.bincount(index, weights=p, minlength=self.n_bins)
        self.sum_observed += np.bincount(index, weights=y, minlength=self.n_bins)
        self.brier_sum += float(((p - y) ** 2).sum())
        clipped = np.clip(p, _EPS, 1.0 - _EPS)
        self.log_loss_sum -= float((y * np.log(clipped) + (1.0 - y) * np.log1p(-clipped)).sum())

    @property
    def mean_predicted(self) -> np.ndarray:
        """Mean probability per bin (NaN for an empty bin)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum_predicted / self.counts

    @property
    def observed(self) -> np.ndarray:
        """Fraction of relevant outcomes per bin (NaN for an empty bin)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum_observed / self.counts

    def ece(self, min_bin: int = 0) -> float:
        """Expected calibration error over bins ``min_bin`` and up (NaN when they hold nothing)."""
        counts = self.counts[min_bin:]
        total = counts.sum()
        if total == 0:
            return float("nan")
        gaps = np.abs(self.sum_predicted[min_bin:] - self.sum_observed[min_bin:])  # count * |mean gap|
        return float(gaps.sum() / total)

    def brier(self) -> float:
        return self.brier_sum / self.n if self.n else float("nan")

    def log_loss(self) -> float:
        return self.log_loss_sum / self.n if self.n else float("nan")

    def table(self) -> list[dict[str, Any]]:
        """One row per bin: its range, count, mean predicted probability and observed frequency."""
        mean, observed = self.mean_predicted, self.observed
        return [
            {
                "low": b / self.n_bins,
                "high": (b + 1) / self.n_bins,
                "count": int(self.counts[b]),
                "mean_predicted": None if self.counts[b] == 0 else float(mean[b]),
                "observed": None if self.counts[b] == 0 else float(observed[b]),
            }
            for b in range(self.n_bins)
        ]
