"""A probabilistic label tree learner: per-document cost O(log labels), memory fixed by a hashed table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from labelflow.operators.base import Features, Label, MultiLabelClassifier, SparseVector
from labelflow.operators.drift.events import DriftEvent
from labelflow.operators.learners.candidate_relevance import CandidateRelevance
from labelflow.operators.learners.feature_scaling import FeatureScaler
from labelflow.operators.learners.hashed_weights import HashedNodeWeights
from labelflow.operators.learners.label_index import LabelIndex
from labelflow.operators.learners.label_tree import LabelTree
from labelflow.operators.learners.neighbour_sketch import SketchedNeighbourVote
from labelflow.operators.learners.node_kernels import beam_search, training_nodes
from labelflow.operators.learners.pooled_cut import PooledCut
from labelflow.operators.learners.tree_drift import TreeDriftWatch
from labelflow.operators.state import State, Stateful

STATE_FORMAT = "labelflow.label-tree/1"
_GROWTH_CHECK = 1024  # learned instances between checks of the weight table's fill (a 1/61 sample)
# A new label starts all but absent within its cluster (p = 0.007): most labels of a long tail are rare,
# and below the negative floor a leaf takes no negative steps until its positives lift it. On EUR-Lex
# (first 20,000 documents, negative_floor 0.1) micro-F1 / P@5 were 0.5889 / 0.5130 at -1, 0.5922 /
# 0.5143 at -2, 0.5950 / 0.5159 at -3, 0.5987 / 0.5180 at -4, 0.5987 / 0.5200 at -5, 0.5981 / 0.5200
# at -6 and 0.5980 / 0.5200 at -8.
_LEAF_BIAS = -5.0


@dataclass(frozen=True)
class TreeShape:
    """What the runtime reports of the routing structure: a version that changes with it and its clusters."""

    version: int
    n_clusters: int
    tree: LabelTree = field(repr=False, compare=False)

    @property
    def clusters(self) -> tuple[tuple[int, ...], ...]:
        """The label ids of each cluster (computed on demand: ``O(labels)``)."""
        tree = self.tree
        return tuple(
            tuple(tree.leaf_label[leaf] for leaf in children)
            for node, children in enumerate(tree.children)
            if tree.heights[node] == 1 and children
        )


@dataclass
class _Search:
    """One instance's beam search, kept so that learning right after predicting does not repeat it."""

    keys: np.ndarray  # hashed feature keys
    values: np.ndarray
    labels: np.ndarray  # candidate label ids, best first (by the tree's probability)
    p: np.ndarray  # their probabilities
    leaf_p: np.ndarray  # their leaves' probabilities given their clusters (NaN: not evaluated)
    clusters: np.ndarray  # their clusters (node ids)
    relevance: np.ndarray  # their probabilities of being relevant (CandidateRelevance), or p without it
    order: np.ndarray  # candidate positions by relevance, best first (what is published and decided)
    routed: list[int]  # clusters the beam reached, best first
    evaluated: np.ndarray  # every node the search evaluated (the root and the children it expanded)
    conditional: np.ndarray  # their probabilities given their parent's (what learning needs)


class LabelTreeClassifier(Stateful, MultiLabelClassifier):
    """Online probabilistic label tree (PLT) over a label tree that grows with the label space.

    A label's probability is the product of the node probabilities on its path, each node a logistic
    model of "is any label under me relevant, given that my parent's are?" (Jasinska et al., ICML 2016;
    online: Jasinska-Kobus et al., AISTATS 2021). The tree's bottom nodes are clusters of labels that
    occur together (HOMER's meta-labels, see :class:`LabelTree`). Prediction is a beam search: at each
    level only the ``beam`` most probable nodes are expanded, so a document costs ``O(beam * fan_out *
    depth)`` node evaluations whatever the number of labels. Learning updates the nodes on the paths of
    the true labels (positives) and their siblings (negatives), as the PLT loss requires.

    All node models share one hashed weight table (:class:`HashedNodeWeights`): memory is bounded by
    ``2 ** bits`` whatever the number of labels. The search's candidates are then
    re-scored by :class:`CandidateRelevance`, an online logistic model of "is this candidate relevant?"
    (from its tree probability, rank, distance to the best candidate, how recently its label was
    relevant and how recently it was a wrong candidate, and a per-label bias); the published scores are those probabilities, best first, and the
    decision is one online micro-F1 cut over them (:class:`PooledCut`) plus, when the stream (almost)
    never has empty label sets, at least one label.

    Parameters
    ----------
    cluster_size, fan_out
        Largest label cluster, largest number of children of a routing node. On the whole EUR-Lex stream
        (negative_floor 0.1, leaf bias -5) fan-out 32 reached micro-F1 0.6981 and P@5 0.6405 against
        0.6954 / 0.6378 at 16 (a shallower tree: one routing level fewer), at 0.92x the documents per
        CPU-second; with the candidate re-scoring on, 64 reached 0.7066 / 0.6443 against 0.7046 / 0.6427
        at 32, at 0.99x (the power-law streams with 100k and 1M labels, first 20,000 documents: P@5
        0.4427 / 0.3648 against 0.4420 / 0.3628, as fast). Clusters of 32 scored 0.7053 / 0.6427 for
        0.95x the rate; over the first 20,000 documents clusters of 8 lost 0.0013 micro-F1 and 0.0016
        P@5 against 16.
    beam
        Nodes kept per level of the search (the last level keeps at least ``top_k`` labels). On the first
        20,000 EUR-Lex documents a beam of 16 scored as 8 (micro-F1 0.5859 against 0.5857, P@5 0.5090
        against 0.5086): the node models, not the search, bound the ranking.
    top_k
        Labels scored per prediction.
    bits, max_bits
        Size of the hashed weight table, ``2 ** bits`` weights at first, doubling up to ``2 ** max_bits``
        as it fills (8 bytes per weight with its step size: 512 MB at 26 bits; see :class:`HashedNodeWeights`
        on when it becomes resident). A doubled table starts as two copies of the smaller one, so the
        pairs that collided while it was small stay tied until they learn apart: starting small costs
        quality. Whole EUR-Lex stream (benchmarks/scale/run.py --runs eurlex:default), micro-F1 / P@5 /
        peak RSS: 0.7093 / 0.6482 / 938 MB starting at 20 bits (full within the first few hundred
        documents, at 26 bits after 6,000), 0.7107 / 0.6508 / 950 MB at 24, 0.7118 / 0.6517 / 976 MB
        at 26 (a quarter of the table in use after 20,000 documents, half at the end), as fast. At 26 the
        table never grows; at 24 a 1k-label stream stays in the smaller table and runs faster, which
        took the 100k-label stream under half its rate. Power-law streams at 26 (50,000 documents):
        1k labels 3,918 docs/CPU-s (3,829 at 20), 100k 2,255 (2,367), P@5 0.5119 (0.5039). Growing
        further does not pay: 28 bits (2 GB) scored as 26 over the first 20,000 documents (earlier
        settings: micro-F1 0.5858 against 0.5857, P@5 0.5089 against 0.5086).
    negative_floor
        Negatives whose gradient (their predicted probability) is at most this are not updated (nor
        positives within it of 1). Skipping the negatives a node already rejects both saves most of the
        update and helps the ranking: over the first 20,000 EUR-Lex documents (leaf bias -2) micro-F1 /
        P@5 were 0.5848 / 0.5076 at 0.001, 0.5857 / 0.5086 at 0.01, 0.5898 / 0.5130 at 0.05, 0.5922 /
        0.5143 at 0.1, 0.5902 / 0.5122 at 0.15 and 0.5855 / 0.5083 at 0.2. A floor of 0.01 or 0.03 for
        the routing nodes (0.1 for the leaves) lost 0.006 / 0.004 micro-F1, 0.2 about tied.
    max_features
        A sparse instance keeps only its heaviest features (after idf weighting, renormalised): node
        evaluations cost features x nodes. On EUR-Lex (~900 hashed uni- and bigrams a document), 128
        features ran 4x faster than all of them for 0.01 less micro-F1 over the first 5,000 documents;
        192 scored as 128 over the first 20,000 (micro-F1 0.5849, P@5 0.5089).
    learning_rate, adagrad_offset
        AdaGrad step size ``learning_rate / sqrt(offset + sum of squared gradients)`` per weight. Inputs
        have unit norm, so single values are small; on the first 5,000 EUR-Lex documents micro-F1 was
        0.35 / 0.45 / 0.48 / 0.49 / 0.45 at rates 0.5 / 2 / 4 / 8 / 16, and 4 kept P@1 best. Over the
        first 20,000 (negative floor 0.1) rate 3 and 6 lost 0.002 and 0.009 micro-F1 against 4, offset
        0.1 and 3 lost 0.019 and 0.016 against 1.
    idf
        Online inverse document frequency weighting of sparse features (see :class:`FeatureScaler`).
        Without it the first 20,000 EUR-Lex documents scored micro-F1 0.5139 and P@5 0.4466 (0.5857 /
        0.5086 with it).
    at_least_one
        ``"auto"`` (when under 1% of learned label sets were empty), ``True`` or ``False``.
    neighbours, neighbour_weight, neighbour_window
        Off by default (0): the ``neighbours`` most similar of the last ``neighbour_window`` documents
        vote for their labels (:class:`SketchedNeighbourVote`), mixed into the candidates' scores with
        ``neighbour_weight``. On EUR-Lex (16, 0.3, 2,048) it added 0.01 P@5 and 0.014 micro-F1 over
        the first 3,000 documents but about nothing after 19,000 (P@5 0.499, micro-F1 0.583), for 25%
        more CPU time.
    candidate_relevance
        Re-score the candidates with :class:`CandidateRelevance` (else publish and cut the tree's own
        probabilities). On EUR-Lex 57k (year order, whole stream, the default learner) with the ranking
        settings of 5e3c633: micro-F1 0.7093 and P@5 0.6482 (without the cluster and leaf features 0.7070
        and 0.6447), for ~4% more CPU time than the tree's own probabilities. Before those ranking
        settings it raised micro-F1 0.6897 -> 0.6994 and P@5 0.6321 -> 0.6383; an offline replay of
        those candidates credited the recency of the label's last relevance with about +0.0045
        micro-F1, the per-label bias +0.002, the recency of its last irrelevant candidacy +0.0022, rank
        and the distance to the best candidate +0.0005.
    watch_drift
        Test the tree's decisions for performance drift per label cluster and globally
        (:class:`TreeDriftWatch`); the events (alerts) come out of :meth:`drain_events`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> model = LabelTreeClassifier(bits=16)
    >>> for _ in range(300):
    ...     topic = int(rng.integers(2))
    ...     x = rng.normal(size=4).astype(np.float32) + np.float32(3 * topic)
    ...     model.learn_one(x, ["sports", "ball"] if topic else ["politics"])
    >>> sorted(model.predict_one(np.full(4, 3.0, dtype=np.float32)))
    ['ball', 'sports']
    >>> sorted(model.predict_one(np.zeros(4, dtype=np.float32)))
    ['politics']
    """

    state_header = {"format": STATE_FORMAT}
    state_settings_key = "settings"
    state_settings = (
        "cluster_size",
        "fan_out",
        "beam",
        "top_k",
        "bits",
        "max_bits",
        "negative_floor",
        "max_features",
        "learning_rate",
        "adagrad_offset",
        "idf",
        "at_least_one",
        "neighbours",
        "neighbour_weight",
        "neighbour_window",
        "candidate_relevance",
        "watch_drift",
    )
    state_fields = ("n_learned", "n_empty")
    state_children = ("label_index", "tree", "weights", "scaler", "cut")
    state_keys = {"label_index": "labels"}

    def __init__(
        self,
        *,
        cluster_size: int = 16,
        fan_out: int = 64,
        beam: int = 8,
        top_k: int = 10,
        bits: int = 26,
        max_bits: int = 26,
        negative_floor: float = 0.1,
        max_features: int | None = 128,
        learning_rate: float = 4.0,
        adagrad_offset: float = 1.0,
        idf: bool = True,
        at_least_one: bool | str = "auto",
        neighbours: int = 0,
        neighbour_weight: float = 0.3,
        neighbour_window: int = 2048,
        candidate_relevance: bool = True,
        watch_drift: bool = True,
    ) -> None:
        if at_least_one not in (True, False, "auto"):
            raise ValueError(f"at_least_one must be True, False or 'auto', not {at_least_one!r}")
        if beam < 1 or top_k < 1:
            raise ValueError("beam and top_k must be at least 1")
        self.cluster_size = cluster_size
        self.fan_out = fan_out
        self.beam = beam
        self.top_k = top_k
        self.bits = bits
        self.max_bits = max_bits
        self.negative_floor = negative_floor
        self.max_features = max_features
        self.learning_rate = learning_rate
        self.adagrad_offset = adagrad_offset
        self.idf = idf
        self.at_least_one = at_least_one
        self.neighbours = neighbours
        self.neighbour_weight = neighbour_weight
        self.neighbour_window = neighbour_window
        self.candidate_relevance = candidate_relevance
        self.relevance = CandidateRelevance() if candidate_relevance else None
        self.watch_drift = watch_drift
        self.drift = TreeDriftWatch() if watch_drift else None
        self._events: list[DriftEvent] = []
        self.votes = (
            SketchedNeighbourVote(window=neighbour_window, k=neighbours)
            if neighbours and neighbour_weight > 0
            else None
        )
        self.tree = LabelTree(cluster_size=cluster_size, fan_out=fan_out)
        self.weights = HashedNodeWeights(
            bits=bits, max_bits=max_bits, learning_rate=learning_rate, adagrad_offset=adagrad_offset
        )
        self.weights.add_nodes(self.tree.n_nodes)
        self.tree.drain_new_nodes()
        # The tree's structure as arrays for the compiled search (a copy of its lists, kept in step by
        # _add_new_nodes): children per node, padded to the widest node; leaf labels.
        width = max(cluster_size, fan_out)
        self._child_table = np.zeros((0, width), dtype=np.int32)
        self._child_count = np.zeros(0, dtype=np.int32)
        self._leaf_label = np.zeros(0, dtype=np.int64)
        self._parent = np.zeros(0, dtype=np.int64)
        self._mark = np.zeros(0, dtype=np.uint8)  # scratch of the compiled training-set builder
        self._label_leaf = np.zeros(0, dtype=np.int64)  # leaf node of each label id (a leaf never moves)
        self._n_label_leaves = 0
        self._copy_rows(range(self.tree.n_nodes))
        self.label_index = LabelIndex()
        self.scaler = FeatureScaler(idf=idf)
        self.cut = PooledCut()
        self.n_learned = 0
        self.n_empty = 0
        self._cached: tuple[Features, _Search] | None = None
        self._scratch = np.zeros(0, dtype=np.float64)  # per node: the last search's probability, or NaN

    # ------------------------------------------------------------------ label space

    @property
    def labels(self) -> list[Label]:
        return self.label_index.names

    @property
    def n_labels(self) -> int:
        return len(self.label_index)

    @property
    def partition(self) -> TreeShape:
        return TreeShape(
            version=self.tree.n_nodes, n_clusters=self.tree.n_clusters if self.n_labels else 0, tree=self.tree
        )

    def drain_events(self) -> list[DriftEvent]:
        events, self._events = self._events, []
        return events

    def _cluster_of(self, label: int) -> int:
        return int(self._parent[self._label_leaf[label]])

    def _cluster_names(self, cluster: int) -> list[str]:
        name, leaf_label = self.label_index.name, self.tree.leaf_label
        return [str(name(leaf_label[leaf])) for leaf in self.tree.children[cluster]]

    # ------------------------------------------------------------------ prediction

    def _sparse(self, x: Features) -> tuple[np.ndarray, np.ndarray]:
        scaled = self.scaler.transform(x)
        if isinstance(scaled, SparseVector):
            indices, values = scaled.indices, scaled.values
        else:
            indices = np.flatnonzero(scaled)
            values = scaled[indices].astype(np.float32)
        if (
            self.max_features is not None
            and isinstance(scaled, SparseVector)
            and indices.shape[0] > self.max_features
        ):
            # The heaviest features (after idf weighting) carry most of a long document's signal; the
            # cost of every node evaluation is linear in the features kept.
            keep = np.argpartition(-np.abs(values), self.max_features - 1)[: self.max_features]
            keep.sort()
            indices, values = indices[keep], values[keep]
            values = values / max(float(np.sqrt(np.dot(values, values))), 1e-12)
        return indices, values

    def _search(self, x: Features) -> _Search:
        if self._cached is not None and self._cached[0] is x:
            return self._cached[1]
        indices, values = self._sparse(x)
        weights, tree = self.weights, self.tree
        keys = weights.feature_keys(indices)
        frontier, p, evaluated, conditional, routed = beam_search(
            weights.weights,
            weights.bias,
            weights.node_keys,
            weights.mask,
            keys,
            values,
            self._child_table,
            self._child_count,
            tree.root,
            tree.height,
            self.beam,
            max(self.beam, self.top_k),
        )
        labels = self._leaf_label[frontier]
        if self.votes is not None:
            # The tree's candidates and the recent neighbours' labels, scored by a mix of the tree's
            # probability (0 below the beam) and the neighbours' vote.
            width = max(self.beam, self.top_k)
            labels, p = self.votes.mix(keys, values, labels, p, self.neighbour_weight, width)
        leaves = self._label_leaf[labels]
        leaf_p = self._known(evaluated, conditional, leaves)
        clusters = self._parent[leaves]
        relevance = p if self.relevance is None else self.relevance.relevance(p, labels, leaf_p, clusters)
        search = _Search(
            keys=keys,
            values=values,
            labels=labels,
            p=p,
            leaf_p=leaf_p,
            clusters=clusters,
            relevance=relevance,
            order=np.argsort(-relevance, kind="stable"),
            routed=routed.tolist(),
            evaluated=evaluated,
            conditional=conditional,
        )
        self._cached = (x, search)
        return search

    def _force_one(self) -> bool:
        if self.at_least_one == "auto":
            return self.n_learned >= 20 and self.n_empty < 0.01 * self.n_learned
        return bool(self.at_least_one)

    def _decide(self, search: _Search) -> list[int]:
        """The candidates whose relevance passes the cut, best first (the best one alone when none does and
        at least one label is due)."""
        order = search.order
        chosen = search.labels[order[search.relevance[order] >= self.cut.cut]].tolist()
        if not chosen and search.labels.size and self._force_one():
            chosen = [int(search.labels[order[0]])]
        return chosen

    def predict_with_scores(self, x: Features) -> tuple[set[Label], dict[Label, float]]:
        """The decided label set and the probabilities of the decided and the ``top_k`` best labels (every
        other label's is lower)."""
        search = self._search(x)
        name = self.label_index.name
        decided = self._decide(search)
        shown = search.order[: max(self.top_k, len(decided))]  # the decided ones lead
        scores = {
            name(label): float(p)
            for label, p in zip(search.labels[shown].tolist(), search.relevance[shown].tolist(), strict=True)
        }
        return {name(label) for label in decided}, scores

    def predict_with_scores_many(self, xs: Sequence[Features]) -> list[tuple[set[Label], dict[Label, float]]]:
        return [self.predict_with_scores(x) for x in xs]

    def predict_proba_one(self, x: Features) -> dict[Label, float]:
        return self.predict_with_scores(x)[1]

    def predict_one(self, x: Features) -> set[Label]:
        return self.predict_with_scores(x)[0]

    def predict_top(self, x: Features, k: int) -> list[tuple[Label, float]]:
        """Up to ``k`` most probable labels (at most ``max(beam, top_k)``) with their probabilities."""
        search = self._search(x)
        name = self.label_index.name
        best = search.order[:k]
        return [
            (name(label), float(p))
            for label, p in zip(search.labels[best].tolist(), search.relevance[best].tolist(), strict=True)
        ]

    # ------------------------------------------------------------------ learning

    def learn_one(self, x: Features, y: Iterable[Label]) -> None:
        search = self._search(x)
        n_before = self.n_labels
        y = list(y)
        new = sum(1 for name in set(y) if name not in self.label_index)
        if new:
            # All or nothing: the memory for the new labels' nodes (a leaf each, plus at most a new
            # cluster and routing path each, and a new root) is taken before any label is registered.
            self.weights.reserve(self.weights.n_nodes + new * (self.tree.height + 2) + 1)
        label_ids = self.label_index.ids(y)
        known = [label for label in label_ids if label < n_before]
        for label in label_ids:
            if label >= n_before:
                self.tree.add_label(label, hints=known, routed=search.routed)
                known.append(label)
        self._add_new_nodes()
        if self.drift is not None:
            self._watch_drift(search, label_ids, n_before)
        if n_before:
            truth = set(label_ids)
            relevant = np.array([label in truth for label in search.labels.tolist()], dtype=bool)
            # true labels the search did not reach (new ones included) are false negatives at any cut
            self.cut.update(search.relevance, relevant, missed=len(label_ids) - int(relevant.sum()))
            if self.relevance is not None:
                self.relevance.learn(
                    search.p, search.labels, relevant, search.leaf_p, search.clusters, search.relevance
                )
        if self.relevance is not None:
            self.relevance.observe(label_ids)
        nodes, targets = self._training_nodes(label_ids)
        weights = self.weights
        # The search already evaluated most training nodes (the children of the nodes it expanded) with
        # the same weights: only the others (positives it did not reach, new nodes) are evaluated here.
        p = self._known(search.evaluated, search.conditional, nodes)
        unknown = np.flatnonzero(np.isnan(p))
        if unknown.size:
            p[unknown] = weights.probabilities(search.keys, search.values, nodes[unknown])
        # A node whose gradient is under the floor (a negative the node already rejects) would move its
        # weights by almost nothing: skipping it saves most of the update and keeps the table from
        # filling with near-zero weights.
        weights.learn(search.keys, search.values, nodes, p - targets, self.negative_floor)
        if self.votes is not None:
            self.votes.learn(search.keys, search.values, label_ids)
        self.scaler.learn_one(x)
        self.n_learned += 1
        if self.n_learned % _GROWTH_CHECK == 0:
            weights.maybe_grow()
        self.n_empty += not label_ids
        self._cached = None

    def _watch_drift(self, search: _Search, label_ids: list[int], n_before: int) -> None:
        """Test the decision made for this instance (the search's, at the cut it was made with) against
        its labels; labels new to the model count as missed, and their clusters' events name them."""
        drift = self.drift
        assert drift is not None
        for cluster in {self._cluster_of(label) for label in label_ids if label >= n_before}:
            drift.relabel(cluster, self._cluster_names(cluster))
        decided = self._decide(search) if n_before else []
        self._events += drift.observe(
            decided, label_ids, self._cluster_of, self._cluster_names, position=self.n_learned
        )

    def add_label_groups(self, groups: Iterable[Sequence[Label]]) -> None:
        """Add labels before any instance shows them, each group's labels together (e.g. the label clusters
        of a learner this one takes over from). Their models start cold and learn when the labels occur."""
        for group in groups:
            placed: list[int] = []
            for name in group:
                if name in self.label_index:
                    continue
                label = self.label_index.ids([name])[0]
                self.tree.add_label(label, hints=placed)
                placed.append(label)
        self._add_new_nodes()
        self._cached = None

    def _known(self, evaluated: np.ndarray, conditional: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """The probabilities (given the parent's) that a search computed for ``nodes`` (``conditional`` of
        the ``evaluated`` nodes), NaN where it did not evaluate a node."""
        if self._scratch.shape[0] < self.weights.n_nodes:
            self._scratch = np.full(max(self.weights.n_nodes, 2 * self._scratch.shape[0]), np.nan)
        self._scratch[evaluated] = conditional
        p = self._scratch[nodes]
        self._scratch[evaluated] = np.nan
        return p

    def _copy_rows(self, nodes: Iterable[int]) -> None:
        """Copy these nodes' children and leaf labels from the tree into the search's arrays."""
        tree = self.tree
        if self._child_count.shape[0] < tree.n_nodes:
            capacity = max(tree.n_nodes, 2 * self._child_count.shape[0], 64)
            extra = capacity - self._child_count.shape[0]
            self._child_table = np.concatenate(
                [self._child_table, np.zeros((extra, self._child_table.shape[1]), dtype=np.int32)]
            )
            self._child_count = np.concatenate([self._child_count, np.zeros(extra, dtype=np.int32)])
            self._leaf_label = np.concatenate([self._leaf_label, np.full(extra, -1, dtype=np.int64)])
            self._parent = np.concatenate([self._parent, np.full(extra, -1, dtype=np.int64)])
            self._mark = np.zeros(capacity, dtype=np.uint8)
        children, leaf_label, parent = tree.children, tree.leaf_label, tree.parent
        for node in nodes:
            kids = children[node]
            self._child_table[node, : len(kids)] = kids
            self._child_count[node] = len(kids)
            self._leaf_label[node] = leaf_label[node]
            self._parent[node] = parent[node]
            for child in kids:  # a new root level changes its children's parent
                self._parent[child] = node
        n_labels, known = len(tree.label_node), self._n_label_leaves
        if n_labels > known:
            if self._label_leaf.shape[0] < n_labels:
                grown = np.zeros(max(n_labels, 2 * self._label_leaf.shape[0], 64), dtype=np.int64)
                grown[:known] = self._label_leaf[:known]
                self._label_leaf = grown
            self._label_leaf[known:n_labels] = tree.label_node[known:]
            self._n_label_leaves = n_labels

    def _save_state(self, state: State) -> None:
        if self.votes is not None:
            state.attach("neighbours", self.votes.state())
        if self.relevance is not None:
            state.attach("relevance", self.relevance.state())
        if self.drift is not None:
            state.attach("drift", self.drift.state())

    def _load_state(self, state: State) -> None:
        self._copy_rows(range(self.tree.n_nodes))
        children = state.meta.get("children", {})
        if self.votes is not None and "neighbours" in children:
            self.votes = SketchedNeighbourVote.from_state(state.detach("neighbours"))
        # (a state written before the neighbour vote existed starts with an empty window)
        if self.relevance is not None and "relevance" in children:
            self.relevance = CandidateRelevance.from_state(state.detach("relevance"))
        # (a state written before the relevance model existed starts with a fresh one: the identity on the
        # tree's probabilities, so it decides as that state's learner did until it learns)
        if self.drift is not None and "drift" in children:
            self.drift = TreeDriftWatch.from_state(state.detach("drift"))
        # (one written before the drift watch existed starts with empty windows)

    def _add_new_nodes(self) -> None:
        """Give the tree's new nodes their models: siblings get consecutive table keys (cache locality)."""
        new = self.tree.drain_new_nodes()
        if not new:
            return
        tree, weights = self.tree, self.weights
        # Rows whose children changed: the new nodes', their parents' (a node is born under its parent)
        # and the root's (a new root level moves its children to a new node).
        self._copy_rows({*new, *(tree.parent[node] for node in new if tree.parent[node] >= 0), tree.root})
        origins = np.array([tree.origin[node] for node in new], dtype=np.int64)
        serials = np.array([tree.serial[node] for node in new], dtype=np.int64)
        keys = weights.hash_keys(origins + 1) + serials
        weights.add_nodes(len(new), keys=keys)
        leaves = [node for node in new if tree.heights[node] == 0]
        weights.bias[leaves] = _LEAF_BIAS

    def _training_nodes(self, label_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """PLT's training set of one instance: every node on a true label's path is positive, and every
        child of a positive node that is not positive is negative (the root alone, for no labels)."""
        if not label_ids:
            return np.array([self.tree.root], dtype=np.int64), np.zeros(1, dtype=np.float64)
        leaves = self._label_leaf[label_ids]
        return training_nodes(leaves, self._parent, self._child_table, self._child_count, self._mark)

    # ------------------------------------------------------------------ state
