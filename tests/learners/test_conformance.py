"""Every registered learner passes the same conformance checks."""

from __future__ import annotations

import pytest

from labelflow.operators.learners.registry import make_learner

from .conformance import CHECKS, check_state_round_trip

# The trivial baselines cannot learn features, so they are checked for the contract only.
LEARNING = ("partitioned", "river-br", "river-cc", "adagrad-ovr")
CONTRACT_ONLY = ("no-change", "majority-labelset")
CONTRACT_CHECKS = {
    "check_predicts_before_learning",
    "check_empty_label_sets",
    "check_deterministic",
    "check_batch_matches_one_by_one",
}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", LEARNING)
def test_learning_learners(name, check):
    check(lambda: make_learner(name))


@pytest.mark.parametrize(
    "check", [c for c in CHECKS if c.__name__ in CONTRACT_CHECKS], ids=lambda c: c.__name__
)
@pytest.mark.parametrize("name", CONTRACT_ONLY)
def test_baseline_contract(name, check):
    check(lambda: make_learner(name))


def test_partitioned_state_round_trip_is_exact(tmp_path):
    check_state_round_trip(lambda: make_learner("partitioned"), tmp_path)


def test_adagrad_ovr_state_round_trip_is_exact(tmp_path):
    check_state_round_trip(lambda: make_learner("adagrad-ovr"), tmp_path)
