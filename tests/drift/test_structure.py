"""Label-structure drift: the label clusterer's partition changes become drift events."""

from __future__ import annotations

import dataclasses

import pytest

from labelflow.operators.datasets import SyntheticStream, SyntheticStreamConfig
from labelflow.operators.drift import LabelStructureDriftAdapter
from labelflow.operators.labels.clustering import LabelClusterer


def test_changes_of_the_real_clusterer_become_events_with_label_names():
    stream = SyntheticStream(SyntheticStreamConfig(seed=2, n_documents=5000))
    names = stream.labels
    index = {name: i for i, name in enumerate(names)}
    clusterer = LabelClusterer()
    adapter = LabelStructureDriftAdapter()
    events = []
    for doc in stream:
        clusterer.learn_one(index[label] for label in doc.labels)
        for change in clusterer.drain_events():
            event = adapter.update(change, label_names=names)
            assert event is not None
            events.append((change, event))
    assert events, "the clusterer reported no partition change on a stream with correlated label groups"
    actions = {change.action for change, _ in events}
    assert "new_label" in actions and actions & {"split", "merge"}
    for change, event in events:
        assert event.kind == "label_structure" and event.level == "global"
        assert event.detector == "LabelClusterer"
        assert event.action == f"repartition:{change.action}"
        assert event.position == change.position
        assert event.labels == tuple(names[i] for i in change.labels)
        assert event.details["version_after"] == event.details["version_before"] + 1
        assert (event.statistic, event.threshold) == (change.statistic, change.threshold)
    assert adapter.n_events == len(events)


def test_skipped_actions_unknown_ids_and_mappings(structure_changes):
    adapter = LabelStructureDriftAdapter(skip_actions=["new_label"], action_prefix="partition")
    new_label, _, split, merge = structure_changes
    assert adapter.update(new_label) is None and adapter.n_skipped == 1
    event = adapter.update(split, label_names=["a", "b"], position=99)
    assert event is not None
    assert event.labels == ("a", "b", "2", "3")  # ids without a name keep their number
    assert event.position == 99 and event.action == "partition:split"
    assert event.details["reason"] == "separation"
    from_mapping = adapter.update(merge.to_dict())
    assert from_mapping is not None and from_mapping.labels == ("1", "2")


def test_a_record_without_the_fields_is_refused():
    with pytest.raises(TypeError, match="not a structure change"):
        LabelStructureDriftAdapter().update({"action": "split"})


def test_changes_of_a_forming_partition_are_warnings_and_settled_ones_drifts(structure_changes):
    adapter = LabelStructureDriftAdapter()
    events = [adapter.update(change) for change in structure_changes]
    assert [(e.severity, e.details["phase"]) for e in events] == [
        ("warning", "formation"),  # a new label
        ("warning", "formation"),  # the clusterer's warm-up
        ("drift", "mature"),
        ("drift", "mature"),
    ]
    actions = ["repartition:new_label", "repartition:split", "repartition:split", "repartition:merge"]
    assert [e.action for e in events] == actions
    assert events[2].details["min_label_age"] == 4199 and events[2].details["min_label_count"] == 212.5


@pytest.mark.parametrize(
    ("age", "count", "severity"),
    [
        (2999, 500.0, "warning"),  # a label joined the partition too recently
        (3000, 30.0, "drift"),
        (50_000, 29.9, "warning"),  # a label too rare in the clusterer's memory
        (50_000, None, "drift"),  # records without the count: the age decides
    ],
)
def test_the_formation_rule(structure_changes, age, count, severity):
    change = dataclasses.replace(
        structure_changes[2], position=60_000, min_label_age=age, min_label_count=count
    )
    event = LabelStructureDriftAdapter().update(change)
    assert event is not None and event.severity == severity
    assert event.details["phase"] == ("formation" if severity == "warning" else "mature")


def test_records_without_the_maturity_fields_fall_back_to_the_clusterer_position(structure_changes):
    record = structure_changes[2].to_dict()
    del record["min_label_age"], record["min_label_count"]
    adapter = LabelStructureDriftAdapter(formation_age=5000)
    assert adapter.update(record).severity == "warning"  # position 4200 < 5000: still forming
    assert adapter.update({**record, "position": 5000}).severity == "drift"
    restored = LabelStructureDriftAdapter.from_state(adapter.state())
    assert (restored.formation_age, restored.formation_count) == (5000, 30.0)
    with pytest.raises(ValueError, match="formation_age"):
        LabelStructureDriftAdapter(formation_age=-1)


def test_a_stationary_stream_gives_no_structure_drift():
    """The clusterer settles its partition of a stationary stream: every change is a formation warning."""
    stream = SyntheticStream(SyntheticStreamConfig(seed=1000, n_documents=6000, drift_events=[]))
    index = {name: i for i, name in enumerate(stream.labels)}
    clusterer = LabelClusterer()
    adapter = LabelStructureDriftAdapter()
    events = []
    for doc in stream:
        clusterer.learn_one(index[label] for label in doc.labels)
        events += [adapter.update(change, label_names=stream.labels) for change in clusterer.drain_events()]
    assert any(e.action in ("repartition:split", "repartition:merge") for e in events)
    assert all(e.severity == "warning" and e.details["phase"] == "formation" for e in events)
    assert all(e.details["min_label_age"] < 3000 or e.details["min_label_count"] < 30 for e in events)
