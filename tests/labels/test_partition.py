"""Partition: normal form, O(1) lookups, stable keys, clear errors."""

from __future__ import annotations

import pytest

from labelflow.operators.labels.partition import Partition


def test_from_clusters_normalises_and_keeps_keys_with_their_cluster() -> None:
    p = Partition.from_clusters(7, [[5, 3], [0, 4, 1], [2]], keys=[30, 10, 20])
    assert p.clusters == ((0, 1, 4), (2,), (3, 5))
    assert p.keys == (10, 20, 30)
    assert p.version == 7 and p.n_labels == 6 and p.n_clusters == 3
    assert [p.cluster_of(label) for label in range(6)] == [0, 0, 1, 2, 0, 2]
    assert p.labels_of(2) == (3, 5) and p.key_of(2) == 30
    assert p.cluster_sizes() == (3, 1, 2)


def test_empty_partition() -> None:
    p = Partition(0, ())
    assert p.n_labels == 0 and p.n_clusters == 0 and p.keys == ()
    with pytest.raises(KeyError, match="not in the partition"):
        p.cluster_of(0)


@pytest.mark.parametrize(
    ("clusters", "message"),
    [
        (((1,), (0, 2)), "ordered by their smallest"),
        (((1, 0),), "not sorted"),
        (((0, 0),), "not sorted"),
        (((0,), ()), "empty"),
        (((0, 1), (3,)), "outside 0..2"),
        (((0, 1), (1,)), "ordered by their smallest|two clusters"),
    ],
)
def test_rejects_anything_but_the_normal_form(clusters: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Partition(1, clusters)


def test_rejects_label_in_two_clusters_and_bad_keys_and_version() -> None:
    with pytest.raises(ValueError, match="ordered by their smallest"):
        Partition(0, ((1, 2), (0, 1)))
    with pytest.raises(ValueError, match="two clusters"):
        Partition(0, ((0, 1), (1, 2)))
    with pytest.raises(ValueError, match="keys"):
        Partition(0, ((0,), (1,)), keys=(4,))
    with pytest.raises(ValueError, match="distinct"):
        Partition(0, ((0,), (1,)), keys=(4, 4))
    with pytest.raises(ValueError, match="version"):
        Partition(-1, ((0,),))


def test_out_of_range_lookup_names_the_problem() -> None:
    p = Partition(0, ((0, 1),))
    with pytest.raises(KeyError, match="label id 2"):
        p.cluster_of(2)
    with pytest.raises(KeyError, match="label id -1"):
        p.cluster_of(-1)


def test_trusted_partition_equals_validated_one_and_builds_its_map_lazily() -> None:
    clusters = ((0, 3), (1, 2, 4))
    trusted = Partition._trusted(5, clusters, (8, 9), 5)
    checked = Partition(5, clusters, (8, 9))
    assert trusted == checked and hash(trusted) == hash(checked)
    assert trusted._cluster_of is None
    assert [trusted.cluster_of(label) for label in range(5)] == [0, 1, 1, 0, 1]
    assert trusted.n_labels == 5


def test_partitions_are_frozen_and_hashable() -> None:
    p = Partition(1, ((0,),))
    with pytest.raises(AttributeError):
        p.version = 2  # type: ignore[misc]
    assert {p: 1}[Partition(1, ((0,),))] == 1
