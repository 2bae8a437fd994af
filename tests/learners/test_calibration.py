"""Online calibration of published probabilities (ScoreCalibrator) and its place in the default learner."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.evaluation.calibration import ReliabilityBins
from labelflow.operators.learners.calibration import ScoreCalibrator
from labelflow.operators.learners.scaling import ScalingClassifier
from labelflow.operators.state import State

from .conformance import dense_stream


def _miscalibrated(n_docs: int, seed: int, truth) -> list[tuple[dict[str, float], list[str]]]:
    """Documents of 10 labels with uniform scores whose true relevance probability is ``truth(score)``."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        p = rng.uniform(0.01, 0.99, size=10)
        relevant = rng.uniform(size=10) < truth(p)
        docs.append(({f"l{i}": float(p[i]) for i in range(10)}, [f"l{i}" for i in np.flatnonzero(relevant)]))
    return docs


def _prequential_ece(calibrator: ScoreCalibrator, docs) -> tuple[float, float]:
    """ECE of the raw scores and of the calibrated ones, each calibrated before it is learned."""
    raw, calibrated = ReliabilityBins(10), ReliabilityBins(10)
    for scores, relevant in docs:
        outcome = [float(label in relevant) for label in scores]
        raw.add(list(scores.values()), outcome)
        calibrated.add(list(calibrator.calibrate(scores).values()), outcome)
        calibrator.learn(scores, relevant)
    return raw.ece(), calibrated.ece()


def test_an_overconfident_source_is_calibrated_prequentially() -> None:
    # Relevant with probability p**2: scores of 0.5 are right a quarter of the time.
    before, after = _prequential_ece(ScoreCalibrator(), _miscalibrated(3000, seed=0, truth=lambda p: p**2))
    assert before > 0.15
    assert after < 0.04


def test_a_calibrated_source_stays_calibrated() -> None:
    calibrator = ScoreCalibrator()
    before, after = _prequential_ece(calibrator, _miscalibrated(3000, seed=1, truth=lambda p: p))
    assert after < before + 0.01
    assert np.abs(calibrator.bin_errors()).max() < 0.05


def test_scores_keep_their_labels_and_order_and_stay_probabilities() -> None:
    calibrator = ScoreCalibrator(n_bins=4)
    for scores, relevant in _miscalibrated(200, seed=2, truth=lambda p: 1 - p):
        calibrator.learn(scores, relevant)
    scores = {"z": 0.0, "a": 1.0, "m": 0.5}
    out = calibrator.calibrate(scores)
    assert list(out) == ["z", "a", "m"]
    assert all(1e-4 <= p <= 1 - 1e-4 for p in out.values())
    assert calibrator.calibrate({}) == {}


def test_unknown_relevant_labels_and_empty_documents_teach_nothing() -> None:
    calibrator = ScoreCalibrator()
    calibrator.learn({}, ["new"])
    calibrator.learn({"a": 0.3}, ["never-scored"])
    errors = calibrator.bin_errors()
    assert errors.sum() < 0  # only "a" (irrelevant, scored 0.3) was counted
    assert calibrator.n_learned == 2


def test_settings_are_checked() -> None:
    for bad in ({"n_bins": 0}, {"prior": 0.0}, {"fading": 0.0}, {"fading": 1.5}):
        with pytest.raises(ValueError):
            ScoreCalibrator(**bad)


def test_state_round_trip_continues_identically(tmp_path) -> None:
    docs = _miscalibrated(300, seed=3, truth=lambda p: p**2)
    calibrator = ScoreCalibrator(n_bins=12, prior=10.0, fading=0.99)
    for scores, relevant in docs[:200]:
        calibrator.learn(scores, relevant)
    calibrator.state().save(tmp_path / "c")
    restored = ScoreCalibrator.from_state(State.load(tmp_path / "c"))
    assert (restored.n_bins, restored.prior, restored.fading) == (12, 10.0, 0.99)
    for scores, relevant in docs[200:]:
        assert restored.calibrate(scores) == calibrator.calibrate(scores)
        calibrator.learn(scores, relevant)
        restored.learn(scores, relevant)


def test_the_default_learner_publishes_calibrated_scores_and_can_be_asked_not_to() -> None:
    stream = list(dense_stream(120, seed=5))
    on, off = ScalingClassifier(), ScalingClassifier(calibration=False)
    for x, y in stream:
        decided_off, raw = off.predict_with_scores(x)
        _, published = on.predict_with_scores(x)
        assert published == on.calibrator.calibrate(raw)  # same learner, same raw scores
        assert on.predict_proba_one(x) == published
        on.learn_one(x, y)
        off.learn_one(x, y)
    assert off.calibrator is None and on.calibrator.n_learned == len(stream) - 1  # the first had no scores
    x = stream[0][0]
    assert [label for label, _ in on.predict_top(x, 2)] == [label for label, _ in off.predict_top(x, 2)]


def test_a_checkpoint_keeps_the_calibrator_and_an_older_one_restores_with_a_fresh_one(tmp_path) -> None:
    model = ScalingClassifier()
    for x, y in dense_stream(80, seed=6):
        model.learn_one(x, y)
    state = model.state()
    restored = ScalingClassifier.from_state(state)
    x = next(dense_stream(1, seed=7))[0]
    assert restored.predict_with_scores(x) == model.predict_with_scores(x)
    # A state written before the calibrator existed: no child, no setting.
    del state.meta["children"]["calibrator"]
    state.arrays = {k: v for k, v in state.arrays.items() if not k.startswith("calibrator/")}
    older = ScalingClassifier.from_state(state)
    assert older.calibrator is not None and older.calibrator.n_learned == 0


def test_float32_probabilities_calibrate_as_their_float64_widening() -> None:
    rng = np.random.default_rng(4)
    calibrator = ScoreCalibrator()
    for _ in range(300):
        p = rng.random(14)
        calibrator.learn_probabilities(p, p[rng.random(14) < p])
    p32 = np.concatenate([rng.random(40), [0.0, 1.0, 0.5, 1e-6]]).astype(np.float32)
    p, calibrated, half, bins = calibrator.calibrate_float32(p32)
    assert p.dtype == np.float64 and np.array_equal(p, p32.astype(np.float64))
    expected = calibrator.calibrate_array(p32.astype(np.float64))
    assert np.array_equal(calibrated, expected)
    assert half.tolist() == np.flatnonzero(expected >= 0.5).tolist() and 0 < half.shape[0] < 44
    # Learning from the bins is learning from the probabilities (relevant ids in any order, repeated).
    relevant = np.array([40, 3, 3, 17, 0], dtype=np.int64)
    by_bins = ScoreCalibrator.from_state(calibrator.state())
    by_bins.learn_bins(p, bins, relevant)
    calibrator.learn_probabilities(p, p[relevant])
    assert np.array_equal(by_bins.bin_errors(), calibrator.bin_errors())
    assert np.array_equal(by_bins._count, calibrator._count) and by_bins.n_learned == calibrator.n_learned
