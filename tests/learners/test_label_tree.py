"""The label tree: bounded fan-out, every leaf at one depth, co-occurring labels share clusters."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.learners.label_tree import LabelTree
from labelflow.operators.state import State


def _check_invariants(tree: LabelTree, n_labels: int) -> None:
    assert sorted(tree.leaf_label[node] for node in tree.label_node) == list(range(n_labels))
    for node in range(tree.n_nodes):
        limit = tree.cluster_size if tree.heights[node] == 1 else tree.fan_out
        assert len(tree.children[node]) <= limit
        for child in tree.children[node]:
            assert tree.parent[child] == node and tree.heights[child] == tree.heights[node] - 1
    assert {len(tree.path(label)) for label in range(n_labels)} == {tree.height + 1}
    places = list(zip(tree.origin, tree.serial, strict=False))
    assert len(set(places)) == len(places), "two nodes share a place in the weight table"


def test_grows_balanced_with_bounded_fan_out() -> None:
    tree = LabelTree(cluster_size=4, fan_out=3)
    rng = np.random.default_rng(0)
    for label in range(500):
        hints = [int(h) for h in rng.integers(0, label, size=2)] if label else []
        tree.add_label(label, hints=hints)
    _check_invariants(tree, 500)
    # 500 labels in clusters of 4 need at least 125 clusters: 3 ** 5 = 243 >= 125 routing capacity.
    assert tree.height <= 1 + 6


def test_a_label_joins_the_cluster_of_a_label_it_occurs_with() -> None:
    tree = LabelTree(cluster_size=4, fan_out=4)
    for label in range(10):
        tree.add_label(label, hints=[])
    # 0-3, 4-7 and 8-9 fill clusters in order; 8's cluster has room, the newest (9's) is the same one
    tree.add_label(10, hints=[8])
    assert tree.parent[tree.label_node[10]] == tree.parent[tree.label_node[8]]
    tree.add_label(11, hints=[2, 9])  # 2's cluster is full: the next hint's cluster takes it
    assert tree.parent[tree.label_node[11]] == tree.parent[tree.label_node[9]]


def test_a_label_whose_partner_cluster_is_full_starts_a_cluster_beside_it() -> None:
    tree = LabelTree(cluster_size=2, fan_out=4)
    for label in range(4):
        tree.add_label(label, hints=[])
    tree.add_label(4, hints=[0])  # 0's cluster {0, 1} is full
    partner_cluster = tree.parent[tree.label_node[0]]
    new_cluster = tree.parent[tree.label_node[4]]
    assert new_cluster != partner_cluster and tree.parent[new_cluster] == tree.parent[partner_cluster]


def test_labels_are_added_in_id_order() -> None:
    with pytest.raises(ValueError, match="id order"):
        LabelTree().add_label(3, hints=[])


def test_state_round_trip_keeps_the_structure_and_later_growth(tmp_path) -> None:
    tree = LabelTree(cluster_size=3, fan_out=2)
    for label in range(40):
        tree.add_label(label, hints=[label - 1] if label % 2 else [])
    tree.state().save(tmp_path / "tree")
    restored = LabelTree.from_state(State.load(tmp_path / "tree"))
    for label in range(40, 80):
        assert tree.add_label(label, hints=[label - 7]) == restored.add_label(label, hints=[label - 7])
    assert restored.children == tree.children and restored.n_clusters == tree.n_clusters
    _check_invariants(restored, 80)
