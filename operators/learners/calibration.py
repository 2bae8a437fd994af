"""Online calibration of published per-label probabilities: binned in log-odds, pooled over labels.

The learner's probabilities come from an online logistic stacker; measured prequentially they are
close to calibrated overall but off by up to 0.1-0.17 in the middle of the range on some streams
(Reuters and 20NG under-confident there, Enron and Bibtex over-confident near 1:
benchmarks/calibration/uncalibrated/RESULTS.md), and the shape differs by stream. A fixed parametric
map (Platt scaling of the log-odds) cannot follow such shapes; histogram binning can (Zadrozny and
Elkan, "Obtaining calibrated probability estimates from decision trees and naive Bayesian
classifiers", ICML 2001), learned here online and pooled over all labels so every bin fills quickly.

Each probability ``p`` falls into one of ``n_bins`` equal-width bins of its log-odds. A bin keeps the
(faded) count of probabilities that fell into it and the sum of their errors ``y - p``; the published
probability is ``p`` plus the mean error of the bins around it, interpolated linearly between bin
centres, with ``prior`` pseudo-observations of error 0 per bin, so that a bin with little evidence
leaves probabilities as they are. Fading (per learned document) keeps the map current on drifting
streams.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from labelflow.operators.base import Label
from labelflow.operators.compiled import kernel
from labelflow.operators.state import Stateful

STATE_FORMAT = "labelflow.calibration/1"
_P_MIN = 1e-4  # the learner keeps its probabilities within [1e-4, 1 - 1e-4]
_MAX_LOG_ODDS = math.log((1.0 - _P_MIN) / _P_MIN)


@kernel
def _calibrate(
    p: np.ndarray, count: np.ndarray, error: np.ndarray, prior: float, out: np.ndarray, bins: np.ndarray
) -> None:
    """``out``: the calibrated ``p``; where ``bins`` is as long as ``p``, also the bin each probability
    is learned in (what :func:`_learn` computes from it, so learning need not compute it again)."""
    n_bins = count.shape[0]
    scale = n_bins / (2.0 * _MAX_LOG_ODDS)
    shift = np.empty(n_bins)
    for b in range(n_bins):
        shift[b] = error[b] / (count[b] + prior)
    with_bins = bins.shape[0] == p.shape[0]
    for i in range(p.shape[0]):
        q = min(max(p[i], _P_MIN), 1.0 - _P_MIN)
        position = (math.log(q / (1.0 - q)) + _MAX_LOG_ODDS) * scale
        if with_bins:
            bins[i] = min(int(position), n_bins - 1)
        # Position between bin centres: bin b's centre sits at b + 0.5 in units of bins.
        t = position - 0.5
        if t <= 0.0:
            q += shift[0]
        elif t >= n_bins - 1:
            q += shift[n_bins - 1]
        else:
            b = int(t)
            w = t - b
            q += (1.0 - w) * shift[b] + w * shift[b + 1]
        out[i] = min(max(q, _P_MIN), 1.0 - _P_MIN)


@kernel
def _calibrate_float32(
    p32: np.ndarray,
    count: np.ndarray,
    error: np.ndarray,
    prior: float,
    p: np.ndarray,
    out: np.ndarray,
    half: np.ndarray,
    bins: np.ndarray,
) -> int:
    """:func:`_calibrate` of the float32 probabilities ``p32`` (widened into ``p``), with their ``bins``;
    the ids of the calibrated probabilities at 0.5 or more go to the front of ``half``, their number is
    returned."""
    for i in range(p32.shape[0]):
        p[i] = np.float64(p32[i])
    _calibrate(p, count, error, prior, out, bins)
    n_half = 0
    for i in range(out.shape[0]):
        if out[i] >= 0.5:
            half[n_half] = i
            n_half += 1
    return n_half


@kernel
def _learn(
    p: np.ndarray, p_relevant: np.ndarray, count: np.ndarray, error: np.ndarray, fading: float
) -> None:
    n_bins = count.shape[0]
    scale = n_bins / (2.0 * _MAX_LOG_ODDS)
    if fading < 1.0:
        for b in range(n_bins):
            count[b] *= fading
            error[b] *= fading
    for i in range(p.shape[0]):
        q = min(max(p[i], _P_MIN), 1.0 - _P_MIN)
        b = min(int((math.log(q / (1.0 - q)) + _MAX_LOG_ODDS) * scale), n_bins - 1)
        count[b] += 1.0
        error[b] -= p[i]
    for i in range(p_relevant.shape[0]):  # the relevant labels' outcome is 1: error y - p gains 1
        q = min(max(p_relevant[i], _P_MIN), 1.0 - _P_MIN)
        b = min(int((math.log(q / (1.0 - q)) + _MAX_LOG_ODDS) * scale), n_bins - 1)
        error[b] += 1.0


@kernel
def _learn_bins(
    p: np.ndarray, bins: np.ndarray, relevant: np.ndarray, count: np.ndarray, error: np.ndarray, fading: float
) -> None:
    """:func:`_learn` given each probability's bin (``bins``, from :func:`_calibrate`) and the ids of the
    relevant ones (``relevant``, in the order :func:`_learn` takes their probabilities)."""
    n_bins = count.shape[0]
    if fading < 1.0:
        for b in range(n_bins):
            count[b] *= fading
            error[b] *= fading
    for i in range(p.shape[0]):
        b = bins[i]
        count[b] += 1.0
        error[b] -= p[i]
    for i in range(relevant.shape[0]):
        error[bins[relevant[i]]] += 1.0


_NO_BINS = np.zeros(0, dtype=np.int64)


class ScoreCalibrator(Stateful):
    """Maps a learner's per-label probabilities to calibrated ones, learning the map prequentially.

    Parameters
    ----------
    n_bins
        Equal-width bins of log-odds over the learner's range ``[-9.2, 9.2]`` (probabilities 1e-4 to
        1 - 1e-4): 24 bins are 0.77 log-odds wide, about 0.19 in probability around 0.5.
    prior
        Pseudo-observations of zero error per bin: a bin moves probabilities by half its observed mean
        error once it holds ``prior`` observations.
    fading
        Factor applied to every bin's evidence per learned document (1 keeps everything).

    Examples
    --------
    An over-confident source: labels scored 0.9 are relevant only 60% of the time, labels scored 0.1
    never. The calibrated scores move towards those rates (part of the way: evidence is shrunk towards
    no change and shared with the neighbouring bins, which saw nothing here).

    >>> calibrator = ScoreCalibrator()
    >>> for i in range(400):
    ...     calibrator.learn({"a": 0.9, "b": 0.1}, ["a"] if i % 5 < 3 else [])
    >>> {label: round(p, 2) for label, p in calibrator.calibrate({"a": 0.9, "b": 0.1}).items()}
    {'a': 0.73, 'b': 0.04}
    """

    state_header = {"format": STATE_FORMAT}
    state_settings = ("n_bins", "prior", "fading")
    state_fields = ("n_learned",)
    state_arrays = ("_count", "_error")

    def __init__(self, n_bins: int = 24, prior: float = 50.0, fading: float = 0.999) -> None:
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        if not prior > 0:
            raise ValueError(f"prior must be > 0, got {prior}")
        if not 0.0 < fading <= 1.0:
            raise ValueError(f"fading must be in (0, 1], got {fading}")
        self.n_bins = n_bins
        self.prior = float(prior)
        self.fading = float(fading)
        self._count = np.zeros(n_bins, dtype=np.float64)
        self._error = np.zeros(n_bins, dtype=np.float64)
        self.n_learned = 0

    def calibrate_array(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of the float64 array ``p`` (a new array)."""
        out = np.empty_like(p)
        _calibrate(p, self._count, self._error, self.prior, out, _NO_BINS)
        return out

    def calibrate_float32(self, p32: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The float32 probabilities ``p32`` as float64, calibrated (as :meth:`calibrate_array` of the
        float64 ones), the ids of the calibrated ones at 0.5 or more, and the bins :meth:`learn_bins`
        takes, in one compiled call."""
        n = p32.shape[0]
        floats, ints = np.empty((2, n)), np.empty((2, n), dtype=np.int64)  # two allocations, not four
        p, out, half, bins = floats[0], floats[1], ints[0], ints[1]
        n_half = _calibrate_float32(p32, self._count, self._error, self.prior, p, out, half, bins)
        return p, out, half[:n_half], bins

    def calibrate(self, scores: Mapping[Label, float]) -> dict[Label, float]:
        """``scores`` with every probability calibrated (same labels, same order)."""
        if not scores:
            return {}
        p = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
        return dict(zip(scores, self.calibrate_array(p).tolist(), strict=True))

    def learn(self, scores: Mapping[Label, float], relevant: Iterable[Label]) -> None:
        """Learn from the uncalibrated ``scores`` of one document and its relevant labels.

        Relevant labels without a score (the learner did not know them yet) teach nothing here."""
        p = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
        p_relevant = np.array([scores[label] for label in relevant if label in scores], dtype=np.float64)
        self.learn_probabilities(p, p_relevant)

    def learn_probabilities(self, p: np.ndarray, p_relevant: np.ndarray) -> None:
        """:meth:`learn` from the float64 arrays of every score and of the relevant labels' scores."""
        _learn(p, p_relevant, self._count, self._error, self.fading)
        self.n_learned += 1

    def learn_bins(self, p: np.ndarray, bins: np.ndarray, relevant: np.ndarray) -> None:
        """:meth:`learn_probabilities` of ``p`` with the ``bins`` of :meth:`calibrate_float32`, the relevant
        labels given by their ids into ``p`` (``relevant``, int64): the same counts, without computing a
        bin again."""
        _learn_bins(p, bins, relevant, self._count, self._error, self.fading)
        self.n_learned += 1

    def bin_errors(self) -> np.ndarray:
        """Each bin's shrunk mean error ``y - p``: what the calibration adds at the bin's centre."""
        return self._error / (self._count + self.prior)
