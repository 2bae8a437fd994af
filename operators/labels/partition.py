"""A versioned partition of the label ids ``0 .. n_labels - 1`` into disjoint clusters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Partition:
    """Disjoint clusters of label ids covering ``0 .. n_labels - 1`` exactly once.

    The constructor only accepts the normal form: every cluster's ids sorted ascending, clusters
    ordered by their smallest id, no empty cluster. :meth:`from_clusters` brings any grouping into
    that form. ``keys`` are stable identifiers of the clusters (the clusterer's node ids): a cluster
    whose key appears in two versions has the same labels in both, so a consumer can keep the model
    of every cluster that did not change. They default to ``0 .. n_clusters - 1``.

    Parameters
    ----------
    version
        Number of structure changes that produced this partition (0 for the empty partition).
    clusters
        The clusters in normal form.
    keys
        One stable identifier per cluster, distinct.

    Examples
    --------
    >>> p = Partition.from_clusters(3, [[4, 1], [0, 2, 3]])
    >>> p.clusters
    ((0, 2, 3), (1, 4))
    >>> p.cluster_of(4), p.n_labels, p.n_clusters
    (1, 5, 2)
    >>> p.labels_of(0)
    (0, 2, 3)
    """

    version: int
    clusters: tuple[tuple[int, ...], ...]
    keys: tuple[int, ...] | None = None
    _cluster_of: list[int] | None = field(init=False, repr=False, compare=False, default=None)
    _n_labels: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or self.version < 0:
            raise ValueError(f"Partition.version must be a non-negative int, not {self.version!r}")
        clusters = tuple(tuple(int(label) for label in cluster) for cluster in self.clusters)
        object.__setattr__(self, "clusters", clusters)
        n_labels = sum(len(cluster) for cluster in clusters)
        cluster_of = [-1] * n_labels
        previous_first = -1
        for index, cluster in enumerate(clusters):
            if not cluster:
                raise ValueError(f"Partition cluster {index} is empty")
            if any(a >= b for a, b in zip(cluster, cluster[1:], strict=False)):
                raise ValueError(
                    f"Partition cluster {index} is not sorted ascending without repeats: {cluster}"
                )
            if cluster[0] <= previous_first:
                raise ValueError("Partition clusters must be ordered by their smallest label id")
            previous_first = cluster[0]
            for label in cluster:
                if not 0 <= label < n_labels:
                    raise ValueError(
                        f"Partition label {label} is outside 0..{n_labels - 1}: the clusters must cover "
                        f"the ids 0..n_labels-1 exactly once"
                    )
                if cluster_of[label] != -1:
                    raise ValueError(f"Partition label {label} is in two clusters")
                cluster_of[label] = index
        object.__setattr__(self, "_cluster_of", cluster_of)
        object.__setattr__(self, "_n_labels", n_labels)
        keys = tuple(range(len(clusters))) if self.keys is None else tuple(int(k) for k in self.keys)
        if len(keys) != len(clusters):
            raise ValueError(f"Partition has {len(clusters)} clusters but {len(keys)} keys")
        if len(set(keys)) != len(keys):
            raise ValueError("Partition keys must be distinct")
        object.__setattr__(self, "keys", keys)

    @classmethod
    def from_clusters(
        cls, version: int, clusters: Iterable[Iterable[int]], keys: Sequence[int] | None = None
    ) -> Partition:
        """Build a partition from clusters in any order (``keys`` follow their cluster)."""
        sorted_clusters = [tuple(sorted(int(label) for label in cluster)) for cluster in clusters]
        key_list = list(range(len(sorted_clusters))) if keys is None else [int(k) for k in keys]
        if len(key_list) != len(sorted_clusters):
            raise ValueError(f"{len(sorted_clusters)} clusters but {len(key_list)} keys")
        if any(not cluster for cluster in sorted_clusters):
            raise ValueError("Partition clusters must not be empty")
        order = sorted(range(len(sorted_clusters)), key=lambda i: sorted_clusters[i][0])
        return cls(version, tuple(sorted_clusters[i] for i in order), tuple(key_list[i] for i in order))

    @classmethod
    def _trusted(
        cls, version: int, clusters: tuple[tuple[int, ...], ...], keys: tuple[int, ...], n_labels: int
    ) -> Partition:
        """A partition from a producer that guarantees the normal form (no O(n_labels) checks).

        The label -> cluster map is then built on the first :meth:`cluster_of` call: a consumer that
        only reads ``clusters`` pays nothing for it.
        """
        partition = object.__new__(cls)
        object.__setattr__(partition, "version", version)
        object.__setattr__(partition, "clusters", clusters)
        object.__setattr__(partition, "keys", keys)
        object.__setattr__(partition, "_cluster_of", None)
        object.__setattr__(partition, "_n_labels", n_labels)
        return partition

    @property
    def n_labels(self) -> int:
        return self._n_labels

    @property
    def n_clusters(self) -> int:
        return len(self.clusters)

    def cluster_of(self, label_id: int) -> int:
        """Index (into ``clusters``) of the cluster holding ``label_id``."""
        cluster_of = self._cluster_of
        if cluster_of is None:
            cluster_of = [0] * self._n_labels
            for index, cluster in enumerate(self.clusters):
                for label in cluster:
                    cluster_of[label] = index
            object.__setattr__(self, "_cluster_of", cluster_of)
        if not 0 <= label_id < self._n_labels:
            raise KeyError(f"label id {label_id} is not in the partition (it covers 0..{self._n_labels - 1})")
        return cluster_of[label_id]

    def labels_of(self, cluster_index: int) -> tuple[int, ...]:
        """The sorted label ids of cluster ``cluster_index``."""
        return self.clusters[cluster_index]

    @property
    def cluster_keys(self) -> tuple[int, ...]:
        """``keys`` as set by the constructor (one per cluster; never None once constructed)."""
        assert self.keys is not None
        return self.keys

    def key_of(self, cluster_index: int) -> int:
        """The stable key of cluster ``cluster_index``."""
        return self.cluster_keys[cluster_index]

    def cluster_sizes(self) -> tuple[int, ...]:
        return tuple(len(cluster) for cluster in self.clusters)
