"""LabelCooccurrence: exact faded counts (lazy fading + renormalisation), effective sample sizes,
sparse pairs, round trip."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

import labelflow.operators.labels.cooccurrence as cooccurrence_module
from labelflow.operators.labels.cooccurrence import LabelCooccurrence
from labelflow.operators.state import State


def random_label_sets(n: int, n_labels: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [sorted(rng.sample(range(n_labels), rng.randint(0, 5))) for _ in range(n)]


def brute_force(
    label_sets: list[list[int]], fading: float, n_labels: int
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Faded instances, label counts, pair counts, and per label the sum of squared weights."""
    instances, counts, pairs = 0.0, np.zeros(n_labels), np.zeros((n_labels, n_labels))
    counts_sq = np.zeros(n_labels)
    for labels in label_sets:
        instances, counts, pairs = instances * fading, counts * fading, pairs * fading
        counts_sq = counts_sq * fading**2
        instances += 1.0
        for a in labels:
            counts[a] += 1.0
            counts_sq[a] += 1.0
        for a, b in itertools.combinations(labels, 2):
            pairs[a, b] += 1.0
            pairs[b, a] += 1.0
    return instances, counts, pairs, counts_sq


@pytest.mark.parametrize("fading", [1.0, 0.97, 0.6])
def test_faded_counts_equal_the_definition(fading: float, monkeypatch: pytest.MonkeyPatch) -> None:
    # a low renormalisation point makes the 0.6 run renormalise every ~7 instances
    monkeypatch.setattr(cooccurrence_module, "_RENORMALISE_ABOVE", 64.0)
    label_sets = random_label_sets(300, 9, seed=1)
    stats = LabelCooccurrence(fading_factor=fading, prune_below=0.0)
    stats.add_labels(9)
    for labels in label_sets:
        stats.update(labels)
    instances, counts, pairs, counts_sq = brute_force(label_sets, fading, 9)
    assert stats.n_instances == pytest.approx(instances, rel=1e-9)
    # Kish's effective sample size per unit of faded count: sum w / sum w**2
    assert [stats.sample_size_ratio(a) for a in range(9)] == pytest.approx(
        (counts / counts_sq).tolist(), rel=1e-9
    )
    assert [stats.count(a) for a in range(9)] == pytest.approx(counts.tolist(), rel=1e-9, abs=1e-12)
    for a, b in itertools.product(range(9), repeat=2):
        if a != b:
            assert stats.co_count(a, b) == pytest.approx(pairs[a, b], rel=1e-9, abs=1e-12)
    if fading < 1.0:
        assert stats.weight <= 64.0  # renormalised along the way


def test_sample_size_ratio_grows_with_the_memory_and_stays_small_for_young_labels() -> None:
    stats = LabelCooccurrence(fading_factor=0.999)
    stats.add_labels(3)
    assert stats.sample_size_ratio(0) == 1.0  # never seen
    for i in range(20_000):  # longer than the memory, and across a renormalisation
        stats.update([0, 2] if i >= 19_900 else [0])
    assert stats.sample_size_ratio(0) == pytest.approx(1.999, rel=1e-6)  # 1 + fading_factor
    assert 1.0 < stats.sample_size_ratio(2) < 1.06  # seen in the last 100 instances only: weights near 1
    assert stats.sample_size_ratio(1) == 1.0
    no_fading = LabelCooccurrence(fading_factor=1.0)
    no_fading.add_labels(1)
    for _ in range(500):
        no_fading.update([0])
    assert no_fading.sample_size_ratio(0) == 1.0  # plain counts: the effective size is the count


def test_pairs_are_sparse_and_symmetric() -> None:
    stats = LabelCooccurrence()
    stats.add_labels(4271)
    stats.update([1, 7, 4000])
    stats.update([7, 4000])
    assert stats.n_pair_entries == 3
    assert stats.raw_pairs[7] == {1: 1.0, 4000: 2.0}
    assert stats.co_count(4000, 7) == stats.co_count(7, 4000) == 2.0
    assert sum(len(row) for row in stats.raw_pairs) == 6  # memory follows co-occurring pairs only


def test_pairs_that_stopped_co_occurring_are_pruned_and_read_as_never_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cooccurrence_module, "_RENORMALISE_ABOVE", 2.0**20)
    stats = LabelCooccurrence(fading_factor=0.5, prune_below=1e-3)
    stats.add_labels(3)
    stats.update([0, 1])
    for _ in range(40):
        stats.update([0])
        stats.update([1])
    assert 1 not in stats.raw_pairs[0] and 0 not in stats.raw_pairs[1]
    assert stats.distance(0, 1) == 1.0
    assert stats.count(0) > 0.5  # labels themselves are never pruned


def test_jaccard_distance_properties() -> None:
    stats = LabelCooccurrence()
    stats.add_labels(5)
    for labels in ([0, 1], [0, 1], [0], [1, 2], [3]):
        stats.update(labels)
    assert stats.distance(0, 1) == pytest.approx(1 - 2 / (3 + 3 - 2))
    assert stats.distance(1, 0) == stats.distance(0, 1)
    assert stats.distance(0, 0) == 0.0
    assert stats.distance(0, 3) == 1.0  # never together
    assert stats.distance(0, 4) == 1.0  # label 4 never positive
    assert stats.distance(0, 99) == 1.0  # id not registered yet
    assert stats.union(0, 1) == 4.0
    with pytest.raises(ValueError, match="non-negative"):
        stats.distance(-1, 0)


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_rejects_fading_outside_unit_interval(bad: float) -> None:
    with pytest.raises(ValueError, match="fading_factor"):
        LabelCooccurrence(fading_factor=bad)


def test_state_round_trip_is_exact_including_iteration_order(tmp_path) -> None:
    stats = LabelCooccurrence(fading_factor=0.99)
    stats.add_labels(12)
    label_sets = random_label_sets(400, 12, seed=2)
    for labels in label_sets[:200]:
        stats.update(labels)
    stats.state().save(tmp_path)
    restored = LabelCooccurrence.from_state(State.load(tmp_path))
    assert restored.raw_counts == stats.raw_counts
    assert [list(row.items()) for row in restored.raw_pairs] == [list(row.items()) for row in stats.raw_pairs]
    for labels in label_sets[200:]:
        stats.update(labels)
        restored.update(labels)
    assert restored.raw_counts == stats.raw_counts and restored.weight == stats.weight
    assert [list(row.items()) for row in restored.raw_pairs] == [list(row.items()) for row in stats.raw_pairs]
    assert [restored.sample_size_ratio(a) for a in range(12)] == [
        stats.sample_size_ratio(a) for a in range(12)
    ]
    assert restored.n_updates == stats.n_updates == 400


def test_a_state_of_format_1_restores_with_the_conservative_sample_size() -> None:
    stats = LabelCooccurrence(fading_factor=0.99)
    stats.add_labels(6)
    for labels in random_label_sets(500, 6, seed=3):
        stats.update(labels)
    state = stats.state()
    state.meta["format"] = "labelflow.label_cooccurrence/1"
    del state.arrays["counts_sq"]  # format /1 had no squared-weight counts
    restored = LabelCooccurrence.from_state(state)
    assert restored.raw_counts == stats.raw_counts
    assert [restored.sample_size_ratio(a) for a in range(6)] == [1.0] * 6
    assert all(stats.sample_size_ratio(a) > 1.5 for a in range(6))


def test_from_state_rejects_other_formats_and_corrupt_arrays() -> None:
    with pytest.raises(ValueError, match="state format"):
        LabelCooccurrence.from_state(State(meta={"format": "something/1"}))
    state = LabelCooccurrence().state()
    state.arrays["pair_rows"] = np.array([0], dtype=np.int64)
    with pytest.raises(ValueError, match="differ in length"):
        LabelCooccurrence.from_state(state)
    stats = LabelCooccurrence()
    stats.add_labels(2)
    state = stats.state()
    state.arrays["counts_sq"] = np.zeros(1)
    with pytest.raises(ValueError, match="squared counts differ in length"):
        LabelCooccurrence.from_state(state)
