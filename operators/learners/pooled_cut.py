"""One decision threshold for all labels, chosen online to maximise micro-F1, in memory independent of labels."""

from __future__ import annotations

import numpy as np

from labelflow.operators.state import Stateful


class PooledCut(Stateful):
    """The probability cut that maximises micro-F1 over the recent past, from score histograms.

    Each learned instance adds the probabilities of its candidate labels (those the model scored) to a
    positive or a negative histogram, and counts its true labels that were not candidates (misses,
    false negatives at any cut). The cut is the bin edge with the best ``2 TP / (2 TP + FP + FN)``,
    recomputed every ``refresh`` instances. Counts fade by ``fading`` per instance, so the cut follows
    drift. Cost: ``O(candidates)`` per instance, ``O(bins)`` per refresh.

    >>> cut = PooledCut(refresh=1)
    >>> for _ in range(50):
    ...     cut.update(np.array([0.9, 0.3, 0.2]), np.array([True, False, False]), missed=0)
    >>> 0.3 < cut.cut <= 0.9
    True
    """

    state_settings = ("bins", "fading", "refresh")
    state_fields = ("cut", "n", "missed")
    state_arrays = ("positive", "negative")

    def __init__(
        self, *, bins: int = 200, fading: float = 0.9999, refresh: int = 32, initial: float = 0.5
    ) -> None:
        self.bins = bins
        self.fading = fading
        self.refresh = refresh
        self.positive = np.zeros(bins, dtype=np.float64)
        self.negative = np.zeros(bins, dtype=np.float64)
        self.missed = 0.0
        self.cut = initial
        self.n = 0

    def update(self, p: np.ndarray, relevant: np.ndarray, missed: int) -> None:
        """Scores ``p`` of the candidates, which of them are relevant, and how many true labels were missed."""
        bins = np.minimum((p * self.bins).astype(np.int64), self.bins - 1)
        self.positive *= self.fading
        self.negative *= self.fading
        self.missed = self.missed * self.fading + missed
        self.positive += np.bincount(bins[relevant], minlength=self.bins)
        self.negative += np.bincount(bins[~relevant], minlength=self.bins)
        self.n += 1
        if self.n % self.refresh == 0:
            self._choose()

    def _choose(self) -> None:
        tp = np.cumsum(self.positive[::-1])[::-1]  # true positives at a cut at each bin's lower edge
        fp = np.cumsum(self.negative[::-1])[::-1]
        fn = self.positive.sum() - tp + self.missed
        f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-12)
        best = int(np.argmax(f1))
        if f1[best] > 0:
            self.cut = best / self.bins
