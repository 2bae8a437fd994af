"""Association of label groups and the split/merge rules on it: values, bounds, margins, records."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from labelflow.operators.labels.association import (
    Association,
    association,
    may_part,
    merge_threshold,
    same_line,
)
from labelflow.operators.labels.cluster_statistics import hoeffding_bound
from labelflow.operators.labels.cooccurrence import LabelCooccurrence


def counts_from(label_sets, n_labels: int, fading_factor: float = 1.0) -> LabelCooccurrence:
    stats = LabelCooccurrence(fading_factor=fading_factor)
    stats.add_labels(n_labels)
    for labels in label_sets:
        stats.update(sorted(labels))
    return stats


def test_value_is_pooled_similarity_in_excess_of_independence_and_bound_the_pooled_pair_bound() -> None:
    # 0 with 1 in half of their instances; 2 alone; 8 instances
    stats = counts_from([[0, 1], [0, 1], [0], [1], [2], [2], [], []], 3)
    result = association(stats, [0, 2], [1], delta=0.01)
    # pairs (0,1): 2 co-occurrences in a union of 4; (2,1): 0 in 5. Independent labels with these
    # counts: 3*3/8 expected in a union of 6 - 9/8, and 2*3/8 in 5 - 6/8.
    independent = (9 / 8 + 6 / 8) / ((6 - 9 / 8) + (5 - 6 / 8))
    assert result.value == pytest.approx(2 / 9 - independent)
    # no fading: each pair's evidence is its union count; pooled with the same weights
    assert result.bound == pytest.approx((4 * hoeffding_bound(4, 0.01) + 5 * hoeffding_bound(5, 0.01)) / 9)


def test_independent_labels_read_about_zero_and_avoiding_ones_negative() -> None:
    rng = random.Random(0)
    independent = counts_from(([a for a in range(4) if rng.random() < 0.3] for _ in range(20_000)), 4)
    assert abs(association(independent, [0, 1], [2, 3], delta=1e-3).value) < 0.01
    avoiding = counts_from(([rng.choice([0, 1])] for _ in range(2000)), 2)
    found = association(avoiding, [0], [1], delta=1e-3)
    assert found.value == pytest.approx(-1 / 3, abs=0.01) and not found.significant  # 0.25 / 0.75 expected


def test_exact_and_symmetric_whatever_the_order_of_groups_and_labels() -> None:
    rng = random.Random(1)
    stats = counts_from(
        ([a for a in range(6) if rng.random() < 0.4] for _ in range(3000)), 6, fading_factor=0.99
    )
    reference = association(stats, [0, 1, 2], [3, 4, 5], delta=1e-3)
    for left, right in [([2, 0, 1], [5, 3, 4]), ([3, 4, 5], [0, 1, 2]), ([5, 4, 3], [1, 2, 0])]:
        assert association(stats, left, right, delta=1e-3) == reference


def test_the_bound_takes_faded_counts_at_their_effective_sample_size() -> None:
    label_sets = [[0, 1] if i % 3 == 0 else [i % 2] for i in range(20_000)]
    faded = counts_from(label_sets, 2, fading_factor=0.999)
    ratio = min(faded.sample_size_ratio(0), faded.sample_size_ratio(1))
    # a steady stream longer than the memory: about (1 + fading_factor) times the faded union count
    assert ratio == pytest.approx(1.999, rel=1e-3)
    assert association(faded, [0], [1], delta=1e-3).bound == pytest.approx(
        hoeffding_bound(faded.union(0, 1) * ratio, 1e-3), rel=1e-12
    )
    plain = counts_from(label_sets, 2)  # without fading the effective size is the count itself
    assert association(plain, [0], [1], delta=1e-3).bound == pytest.approx(
        hoeffding_bound(plain.union(0, 1), 1e-3)
    )


def test_no_evidence_gives_an_infinite_bound() -> None:
    stats = LabelCooccurrence()
    stats.add_labels(4)
    stats.update([0])
    assert association(stats, [1], [2], delta=1e-3) == Association(0.0, math.inf)
    found = association(stats, [0], [1], delta=1e-3)  # one instance of evidence: 0 was alone
    assert math.isfinite(found.bound) and not found.significant
    assert association(stats, [0, 3], [1, 2], delta=1e-3) == found  # pairs without evidence weigh nothing


def test_split_and_merge_thresholds_are_one_bound_apart_in_every_case() -> None:
    for value, bound in itertools.product([-0.3, -0.01, 0.0, 0.05, 0.2, 0.6], [0.02, 0.1, 0.3]):
        now = Association(value, bound)
        threshold = merge_threshold(now)
        assert threshold == bound
        if may_part(now):
            assert value <= threshold - bound  # the parts would not be merged again, by a margin
        if value > threshold:
            assert not may_part(Association(value - bound, bound))  # a fluctuation of one bound keeps it


def test_a_merged_line_is_parted_only_once_the_association_moved_by_both_bounds() -> None:
    merged = Association(0.25, 0.2)
    assert not may_part(Association(0.01, 0.1), merged)  # positive: never parted
    assert not may_part(Association(-0.04, 0.1), merged)  # 0.29 below the record, within 0.2 + 0.1
    assert may_part(Association(-0.06, 0.1), merged)
    assert may_part(Association(-0.06, 0.1))  # without a record the sign alone decides


def test_a_split_line_is_merged_again_only_once_the_association_moved_by_both_bounds() -> None:
    split = Association(-0.05, 0.2)
    assert merge_threshold(Association(0.12, 0.1), split) == pytest.approx(0.25)
    # a split made on little evidence does not lower the threshold below the bound
    assert merge_threshold(Association(0.3, 0.1), Association(-0.5, 0.05)) == 0.1


def test_same_line_keeps_each_recorded_group_whole_on_one_side() -> None:
    line = ((0, 1), (2, 3))
    assert same_line(([0, 1], [2, 3]), line) and same_line(([2, 3], [0, 1]), line)
    assert same_line(([0, 1, 9], [2, 3, 8]), line)  # labels that joined later may be anywhere
    assert not same_line(([0, 2], [1, 3]), line)
    assert not same_line(([0], [1, 2, 3]), line)
