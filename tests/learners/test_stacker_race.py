"""The flat learner's two stackers (issue 16): both learn every instance, the one with the lower summed
log-loss so far decides."""

from __future__ import annotations

import numpy as np

from labelflow.operators.io.arff import read_arff
from labelflow.operators.learners.partitioned import (
    PartitionedClassifier,
    _learn_second_stack,
    _learn_stack,
)


def test_the_second_stacker_scores_both_and_steps_on_its_own_prediction() -> None:
    rng = np.random.default_rng(3)
    n = 7
    inputs = rng.normal(size=(n, 4)).astype(np.float32)
    lead_p = rng.uniform(0.01, 0.99, size=n).astype(np.float32)
    target = (rng.random(n) < 0.4).astype(np.float32)
    stack = rng.normal(size=(n, 4)).astype(np.float32)
    g2 = rng.uniform(0, 2, size=(n, 4)).astype(np.float32)
    expected_stack, expected_g2 = stack.copy(), g2.copy()
    own_p = (1 / (1 + np.exp(-(inputs * stack).sum(axis=1)))).astype(np.float32)
    _learn_stack(target, own_p, inputs, expected_stack, expected_g2, 0.2)

    race = np.array([1.0, 2.0, 0.5, 0.2])
    _learn_second_stack(target, lead_p, inputs, stack, g2, 0.2, race)

    def log_loss(p: np.ndarray) -> float:
        p = p.astype(np.float64)
        return -float(np.sum(target * np.log(p) + (1 - target) * np.log(1 - p)))

    np.testing.assert_allclose(race[:2], [1.0 + log_loss(lead_p), 2.0 + log_loss(own_p)], rtol=1e-5)
    np.testing.assert_allclose(stack, expected_stack, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g2, expected_g2, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(race[2:], [0.5, 0.2])


def test_the_stacker_with_the_lower_log_loss_leads(datasets_dir) -> None:
    stream = read_arff(datasets_dir / "emotions" / "emotions.arff")
    model = PartitionedClassifier()
    swaps = 0
    for i, instance in enumerate(stream):
        if i == 300:
            break
        model.predict_one(instance.x)
        leading_rate = model._stack_race[2]
        model.learn_one(instance.x, instance.labels)
        race = model._stack_race
        assert race[0] <= race[1]  # the leader's summed log-loss is never above the second's
        swaps += race[2] != leading_rate
    # Emotions (unordered) turns to the slower stacker early; its arrays are what the forward uses.
    assert swaps >= 1 and model._stack_race[2] == 0.2 and model._stack_race[3] == 0.5


def test_without_a_second_step_the_race_is_off(datasets_dir) -> None:
    stream = read_arff(datasets_dir / "emotions" / "emotions.arff")
    model = PartitionedClassifier(second_stack_learning_rate=0.0)
    for i, instance in enumerate(stream):
        if i == 100:
            break
        model.learn_one(instance.x, instance.labels)
    np.testing.assert_array_equal(model._stack_race, [0.0, 0.0, 0.5, 0.0])
