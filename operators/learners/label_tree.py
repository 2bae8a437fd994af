"""A label tree of bounded fan-out that grows online: label clusters at the bottom, routing nodes above."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelflow.operators.state import State, Stateful


class LabelTree(Stateful):
    """The routing structure of a probabilistic label tree, grown one label at a time.

    Every label is a leaf (height 0). Its parent is a *cluster* (height 1) of at most ``cluster_size``
    labels; clusters hang under routing nodes (height 2, 3, ...) of at most ``fan_out`` children, up to
    the root. All leaves are at the same depth, so a search descends level by level, and the depth is
    ``O(log(labels))``: when the root is full a new root is put above it.

    A new label joins, in this order of preference (so that labels that occur together share clusters,
    as HOMER's label clusters do): the cluster of a label it occurs with, a cluster the document was
    routed to, a new cluster beside the cluster of a label it occurs with or beside one the document
    was routed to, a new cluster anywhere there is room.

    Node ids are dense (``0..n_nodes-1``) and never reused. When the root grows, the old root's id
    becomes the new root (a root answers "is any label relevant?", which stays true of the new one) and
    its children move to a new node.

    >>> tree = LabelTree(cluster_size=2, fan_out=2)
    >>> [tree.add_label(label, hints=[]) for label in range(3)]
    [1, 2, 5]
    >>> tree.height, tree.path(0)
    (2, [0, 3, 1])
    >>> tree.add_label(3, hints=[2]), tree.path(3)
    (6, [0, 4, 6])
    """

    state_settings = ("cluster_size", "fan_out")
    state_fields = ("root", "height")

    def __init__(self, *, cluster_size: int = 16, fan_out: int = 16) -> None:
        if cluster_size < 2 or fan_out < 2:
            raise ValueError("cluster_size and fan_out must be at least 2")
        self.cluster_size = cluster_size
        self.fan_out = fan_out
        self.parent: list[int] = [-1]
        self.children: list[list[int]] = [[]]
        self.heights: list[int] = [1]
        self.leaf_label: list[int] = [-1]  # label id of a leaf, -1 for inner nodes
        # Where a node was born: (parent then, how many children that parent had had). The pair never
        # repeats, so it names the node's place in a hashed weight table even after the node moves.
        self.origin: list[int] = [-1]
        self.serial: list[int] = [0]
        self._births: list[int] = [0]
        self.label_node: list[int] = []  # leaf node of each label id
        self.root = 0
        self.height = 1
        self._open: dict[int, list[int]] = {1: [0]}  # per height: nodes that may have room (checked on use)
        self.new_nodes: list[int] = []  # nodes created since the last drain (their models start cold)
        self._n_clusters = 1

    @property
    def n_clusters(self) -> int:
        return self._n_clusters

    @property
    def n_nodes(self) -> int:
        return len(self.parent)

    def _room(self, node: int) -> bool:
        limit = self.cluster_size if self.heights[node] == 1 else self.fan_out
        return len(self.children[node]) < limit

    def _new_node(self, height: int, parent: int, label: int = -1) -> int:
        node = len(self.parent)
        self.parent.append(parent)
        self.children.append([])
        self.heights.append(height)
        self.leaf_label.append(label)
        self._births.append(0)
        self.origin.append(parent)
        self.serial.append(self._birth(parent))
        if parent >= 0:
            self.children[parent].append(node)
        if height > 0:
            self._open.setdefault(height, []).append(node)
        self._n_clusters += height == 1
        self.new_nodes.append(node)
        return node

    def _birth(self, parent: int) -> int:
        if parent < 0:
            return 0
        self._births[parent] += 1
        return self._births[parent] - 1

    def _grow_root(self) -> None:
        """Put a new root above the old one: the root keeps its id, its children move to a new node."""
        moved = self._new_node(self.height, -1)
        self._n_clusters -= self.height == 1  # the root was the only cluster; the moved node is it now
        self.parent[moved] = self.root
        self.origin[moved], self.serial[moved] = self.root, self._birth(self.root)
        self.children[moved] = self.children[self.root]
        for child in self.children[moved]:
            self.parent[child] = moved
        self.children[self.root] = [moved]
        self.height += 1
        self.heights[self.root] = self.height
        open_at_old = self._open.get(self.height - 1, [])
        self._open[self.height - 1] = [moved if n == self.root else n for n in open_at_old]
        self._open[self.height] = [self.root]

    def _node_with_room(self, height: int, preferred: Sequence[int]) -> int:
        """A node at ``height`` that can take one more child (created, and the tree grown, if needed)."""
        for node in preferred:
            if self.heights[node] == height and self._room(node):
                return node
        if height > self.height:
            self._grow_root()
            return self.root
        candidates = self._open.get(height, [])
        while candidates and not self._room(candidates[-1]):
            candidates.pop()
        if candidates:
            return candidates[-1]
        above = self._node_with_room(height + 1, [self.parent[n] for n in preferred if self.parent[n] >= 0])
        return self._new_node(height, above)

    def add_label(self, label: int, hints: Sequence[int], routed: Sequence[int] = ()) -> int:
        """Add ``label`` (the next label id) as a leaf; returns its node.

        ``hints`` are known labels it occurs with, ``routed`` clusters the document was routed to (best
        first).
        """
        if label != len(self.label_node):
            raise ValueError(
                f"labels must be added in id order: expected {len(self.label_node)}, got {label}"
            )
        hinted = [self.parent[self.label_node[h]] for h in hints if h < len(self.label_node)]
        clusters = hinted + [c for c in routed if self.heights[c] == 1]
        cluster = next((c for c in clusters if self._room(c)), -1)
        if cluster < 0:
            hosts = [self.parent[c] for c in clusters if self.parent[c] >= 0]
            host = next((h for h in hosts if self._room(h)), -1)
            cluster = self._new_node(1, host) if host >= 0 else self._node_with_room(1, [])
        node = self._new_node(0, cluster, label)
        self.label_node.append(node)
        return node

    def path(self, label: int) -> list[int]:
        """The nodes from the root down to ``label``'s leaf."""
        node = self.label_node[label]
        out = [node]
        while self.parent[node] >= 0:
            node = self.parent[node]
            out.append(node)
        return out[::-1]

    def drain_new_nodes(self) -> list[int]:
        nodes, self.new_nodes = self.new_nodes, []
        return nodes

    def _save_state(self, state: State) -> None:
        state.meta["open"] = {str(h): nodes for h, nodes in self._open.items()}
        state.arrays.update(
            {
                "parent": np.asarray(self.parent, dtype=np.int64),
                "heights": np.asarray(self.heights, dtype=np.int64),
                "leaf_label": np.asarray(self.leaf_label, dtype=np.int64),
                "origin": np.asarray(self.origin, dtype=np.int64),
                "serial": np.asarray(self.serial, dtype=np.int64),
                "births": np.asarray(self._births, dtype=np.int64),
                "label_node": np.asarray(self.label_node, dtype=np.int64),
                "child_counts": np.array([len(c) for c in self.children], dtype=np.int64),
                "children": np.asarray(
                    [child for children in self.children for child in children], dtype=np.int64
                ),
            }
        )

    def _load_state(self, state: State) -> None:
        arrays = state.arrays
        self._open = {int(h): [int(n) for n in nodes] for h, nodes in state.meta["open"].items()}
        self.parent = arrays["parent"].tolist()
        self.heights = arrays["heights"].tolist()
        self._n_clusters = self.heights.count(1)
        self.leaf_label = arrays["leaf_label"].tolist()
        self.origin = arrays["origin"].tolist()
        self.serial = arrays["serial"].tolist()
        self._births = arrays["births"].tolist()
        self.label_node = arrays["label_node"].tolist()
        ends = np.cumsum(arrays["child_counts"]).tolist()
        flat = arrays["children"].tolist()
        self.children = [
            flat[end - n : end] for end, n in zip(ends, arrays["child_counts"].tolist(), strict=False)
        ]
