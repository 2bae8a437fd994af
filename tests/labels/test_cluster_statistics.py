"""Cluster statistics from sparse pairs equal brute force over all pairs; pivot split rules."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from labelflow.operators.labels.cluster_statistics import (
    close_pairs,
    cluster_statistics,
    hoeffding_bound,
    separation,
    split_by_pivots,
    unrelated_labels,
)
from labelflow.operators.labels.cooccurrence import LabelCooccurrence


def learned(label_sets: list[list[int]], n_labels: int, fading: float = 1.0) -> LabelCooccurrence:
    stats = LabelCooccurrence(fading_factor=fading)
    stats.add_labels(n_labels)
    for labels in label_sets:
        stats.update(sorted(set(labels)))
    return stats


def random_stream(n: int, n_labels: int, max_k: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [rng.sample(range(n_labels), rng.randint(0, max_k)) for _ in range(n)]


@pytest.mark.parametrize(("n_labels", "max_k", "size"), [(10, 4, 6), (60, 2, 50), (30, 3, 2)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_statistics_equal_brute_force(n_labels: int, max_k: int, size: int, seed: int) -> None:
    # (60, 2, 50): few co-occurring pairs, so the adjacency walk is used instead of all pairs
    stats = learned(random_stream(400, n_labels, max_k, seed), n_labels, fading=0.995)
    labels = sorted(random.Random(seed).sample(range(n_labels), size))
    s = cluster_statistics(stats, labels)
    distances = sorted((stats.distance(a, b) for a, b in itertools.combinations(labels, 2)), reverse=True)
    assert s.size == size and s.n_pairs == len(distances)
    assert s.d1 == pytest.approx(distances[0])
    assert s.d2 == pytest.approx(distances[1] if len(distances) > 1 else distances[0])
    assert s.d0 == pytest.approx(distances[-1])
    assert s.mean == pytest.approx(sum(distances) / len(distances))
    p, q = s.pivots
    assert stats.distance(p, q) == pytest.approx(s.d1)
    assert s.evidence == pytest.approx(stats.union(p, q))
    assert len(close_pairs(stats, labels)) == sum(
        1 for a, b in itertools.combinations(labels, 2) if stats.co_count(a, b) > 0
    )


def test_pivots_are_the_never_co_occurring_pair_with_the_most_evidence() -> None:
    # counts: 0:40, 1:30, 2:20, 3:10; 0-1 co-occur, so the best never-together pair is (0, 2)
    label_sets = [[0, 1]] * 10 + [[0]] * 30 + [[1]] * 20 + [[2]] * 20 + [[3]] * 10
    stats = learned(label_sets, 4)
    s = cluster_statistics(stats, [0, 1, 2, 3])
    assert s.pivots == (0, 2)
    assert s.d1 == s.d2 == 1.0
    assert s.evidence == 60.0
    # order of the labels given does not matter
    assert cluster_statistics(stats, [3, 2, 1, 0]).pivots == (0, 2)


def test_fewer_than_two_labels_have_no_pairs() -> None:
    stats = learned([[0]], 1)
    s = cluster_statistics(stats, [0])
    assert (s.size, s.n_pairs, s.pivots, s.heterogeneity) == (1, 0, (-1, -1), 0.0)


def test_split_sends_labels_to_the_nearer_pivot_then_by_affinity_then_balance() -> None:
    # groups {0, 1, 2} and {3, 4}; 5 co-occurs only with 1; 6 and 7 with nothing
    label_sets = [[0, 1, 2]] * 30 + [[3, 4]] * 20 + [[1, 5]] * 3 + [[6]] * 5 + [[7]] * 4 + [[0]] * 5
    stats = learned(label_sets, 8)
    labels = list(range(8))
    s = cluster_statistics(stats, labels)
    assert s.pivots == (0, 3) or s.pivots == (1, 3)
    left, right = split_by_pivots(stats, labels, s.pivots)
    assert sorted(left + right) == labels
    assert {0, 1, 2, 5} <= set(left)  # 5: tie with both pivots, affinity with 1
    assert {3, 4} <= set(right)
    # the unrelated 6 (more frequent, placed first) goes to the smaller side, then 7 balances
    assert 6 in right and 7 in right or 7 in left
    assert split_by_pivots(stats, labels, s.pivots) == (left, right)  # deterministic


def test_split_capacity_caps_both_sides() -> None:
    stats = learned([list(range(10))] * 5 + [[0]] * 10 + [[9]] * 10, 10)
    left, right = split_by_pivots(stats, list(range(10)), (0, 9), capacity=5)
    assert len(left) == len(right) == 5 and 0 in left and 9 in right


def test_separation_is_cross_minus_within_mean_distance() -> None:
    stats = learned(random_stream(300, 8, 4, seed=5), 8)
    left, right = [0, 1, 2], [3, 4, 5, 6, 7]
    close = close_pairs(stats, left + right)
    within = [stats.distance(a, b) for side in (left, right) for a, b in itertools.combinations(side, 2)]
    cross = [stats.distance(a, b) for a in left for b in right]
    expected = sum(cross) / len(cross) - sum(within) / len(within)
    assert separation(close, left, right) == pytest.approx(expected)
    assert separation(close_pairs(stats, [0, 1]), [0], [1]) == pytest.approx(stats.distance(0, 1))


def test_unrelated_labels_need_confident_distance_near_one() -> None:
    label_sets = [[0, 1]] * 300 + [[2]] * 300 + [[3]] * 3 + [[4]] * 3
    stats = learned(label_sets, 5)
    unrelated, certainty = unrelated_labels(stats, [0, 1, 2, 3], delta=1e-3, margin=0.15)
    # 0 and 1 go together; 2 never meets them; 3 never meets anyone in 300+ instances either
    assert unrelated == [2, 3]
    union = stats.union(2, 3)
    assert certainty == pytest.approx(1.0 - math.sqrt(math.log(1e3) / (2 * union)))
    assert unrelated_labels(stats, [0, 2], delta=1e-3, margin=0.15)[0] == [0, 2]
    assert unrelated_labels(stats, [0, 1], delta=1e-3, margin=0.15)[0] == []
    # two rare labels: 6 instances say nothing for sure
    assert unrelated_labels(stats, [3, 4], delta=1e-3, margin=0.15) == ([], 1.0)


def test_hoeffding_bound() -> None:
    assert hoeffding_bound(100, 1e-3) == pytest.approx(math.sqrt(math.log(1000) / 200))
    assert hoeffding_bound(0.0, 0.1) == math.inf
    assert hoeffding_bound(400, 0.01) < hoeffding_bound(100, 0.01)
