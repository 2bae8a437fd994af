"""LabelClusterer on synthetic streams with known groups: recovery, drift, new labels, bounds, state."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from labelflow.operators.labels import LabelClusterer, StructureChange
from labelflow.operators.state import State

# Three groups of four labels, ids interleaved so that id order gives nothing away.
GROUPS = [[0, 5, 7, 10], [1, 3, 8, 11], [2, 4, 6, 9]]
# After a change: each new group takes two labels from each of two old groups ...
RECOMBINED = [[0, 5, 1, 3], [7, 10, 2, 4], [8, 11, 6, 9]]
# ... or every old correlation is gone.
RESHUFFLED = [[0, 1, 2, 3], [5, 8, 4, 6], [7, 10, 11, 9]]


def learn(clusterer: LabelClusterer, label_sets) -> list[StructureChange]:
    events = []
    for labels in label_sets:
        clusterer.learn_one(labels)
        events.extend(clusterer.drain_events())
    return events


def settled_at(clusterer: LabelClusterer, label_sets, groups, same_grouping) -> int | None:
    """Index of the instance from which the partition equals ``groups`` up to the end, or None."""
    since = None
    for i, labels in enumerate(label_sets):
        clusterer.learn_one(labels)
        if same_grouping(clusterer.partition.clusters, groups):
            since = i if since is None else since
        else:
            since = None
    return since


@pytest.mark.parametrize("start", ["stream", "one_cluster", "singletons"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_planted_groups(streams, start: str, seed: int) -> None:
    rng = random.Random(seed)
    clusterer = LabelClusterer()
    if start == "one_cluster":
        clusterer.learn_one(range(12))  # all first seen together: the groups must be split out
    elif start == "singletons":
        clusterer.add_labels(12)  # all registered apart: the groups must be merged
    since = settled_at(clusterer, streams.label_sets(GROUPS, 3000, rng), GROUPS, streams.same_grouping)
    assert since is not None and since <= 2500, clusterer.partition.clusters
    clusterer.check_consistency()


@pytest.mark.parametrize(("after", "bound"), [(RECOMBINED, 3000), (RESHUFFLED, 6000)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_follows_a_change_of_correlations(streams, after, bound: int, seed: int) -> None:
    rng = random.Random(seed)
    clusterer = LabelClusterer()
    assert (
        settled_at(clusterer, streams.label_sets(GROUPS, 3000, rng), GROUPS, streams.same_grouping)
        is not None
    )
    version = clusterer.version
    since = settled_at(clusterer, streams.label_sets(after, bound + 1000, rng), after, streams.same_grouping)
    assert since is not None and since <= bound, clusterer.partition.clusters
    assert clusterer.version - version <= 25  # followed, not thrashed
    clusterer.check_consistency()


def test_new_labels_join_the_cluster_of_their_co_labels_when_it_has_room() -> None:
    clusterer = LabelClusterer(max_cluster_size=4)
    clusterer.learn_one([0, 1])
    assert clusterer.partition.clusters == ((0, 1),)
    clusterer.learn_one([1, 2])  # joins (0, 1)
    assert clusterer.partition.clusters == ((0, 1, 2),)
    clusterer.learn_one([0, 3, 4])  # no room for two more: 3 and 4 form a cluster together
    assert clusterer.partition.clusters == ((0, 1, 2), (3, 4))
    clusterer.learn_one([3, 5])  # joins (3, 4)
    assert clusterer.partition.clusters == ((0, 1, 2), (3, 4, 5))
    clusterer.learn_one([9])  # 6, 7, 8 skipped over: registered as singletons
    assert clusterer.partition.clusters == ((0, 1, 2), (3, 4, 5), (6,), (7,), (8,), (9,))
    clusterer.learn_one(range(10, 20))  # more new labels than fit in one cluster
    assert clusterer.partition.clusters[-3:] == ((10, 11, 12, 13), (14, 15, 16, 17), (18, 19))
    clusterer.learn_one([0, 3, 4, 20])  # most co-labels are in (3, 4, 5): joins there
    assert clusterer.partition.cluster_of(20) == clusterer.partition.cluster_of(3)
    events = clusterer.drain_events()
    assert [e.action for e in events] == ["new_label"] * 7
    assert [e.labels for e in events][:3] == [(0, 1), (2,), (3, 4)]
    assert events[4].labels == (6, 7, 8, 9)
    clusterer.check_consistency()


def test_new_labels_are_in_the_partition_right_after_learn_one(streams) -> None:
    rng = random.Random(3)
    clusterer = LabelClusterer(grace_period=10, min_dwell=20)
    known = 0
    for i in range(2000):
        labels = rng.sample(range(min(40, 5 + i // 40)), rng.randint(0, 4))
        clusterer.learn_one(labels)
        known = max([known - 1, *labels]) + 1
        partition = clusterer.partition
        assert partition.n_labels == known == clusterer.n_labels
        assert all(0 <= partition.cluster_of(a) < partition.n_clusters for a in labels)
    clusterer.check_consistency()


def test_add_labels_registers_singletons_once() -> None:
    clusterer = LabelClusterer()
    clusterer.add_labels(3)
    clusterer.add_labels(2)  # nothing to do
    assert clusterer.partition.clusters == ((0,), (1,), (2,))
    assert [(e.action, e.labels) for e in clusterer.drain_events()] == [("new_label", (0, 1, 2))]
    with pytest.raises(ValueError, match="n_labels"):
        clusterer.add_labels(-1)


def test_empty_instances_count_but_register_nothing() -> None:
    clusterer = LabelClusterer()
    clusterer.learn_one([])
    clusterer.learn_one(np.array([], dtype=np.int64))
    assert clusterer.n_learned == 2 and clusterer.n_labels == 0 and clusterer.partition.n_clusters == 0
    assert clusterer.cooccurrence.n_instances == pytest.approx(1.0 + 0.999)


def test_input_validation() -> None:
    clusterer = LabelClusterer()
    clusterer.learn_one(np.array([2, 0, 2]))  # numpy ints and repeats are fine
    assert clusterer.n_labels == 3
    with pytest.raises(TypeError, match="integers"):
        clusterer.learn_one([1.5])
    with pytest.raises(TypeError, match="integers"):
        clusterer.learn_one(["a"])
    with pytest.raises(ValueError, match="non-negative"):
        clusterer.learn_one([-1, 2])
    assert clusterer.n_learned == 1  # a rejected instance changes nothing


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("delta", 0.0),
        ("delta", 1.0),
        ("tie_threshold", -0.1),
        ("grace_period", 0),
        ("min_dwell", -1),
        ("max_cluster_size", 1),
        ("min_cluster_size", 0),
        ("min_cluster_size", 17),
        ("fading_factor", 0.0),
        ("max_pending_events", 0),
    ],
)
def test_rejects_bad_settings(setting: str, value: float) -> None:
    with pytest.raises(ValueError, match=setting):
        LabelClusterer(**{setting: value})


def test_clusters_never_exceed_max_size(streams) -> None:
    # one group of 40 labels that all co-occur, plus smaller groups
    groups = [list(range(40)), list(range(40, 46)), list(range(46, 50))]
    clusterer = LabelClusterer(max_cluster_size=8, grace_period=20, min_dwell=100)
    for i, labels in enumerate(streams.label_sets(groups, 4000, random.Random(4), p_member=0.3)):
        clusterer.learn_one(labels)
        assert max(clusterer.partition.cluster_sizes()) <= 8
        if i % 500 == 0:
            clusterer.check_consistency()


def test_a_re_aggregation_past_max_size_is_split_at_once_and_not_undone() -> None:
    clusterer = LabelClusterer(max_cluster_size=4, grace_period=10, min_dwell=50, fading_factor=0.998)
    clusterer.learn_one([0, 1, 2, 3])
    learn(clusterer, ([0, 1] if i % 2 else [2, 3] for i in range(600)))
    learn(clusterer, ([0, 1, 4, 5] if i % 2 == 0 else [2, 3, 6, 7] for i in range(600)))
    events = learn(clusterer, ([[0], [1], [4], [5], [2, 3, 6, 7]][i % 5] for i in range(3000)))
    kinds = [(e.action, e.reason) for e in events]
    merge = kinds.index(("merge", "mean_growth"))
    assert events[merge].labels == tuple(range(8))
    assert kinds[merge + 1] == ("split", "max_size") and events[merge + 1].position == events[merge].position
    assert kinds.count(("merge", "mean_growth")) == 1  # a forced split is never re-aggregated (no loop)
    # the labels that stopped co-occurring end up apart; the pair that still co-occurs stays
    assert clusterer.partition.clusters == ((0,), (1,), (2, 3, 6, 7), (4,), (5,))
    clusterer.check_consistency()


def test_a_cluster_changes_at_most_once_per_dwell(streams) -> None:
    min_dwell = 300
    clusterer = LabelClusterer(min_dwell=min_dwell)
    rng = random.Random(5)
    events = learn(clusterer, streams.label_sets(GROUPS, 3000, rng))
    events += learn(clusterer, streams.label_sets(RESHUFFLED, 5000, rng))
    last_change: dict[int, tuple[int, StructureChange]] = {}
    changes = 0
    for event in events:
        if event.action == "new_label":
            continue
        for label in event.labels:
            if label in last_change:
                position, previous = last_change[label]
                forced = (
                    event.reason == "max_size" and position == event.position and previous.action == "merge"
                )
                assert forced or event.position - position >= min_dwell, (previous, event)
            last_change[label] = (event.position, event)
        changes += 1
    assert changes >= 10  # the test saw real restructuring


def test_same_stream_gives_same_partition_and_events(streams) -> None:
    runs = []
    for _ in range(2):
        clusterer = LabelClusterer()
        events = learn(clusterer, streams.label_sets(GROUPS, 2500, random.Random(6)))
        runs.append((clusterer.partition, events))
    assert runs[0] == runs[1]


def test_state_round_trip_is_exact(streams, tmp_path) -> None:
    rng = random.Random(7)
    label_sets = list(streams.label_sets(GROUPS, 2000, rng)) + list(streams.label_sets(RESHUFFLED, 3000, rng))
    clusterer = LabelClusterer(fading_factor=0.998)
    learn(clusterer, label_sets[:1800])
    clusterer.learn_one([1, 2, 12])  # a new label, its event still pending
    clusterer.state().save(tmp_path)
    restored = LabelClusterer.from_state(State.load(tmp_path))
    restored.check_consistency()
    assert restored.partition == clusterer.partition
    assert restored.drain_events() == clusterer.drain_events() != []
    for a, b in [(0, 5), (1, 12), (3, 4)]:
        assert restored.distance(a, b) == clusterer.distance(a, b)
    tail_original = learn(clusterer, label_sets[1800:])
    tail_restored = learn(restored, label_sets[1800:])
    assert tail_restored == tail_original and len(tail_original) > 3
    assert restored.partition == clusterer.partition
    original, copy = clusterer.state(), restored.state()
    assert copy.meta == original.meta
    assert copy.arrays.keys() == original.arrays.keys()
    for key in original.arrays:
        np.testing.assert_array_equal(copy.arrays[key], original.arrays[key], err_msg=key)


def test_a_state_of_format_1_restores_and_continues_without_line_records(streams) -> None:
    label_sets = list(streams.label_sets(GROUPS, 2500, random.Random(10)))
    clusterer = LabelClusterer()
    clusterer.add_labels(12)
    learn(clusterer, label_sets[:1500])
    state = clusterer.state()
    # what format /1 wrote: no line records, no squared-weight counts
    state.meta["format"] = "labelflow.label_clusterer/1"
    state.meta["children"]["cooccurrence"]["format"] = "labelflow.label_cooccurrence/1"
    for key in ("node_line", "merged_sides", "cooccurrence/counts_sq"):
        del state.arrays[key]
    restored = LabelClusterer.from_state(state)
    restored.check_consistency()
    assert restored.partition == clusterer.partition
    learn(restored, label_sets[1500:])
    restored.check_consistency()
    assert streams.same_grouping(restored.partition.clusters, GROUPS)
    assert restored.state().meta["format"] == "labelflow.label_clusterer/2"


def test_from_state_rejects_other_formats_and_corrupt_maps() -> None:
    with pytest.raises(ValueError, match="state format"):
        LabelClusterer.from_state(State(meta={"format": "other/1"}))
    clusterer = LabelClusterer()
    clusterer.learn_one([0, 1])
    state = clusterer.state()
    state.arrays["leaf_of"] = np.array([0, 99], dtype=np.int64)
    with pytest.raises(ValueError, match="not a leaf"):
        LabelClusterer.from_state(state)
    state = clusterer.state()
    state.arrays["merged_sides"] = np.array([[99, 0, 1]], dtype=np.int64)
    with pytest.raises(ValueError, match="merged side 0 of unknown node 99"):
        LabelClusterer.from_state(state)


def test_events_chain_versions_and_drop_beyond_the_buffer() -> None:
    clusterer = LabelClusterer(max_pending_events=3)
    for label in range(5):
        clusterer.learn_one([label])
    assert clusterer.version == 5 and clusterer.n_dropped_events == 2
    events = clusterer.drain_events()
    assert [(e.version_before, e.version_after) for e in events] == [(2, 3), (3, 4), (4, 5)]
    assert clusterer.drain_events() == []
    assert StructureChange.from_dict(events[0].to_dict()) == events[0]


def test_distance_follows_the_faded_counts() -> None:
    clusterer = LabelClusterer(fading_factor=1.0)
    for labels in ([0, 1], [0, 1], [0], [2]):
        clusterer.learn_one(labels)
    assert clusterer.distance(0, 1) == pytest.approx(1 / 3)
    assert (
        clusterer.distance(0, 2) == 1.0
        and clusterer.distance(2, 2) == 0.0
        and clusterer.distance(0, 50) == 1.0
    )


def test_statistical_decisions_report_their_test(streams) -> None:
    clusterer = LabelClusterer()
    events = learn(clusterer, streams.label_sets(GROUPS, 3000, random.Random(8)))
    events += learn(clusterer, streams.label_sets(RECOMBINED, 3000, random.Random(9)))
    by_reason = defaultdict(list)
    for event in events:
        by_reason[(event.action, event.reason)].append(event)
    assert set(by_reason) <= {
        ("new_label", "first_seen"),
        ("split", "heterogeneity"),
        ("split", "separation"),
        ("split", "unrelated"),
        ("split", "max_size"),
        ("merge", "affinity"),
        ("merge", "diameter_growth"),
        ("merge", "mean_growth"),
    }
    statistical = [e for e in events if e.action != "new_label"]
    assert statistical
    for event in statistical:
        assert event.statistic > event.threshold, event  # each change is the test that fired
