"""Label-structure drift: the label clusterer's partition changes become drift events."""

from __future__ import annotations

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
    new_label, split, merge = structure_changes
    assert adapter.update(new_label) is None and adapter.n_skipped == 1
    event = adapter.update(split, label_names=["a", "b"], position=99)
    assert event is not None
    assert event.labels == ("a", "b", "2", "3")  # ids without a name keep their number
    assert event.position == 99 and event.action == "partition:split"
    assert event.details["reason"] == "heterogeneity"
    from_mapping = adapter.update(merge.to_dict())
    assert from_mapping is not None and from_mapping.labels == ("1", "2")


def test_a_record_without_the_fields_is_refused():
    with pytest.raises(TypeError, match="not a structure change"):
        LabelStructureDriftAdapter().update({"action": "split"})
