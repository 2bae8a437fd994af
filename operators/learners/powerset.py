"""Joint decoding of each label cluster over the label subsets the stream has shown (label powerset)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelflow.operators.learners import powerset_kernels as kernels
from labelflow.operators.state import State, Stateful

LabelSet = tuple[int, ...]
#: The compiled view as the kernels read it: row labels, row starts, row lengths, each cluster's first row
#: (and the end), the scores (see ``powerset_kernels.decode_one``), each label's cluster.
_Tables = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_COMPILED = (
    "row_labels",
    "row_starts",
    "row_lengths",
    "row_dependence",
    "row_cluster",
    "clusters_with_rows",
    "cluster_row_starts",
    "empty_dependence",
    "novel_log_p",
    "prior_logit",
)


class ClusterLabelSets:
    """The faded counts of the non-empty label subsets observed within one cluster.

    The empty subset's count is implicit (all instances minus the others), so learning touches only the
    clusters that contain a positive label of the instance.
    """

    def __init__(self, labels: Sequence[int]) -> None:
        self.labels = np.asarray(sorted(labels), dtype=np.int64)
        self.label_ids: list[int] = self.labels.tolist()
        self.local = {label: i for i, label in enumerate(self.label_ids)}
        self.rows: dict[LabelSet, int] = {}
        self.matrix = np.zeros((8, len(self.labels)), dtype=np.float32)
        self.counts = np.zeros(8, dtype=np.float64)
        self._flat: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_sets(self) -> int:
        return len(self.rows)

    def add(self, local_set: LabelSet, count: float) -> bool:
        """Count a subset (local label indices); True when it was never seen before."""
        row = self.rows.get(local_set)
        created = row is None
        if created:
            row = len(self.rows)
            if row == self.matrix.shape[0]:
                self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
                self.counts = np.concatenate([self.counts, np.zeros_like(self.counts)])
            self.rows[local_set] = row
            self.matrix[row, list(local_set)] = 1.0
            self._flat = None
        self.counts[row] += count
        return created

    def clear(self) -> None:
        self.rows.clear()
        self.counts[:] = 0.0
        self.matrix[:] = 0.0
        self._flat = None

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """The global label ids of every stored subset, concatenated in row order, and each row's length."""
        if self._flat is None:
            rows, cols = np.nonzero(self.matrix[: self.n_sets])
            self._flat = (self.labels[cols], np.bincount(rows, minlength=self.n_sets))
        return self._flat


def _project_table(source: ClusterLabelSets, target: ClusterLabelSets) -> None:
    """Add ``source``'s subset counts, restricted to ``target``'s labels, into ``target``."""
    shared = [
        (source.local[int(label)], target.local[int(label)])
        for label in target.labels
        if int(label) in source.local
    ]
    if not shared:
        return
    source_cols = np.array([s for s, _ in shared])
    target_cols = [t for _, t in shared]
    # Every row's shared labels at once, as Python lists: a numpy call per row costs more.
    present = (source.matrix[: source.n_sets, source_cols] > 0).tolist()
    counts = source.counts.tolist()
    for row in source.rows.values():
        local = [t for t, here in zip(target_cols, present[row], strict=True) if here]
        if local:
            target.add(tuple(sorted(local)), counts[row])


class LabelSetDecoder(Stateful):
    """Chooses, per label cluster, the most probable label subset given per-label evidence.

    Every cluster keeps the faded counts of the subsets of its labels seen in the stream. Given
    threshold-shifted log-odds ``s_l`` for each label, a subset ``S`` of a cluster scores
    ``sum_{l in S} s_l + prior_weight * dep(S)``, where ``dep(S)`` is ``log P(S)`` minus the log
    probability of ``S`` if the cluster's labels were independent: per-label scores already carry the
    labels' marginal priors, so only the dependence between labels is added. Candidates are the seen
    subsets, the empty subset, and the subset the per-label scores alone would pick (so combinations never
    seen before stay reachable, at the price of a novelty prior). With ``prior_weight = 0`` this is plain
    per-label thresholding.

    Parameters
    ----------
    prior_weight
        Weight of the label-dependence term.
    fading_factor
        Forgetting of subset counts, so the decoder follows changes in label co-occurrence.
    refresh_every
        Learned instances between refreshes of the compiled subset scores (and of newly seen subsets
        as candidates).

    >>> decoder = LabelSetDecoder(prior_weight=1.0)
    >>> decoder.set_partition(((0, 1), (2,)))
    >>> for _ in range(50):
    ...     decoder.learn([0, 1])
    ...     decoder.learn([2])
    >>> # Label 1 alone is weak, but {0, 1} always co-occurs: the joint decision includes it.
    >>> decoder.decode(np.array([2.0, -0.5, -3.0])).tolist()
    [True, True, False]
    """

    state_settings = ("prior_weight", "fading_factor", "refresh_every", "max_label_sets")
    state_fields = ("_total", "_weight", "n_learned", "n_empty", "_compiled", "_compiled_at")

    def __init__(
        self,
        *,
        prior_weight: float = 1.0,
        fading_factor: float = 0.9999,
        refresh_every: int = 25,
        max_label_sets: int = 200_000,
    ) -> None:
        self.prior_weight = prior_weight
        self.fading_factor = fading_factor
        self.refresh_every = refresh_every
        self._compiled = False
        self._compiled_at = 0
        self._structure_changed = True  # a subset was seen for the first time, or the partition changed
        # The flat layout needs a rebuild (the partition changed, counts were cleared); else the subsets
        # first seen since the last layout, as (cluster, local subset), are inserted into it.
        self._layout_stale = True
        self._appended: list[tuple[int, LabelSet]] = []
        self._choice = np.zeros((3, 0), dtype=np.int64)  # the decoding kernels' scratch (see _pack)
        self._work = np.zeros((2, 0), dtype=np.float64)
        none = np.zeros(0, dtype=np.int64)
        self._cluster_rows = np.zeros(1, dtype=np.int64)  # cluster c's rows: _cluster_rows[c] : [c + 1]
        self._row_counts: list[np.ndarray] = []
        self._tables: _Tables = (none, none, none, self._cluster_rows, np.zeros(0), none)
        self.max_label_sets = max_label_sets
        self._label_sets: dict[LabelSet, float] = {}
        self._total = 0.0
        self._weight = 1.0
        self._clusters: list[ClusterLabelSets] = []
        self._cluster_of = np.zeros(0, dtype=np.int64)
        self._place: list[tuple[ClusterLabelSets, int] | None] = []
        self._index_of: dict[ClusterLabelSets, int] = {}
        self._order = np.zeros(0, dtype=np.int64)
        self._starts = np.zeros(0, dtype=np.int64)
        self._seen_labels: set[int] = set()
        self.n_learned = 0
        self.n_empty = 0.0

    @property
    def n_clusters(self) -> int:
        return len(self._clusters)

    def set_partition(self, clusters: Sequence[Sequence[int]]) -> None:
        """Adopt a new partition, carrying subset counts over to the new clusters.

        A new cluster whose previously seen labels all belonged to one old cluster (a split, or labels
        never seen before joining) takes that cluster's counts projected onto its labels; only clusters
        that join labels from several old clusters (merges) are rebuilt from the stored label sets.
        """
        old_tables = self._clusters
        old_cluster_of = self._cluster_of
        kept = {tuple(c.label_ids): c for c in old_tables}
        fresh: list[ClusterLabelSets] = []
        from_store: list[ClusterLabelSets] = []
        for labels in clusters:
            key = tuple(sorted(int(label) for label in labels))
            table = kept.get(key)
            if table is None:
                table = ClusterLabelSets(key)
                owners: set[int] = set()
                for label in key:
                    if label in self._seen_labels:
                        owner = int(old_cluster_of[label]) if label < old_cluster_of.shape[0] else -1
                        owners.add(owner)
                if len(owners) == 1 and -1 not in owners:
                    _project_table(old_tables[owners.pop()], table)
                elif owners:  # a merge, or labels no old cluster covered (e.g. a restored decoder)
                    from_store.append(table)
            fresh.append(table)
        self._clusters = fresh
        self._index_of = {table: i for i, table in enumerate(fresh)}
        n_labels = max((int(max(c)) + 1 for c in clusters if len(c)), default=0)
        self._cluster_of = np.full(n_labels, -1, dtype=np.int64)
        for i, table in enumerate(fresh):
            self._cluster_of[table.labels] = i
        # Each label's cluster table and place in it, as Python objects: learn reads a few per instance.
        self._place = [
            (fresh[c], fresh[c].local[label]) if c >= 0 else None
            for label, c in enumerate(self._cluster_of.tolist())
        ]
        self._order = np.concatenate([t.labels for t in fresh]) if fresh else np.zeros(0, dtype=np.int64)
        sizes = np.array([len(t.labels) for t in fresh], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        if from_store:
            self._project(from_store)
        self._structure_changed = True
        self._layout_stale = True
        self._appended = []
        self._compiled = False

    def _project(self, tables: list[ClusterLabelSets]) -> None:
        owner = {label: table for table in tables for label in table.local}
        for label_set, count in self._label_sets.items():
            parts: dict[int, list[int]] = {}
            for label in label_set:
                table = owner.get(label)
                if table is not None:
                    parts.setdefault(id(table), []).append(table.local[label])
            for table in tables:
                local = parts.get(id(table))
                if local:
                    table.add(tuple(sorted(local)), count)

    def learn(self, label_ids: Sequence[int]) -> None:
        """Count one instance's label set (ids must be covered by the current partition)."""
        w = self._weight
        key = tuple(sorted(label_ids))
        self._label_sets[key] = self._label_sets.get(key, 0.0) + w
        self._seen_labels.update(key)
        self._total += w
        self.n_learned += 1
        if not key:
            self.n_empty += 1
        parts: dict[ClusterLabelSets, list[int]] = {}
        place = self._place
        for label in key:
            found = place[label]
            if found is None:
                raise KeyError(f"label {label} is in no cluster of the partition")
            parts.setdefault(found[0], []).append(found[1])
        for table, local in parts.items():
            local_set = tuple(local)
            if table.add(local_set, w):
                self._structure_changed = True
                if not self._layout_stale:
                    self._appended.append((self._index_of[table], local_set))
        self._weight /= self.fading_factor
        if self._weight > 1e100:
            self._rescale()
        if len(self._label_sets) > self.max_label_sets:
            self._prune()

    def reset_labels(self, labels: Sequence[int]) -> None:
        """Forget the subset counts of the clusters holding ``labels`` (their co-occurrence drifted)."""
        wanted = set(int(label) for label in labels)
        for table in self._clusters:
            if wanted.intersection(table.local):
                table.clear()
        self._structure_changed = True
        self._layout_stale = True
        self._appended = []
        self._compiled = False

    def _rescale(self) -> None:
        scale = 1.0 / self._weight
        self._label_sets = {k: v * scale for k, v in self._label_sets.items()}
        self._total *= scale
        for table in self._clusters:
            table.counts *= scale
        self._weight = 1.0

    def _prune(self) -> None:
        # Keep the heaviest half: rare, old subsets carry the least evidence.
        items = sorted(self._label_sets.items(), key=lambda kv: kv[1], reverse=True)
        self._label_sets = dict(items[: self.max_label_sets // 2])

    def _compile(self) -> None:
        """Score every cluster's subsets, flattened into arrays grouped by cluster.

        ``dep(S) = log P(S) - sum_{l in S} logit P(l)``, with ``P(S)`` the subset's faded count over
        ``total + k + 1`` (``k`` subsets seen in its cluster, plus one pseudo-count for novelty) and
        ``P(l)`` the label's marginal. Rebuilt every ``refresh_every`` learned instances (and after a
        partition change) rather than per instance: the scores move slowly, and decoding reads them as
        they are. The flat layout is rebuilt only when a subset is seen for the first time.
        """
        if self._structure_changed:
            self._flatten()
        n_rows = self._row_cluster.shape[0]
        counts = np.concatenate(self._row_counts) if self._row_counts else np.zeros(0, dtype=np.float64)
        ratios, marginal = kernels.dependence_ratios(
            counts,
            self._row_labels,
            self._row_starts,
            self._row_lengths,
            self._cluster_rows,
            self._total,
            self._cluster_of.shape[0],
        )
        scores = kernels.dependence_scores(
            np.log(ratios), np.log(marginal), np.log1p(-marginal), self._row_labels, self._row_starts, n_rows
        )
        self._compiled_at = self.n_learned
        self._compiled = True
        self._pack(scores)

    def _flatten(self) -> None:
        if self._layout_stale:
            self._flatten_all()
        else:
            self._insert_appended()
        self._appended = []
        self._layout_stale = False
        self._structure_changed = False

    def _flatten_all(self) -> None:
        pieces = [table.flat() for table in self._clusters]
        sets = np.array([table.n_sets for table in self._clusters], dtype=np.int64)
        lengths = np.concatenate([length for _, length in pieces]) if pieces else np.zeros(0, dtype=np.int64)
        self._row_labels = (
            np.concatenate([labels for labels, _ in pieces]) if pieces else np.zeros(0, dtype=np.int64)
        )
        self._row_lengths = lengths
        self._row_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._row_cluster = np.repeat(np.arange(len(self._clusters), dtype=np.int64), sets)
        self._set_cluster_rows(sets)
        # Views of the tables' counts, one per cluster: they change in place until a subset is first seen
        # in the cluster (a longer view, and a new array where the table grew).
        self._row_counts = [table.counts[: table.n_sets] for table in self._clusters]

    def _set_cluster_rows(self, sets: np.ndarray) -> None:
        self._cluster_rows = np.concatenate([[0], np.cumsum(sets)]).astype(np.int64)  # each cluster's rows
        self._clusters_with_rows = np.flatnonzero(sets)
        self._cluster_row_starts = self._cluster_rows[self._clusters_with_rows]

    def _insert_appended(self) -> None:
        """The layout :meth:`_flatten_all` would build, from the current one and the subsets first seen
        since: each is its cluster's last row (tables only append), so one compiled pass puts it after
        its cluster's rows instead of a concatenation over every cluster."""
        if not self._appended:
            return
        # By cluster, first seen order within one (sorted is stable).
        appended = sorted(self._appended, key=lambda cluster_and_set: cluster_and_set[0])
        clusters = [cluster for cluster, _ in appended]
        labels: list[int] = []
        for cluster, local_set in appended:
            ids = self._clusters[cluster].label_ids
            labels += [ids[i] for i in local_set]
        (
            self._row_labels,
            self._row_starts,
            self._row_lengths,
            self._row_cluster,
            self._cluster_rows,
            self._clusters_with_rows,
            self._cluster_row_starts,
        ) = kernels.insert_rows(
            self._row_labels,
            self._row_lengths,
            self._cluster_rows,
            np.array(clusters, dtype=np.int64),
            np.array([len(local_set) for _, local_set in appended], dtype=np.int64),
            np.array(labels, dtype=np.int64),
        )
        for cluster in set(clusters):
            table = self._clusters[cluster]
            self._row_counts[cluster] = table.counts[: table.n_sets]

    def decode(self, shifted_logits: np.ndarray) -> np.ndarray:
        """The decided labels (boolean mask) for threshold-shifted log-odds of every label."""
        return self.decode_one(shifted_logits)

    def _refresh_if_due(self) -> None:
        # Early in a stream every instance changes the subset statistics a lot: refresh each time, then
        # ever more rarely, up to every ``refresh_every`` instances.
        interval = min(self.refresh_every, 1 + self.n_learned // 40)
        if not self._compiled or self.n_learned - self._compiled_at >= interval:
            self._compile()

    def decode_one(self, shifted_logits: np.ndarray) -> np.ndarray:
        """:meth:`decode` of one instance: one compiled call scores every cluster's candidates."""
        s = np.ascontiguousarray(shifted_logits, dtype=np.float64)
        if self.prior_weight == 0.0 or not self._clusters or s.shape[0] != self._cluster_of.shape[0]:
            return s > 0
        self._refresh_if_due()
        out = np.empty(s.shape[0], dtype=bool)
        choice = self._choice
        if kernels.decode_one(s, self.prior_weight, *self._tables, choice, self._work, out):
            self._drop_subsets_seen_since_compiled(s, choice, out)
        return out

    def decode_many(self, shifted_logits: np.ndarray) -> np.ndarray:
        """:meth:`decode` of every row of an ``(instances, labels)`` array (one compiled call)."""
        s = np.ascontiguousarray(shifted_logits, dtype=np.float64)
        if self.prior_weight == 0.0 or not self._clusters or s.shape[1] != self._cluster_of.shape[0]:
            return s > 0
        self._refresh_if_due()
        out = np.empty(s.shape, dtype=bool)
        choices = np.empty((s.shape[0],) + self._choice.shape, dtype=np.int64)
        if kernels.decode_rows(s, self.prior_weight, *self._tables, choices, self._work, out):
            for row in range(s.shape[0]):
                self._drop_subsets_seen_since_compiled(s[row], choices[row], out[row])
        return out

    def _drop_subsets_seen_since_compiled(self, s: np.ndarray, choice: np.ndarray, out: np.ndarray) -> None:
        """Undo per-label decisions that are subsets first seen after the last compilation.

        The kernels know the compiled rows only; a subset seen since is no candidate at all until the
        next compilation (neither a row nor a novelty), so such a cluster falls back to its best
        compiled candidate. Nothing to check unless a subset was seen since.
        """
        if not self._structure_changed:
            return
        for cluster in np.flatnonzero(choice[0] == -2).tolist():
            table = self._clusters[cluster]
            if tuple(np.flatnonzero(s[table.labels] > 0).tolist()) not in table.rows:
                continue
            out[table.labels] = False
            row = int(choice[1, cluster])
            if row >= 0:
                start = int(self._row_starts[row])
                out[self._row_labels[start : start + int(self._row_lengths[row])]] = True

    def _pack(self, scores: np.ndarray) -> None:
        """The compiled view as the kernels read it (``scores`` as :func:`kernels.decode_one` reads them),
        with the named parts of the scores as views of it."""
        n_rows, n_clusters = int(self._cluster_rows[-1]), self._cluster_rows.shape[0] - 1
        self._tables = (
            self._row_labels,
            self._row_starts,
            self._row_lengths,
            self._cluster_rows,
            scores,
            self._cluster_of,
        )
        self._row_dependence = scores[:n_rows]
        self._empty_dependence = scores[n_rows : n_rows + n_clusters]
        self._novel_log_p = scores[n_rows + n_clusters : n_rows + 2 * n_clusters]
        self._prior_logit = scores[n_rows + 2 * n_clusters :]
        if self._choice.shape[1] != n_clusters:
            self._choice = np.zeros((3, n_clusters), dtype=np.int64)
            self._work = np.zeros((2, n_clusters), dtype=np.float64)

    def _save_state(self, state: State) -> None:
        keys = list(self._label_sets.keys())
        state.meta["clusters"] = [[int(label) for label in t.labels] for t in self._clusters]
        state.arrays["set_lengths"] = np.array([len(k) for k in keys], dtype=np.int64)
        state.arrays["set_labels"] = np.array([label for k in keys for label in k], dtype=np.int64)
        state.arrays["set_counts"] = np.array([self._label_sets[k] for k in keys], dtype=np.float64)
        # Each cluster's table as it is (rows in the order they were first seen, counts as accumulated):
        # tables rebuilt from the global subset counts would sum in another order and round differently,
        # and a restored decoder must decide exactly as the original would have.
        table_sets = [key for t in self._clusters for key in sorted(t.rows, key=t.rows.__getitem__)]
        state.arrays["table_n_sets"] = np.array([t.n_sets for t in self._clusters], dtype=np.int64)
        state.arrays["table_set_lengths"] = np.array([len(k) for k in table_sets], dtype=np.int64)
        state.arrays["table_set_labels"] = np.array(
            [label for k in table_sets for label in k], dtype=np.int64
        )
        state.arrays["table_counts"] = (
            np.concatenate([t.counts[: t.n_sets] for t in self._clusters])
            if self._clusters
            else np.zeros(0, dtype=np.float64)
        )
        if self._compiled:
            # The compiled view lags the counts by design; keeping it makes a restored decoder decide
            # exactly as the original would have.
            state.arrays.update({f"compiled/{name}": getattr(self, f"_{name}") for name in _COMPILED})

    def _restore_tables(self, clusters: list[list[int]], arrays: dict[str, np.ndarray]) -> None:
        self._label_sets, saved = {}, self._label_sets  # set_partition must not project the counts
        self.set_partition(clusters)
        self._label_sets = saved
        lengths = arrays["table_set_lengths"].tolist()
        labels = arrays["table_set_labels"].tolist()
        counts = arrays["table_counts"].tolist()
        row = at = 0
        for table, n_sets in zip(self._clusters, arrays["table_n_sets"].tolist(), strict=True):
            for _ in range(n_sets):
                table.add(tuple(labels[at : at + lengths[row]]), counts[row])
                at += lengths[row]
                row += 1

    def _load_state(self, state: State) -> None:
        lengths = state.arrays["set_lengths"]
        ends = np.cumsum(lengths)
        flat = state.arrays["set_labels"].tolist()
        for start, end, count in zip(
            (ends - lengths).tolist(), ends.tolist(), state.arrays["set_counts"].tolist(), strict=True
        ):
            self._label_sets[tuple(flat[start:end])] = count
        self._seen_labels = set(flat)
        compiled = self._compiled
        if "table_n_sets" in state.arrays:
            self._restore_tables(state.meta["clusters"], state.arrays)
        else:  # a state written before the tables were kept: rebuilt from the global counts
            self.set_partition(state.meta["clusters"])  # which forgets the compiled view: restored next
        if compiled:
            for name in _COMPILED:
                setattr(self, f"_{name}", state.arrays[f"compiled/{name}"])
            self._compiled = True
            rows_per_cluster = np.bincount(self._row_cluster, minlength=self._empty_dependence.shape[0])
            self._cluster_rows = np.concatenate([[0], np.cumsum(rows_per_cluster)]).astype(np.int64)
            self._pack(
                np.concatenate(
                    [self._row_dependence, self._empty_dependence, self._novel_log_p, self._prior_logit]
                ).astype(np.float64)
            )
