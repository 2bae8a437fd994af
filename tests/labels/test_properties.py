"""Property: under any sequence of label sets the partition covers every known label exactly once,
and the version moves exactly with the emitted events."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelflow.operators.labels import LabelClusterer

# An operation: learn a label set (ids up to a few beyond the known ones: new ids and skipped ids),
# or register ids up to n with add_labels.
label_sets = st.lists(st.integers(min_value=0, max_value=14), max_size=6)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("learn"), label_sets),
        st.tuples(st.just("learn"), st.sampled_from([[0, 1], [2, 3], [0, 1, 4], [5, 6, 7], []])),
        st.tuples(st.just("add"), st.integers(min_value=0, max_value=16)),
    ),
    min_size=1,
    max_size=250,
)
clusterer_settings = st.fixed_dictionaries(
    {
        "grace_period": st.integers(min_value=1, max_value=4),
        "min_dwell": st.integers(min_value=0, max_value=10),
        "max_cluster_size": st.integers(min_value=2, max_value=5),
        "min_cluster_size": st.just(1) | st.just(2),
        "fading_factor": st.sampled_from([1.0, 0.9, 0.3]),  # 0.3 renormalises every ~58 instances
        "delta": st.sampled_from([0.3, 0.01]),
        "tie_threshold": st.sampled_from([0.15, 0.6]),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=clusterer_settings, ops=operations)
def test_partition_always_covers_known_labels_and_versions_follow_events(config: dict, ops: list) -> None:
    config["min_cluster_size"] = min(config["min_cluster_size"], config["max_cluster_size"])
    clusterer = LabelClusterer(**config)
    known = 0
    version = 0
    for kind, argument in ops:
        if kind == "learn":
            clusterer.learn_one(argument)
            known = max([known - 1, *argument]) + 1
        else:
            clusterer.add_labels(argument)
            known = max(known, argument)
        events = clusterer.drain_events()
        partition = clusterer.partition
        # exactly once: the Partition constructor re-checks the normal form from scratch
        labels = sorted(label for cluster in partition.clusters for label in cluster)
        assert labels == list(range(known)) == list(range(partition.n_labels))
        assert max(partition.cluster_sizes(), default=0) <= config["max_cluster_size"]
        assert [(e.version_before, e.version_after) for e in events] == [
            (version + i, version + i + 1) for i in range(len(events))
        ]
        version += len(events)
        assert partition.version == clusterer.version == version
        for event in events:
            assert event.action in {"split", "merge", "new_label"}
            assert list(event.labels) == sorted(set(event.labels)) and event.labels
    clusterer.check_consistency()
    restored = LabelClusterer.from_state(clusterer.state())
    restored.check_consistency()
    assert restored.partition == clusterer.partition
    for labels in ([0, 1], [2, 3, 16], [], [1, 2]):
        clusterer.learn_one(labels)
        restored.learn_one(labels)
    assert restored.partition == clusterer.partition
    assert restored.drain_events() == clusterer.drain_events()
