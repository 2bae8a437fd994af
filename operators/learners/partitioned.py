"""The default learner: per-label heads, recent neighbours and a learned stacker, decoded per label cluster."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from labelflow.operators.base import Features, Label, MultiLabelClassifier, ScoredLabels, SparseVector
from labelflow.operators.compiled import kernel
from labelflow.operators.drift.events import DriftEvent
from labelflow.operators.learners.drift_handling import Adaptation, DriftHandler
from labelflow.operators.learners.feature_scaling import (
    FeatureScaler,
    _count_documents,
    _idf_unit,
    _standardized,
    _welford_step,
)
from labelflow.operators.learners.growth import grow_last_axis
from labelflow.operators.learners.label_index import LabelIndex
from labelflow.operators.learners.linear import LinearHeads, _adagrad_step, _sparse_products
from labelflow.operators.learners.neighbour_kernels import (
    sketch,
    store,
    store_dense,
    unit,
    votes_dense,
    votes_sparse,
)
from labelflow.operators.learners.neighbours import Embedded, RecentNeighbours
from labelflow.operators.learners.powerset import LabelSetDecoder
from labelflow.operators.learners.thresholds import AdaptiveThresholds
from labelflow.operators.state import State, Stateful

if TYPE_CHECKING:
    from labelflow.operators.labels.clustering import LabelClusterer
    from labelflow.operators.labels.partition import Partition

STATE_FORMAT = "labelflow.partitioned/1"
_N_STACK_INPUTS = 4  # head log-odds, neighbour log-odds, label in the latest label set, bias
#: The drift detectors of :class:`DriftHandler` (all on by default; see ``drift_detectors``).
DRIFT_DETECTORS = ("performance", "label_prior", "label_dependence", "input")
_MAX_LOG_ODDS = float(np.log((1 - 1e-4) / 1e-4))  # probabilities are kept within [1e-4, 1 - 1e-4]


# The one-instance path is one compiled step over the per-label rows of one (5, labels) float32 block.
# Probabilities are kept within [1e-4, 1 - 1e-4]: log-odds within +-_MAX_LOG_ODDS.
_HEAD_P, _P, _Z, _SHIFTED, _HEAD_Z = range(5)
_F32_MAX_LOG_ODDS = np.float32(_MAX_LOG_ODDS)


@kernel
def _stack_forward(
    block: np.ndarray,
    bias: np.ndarray,
    votes: np.ndarray,
    recent: np.ndarray,
    stack: np.ndarray,
    threshold_log_odds: np.ndarray,
    inputs: np.ndarray,
) -> None:
    """From the heads' products without ``bias`` (``block[_HEAD_Z]``) and the neighbours' ``votes``
    (empty: none): the heads' log-odds and probabilities, the stacker inputs (head log-odds, neighbour
    log-odds, ``recent`` label set (empty: none), bias), the stacked log-odds and probabilities, and the
    decision margins against ``threshold_log_odds`` (empty: none)."""
    n = block.shape[1]
    low = np.float32(1e-4)
    high = np.float32(1 - 1e-4)
    one = np.float32(1.0)
    limit = np.float32(30.0)
    for i in range(n):
        head_z = block[_HEAD_Z, i] + bias[i]
        block[_HEAD_Z, i] = head_z
        inputs[i, 0] = min(max(head_z, -_F32_MAX_LOG_ODDS), _F32_MAX_LOG_ODDS)
        if votes.shape[0]:
            p = min(max(votes[i], low), high)
            inputs[i, 1] = np.log(p / (one - p))
        else:
            inputs[i, 1] = np.float32(0.0)
        inputs[i, 2] = recent[i] if recent.shape[0] else np.float32(0.0)
        inputs[i, 3] = one
        # pairwise, as numpy's einsum sums four products
        z = (inputs[i, 0] * stack[i, 0] + inputs[i, 1] * stack[i, 1]) + (
            inputs[i, 2] * stack[i, 2] + inputs[i, 3] * stack[i, 3]
        )
        block[_Z, i] = z
        bounded = min(max(z, -_F32_MAX_LOG_ODDS), _F32_MAX_LOG_ODDS)
        block[_SHIFTED, i] = bounded - threshold_log_odds[i] if threshold_log_odds.shape[0] else bounded
        block[_HEAD_P, i] = one / (one + np.exp(-min(max(head_z, -limit), limit)))
        block[_P, i] = one / (one + np.exp(-min(max(z, -limit), limit)))


@kernel
def _learn_labels(
    label_ids: np.ndarray,
    p: np.ndarray,
    inputs: np.ndarray,
    head_p: np.ndarray,
    stack: np.ndarray,
    stack_g2: np.ndarray,
    recent: np.ndarray,
    target: np.ndarray,
    gradient: np.ndarray,
    second: np.ndarray,
    second_g2: np.ndarray,
    race: np.ndarray,
) -> bool:
    """The per-label part of learning one instance with labels ``label_ids``: ``target`` (zeros in) the
    0/1 truth, the stackers' steps on the labels predicted (``p``: the leading stacker's; ``race``: the
    leader's and the ``second`` stacker's summed log-loss and step sizes, 0: no step, no second), the
    recent label set, and the heads' logistic gradient ``target - head_p`` (``head_p`` 0.5 for new labels).
    True when the second stacker's summed log-loss is now below the leader's."""
    for label in label_ids:
        target[label] = np.float32(1.0)
    n = p.shape[0]
    if race[2] != 0.0:
        _learn_stack(target[:n], p, inputs, stack, stack_g2, race[2])
    if race[3] != 0.0 and n:
        _learn_second_stack(target[:n], p, inputs, second, second_g2, race[3], race)
    half = np.float32(0.5)
    for i in range(target.shape[0]):
        recent[i] = target[i]
        gradient[i] = target[i] - (head_p[i] if i < head_p.shape[0] else half)
    return race[1] < race[0]


@kernel
def _learn_stack(
    target: np.ndarray,
    p: np.ndarray,
    inputs: np.ndarray,
    stack: np.ndarray,
    stack_g2: np.ndarray,
    learning_rate: float,
) -> None:
    """The stacker's AdaGrad step (offset 1) on the logistic loss of its prediction ``p``."""
    rate = np.float32(learning_rate)
    one = np.float32(1.0)
    for i in range(p.shape[0]):
        error = target[i] - p[i]
        for k in range(inputs.shape[1]):
            gradient = error * inputs[i, k]
            stack_g2[i, k] += gradient * gradient
            stack[i, k] += rate * gradient / np.sqrt(one + stack_g2[i, k])


@kernel
def _learn_second_stack(
    target: np.ndarray,
    p: np.ndarray,
    inputs: np.ndarray,
    stack: np.ndarray,
    stack_g2: np.ndarray,
    learning_rate: float,
    losses: np.ndarray,
) -> None:
    """The second stacker's prediction of the labels predicted (``p``: the leading stacker's) from the same
    ``inputs``, both stackers' log-loss on them added to ``losses`` (leader's, second's), then the second
    stacker's step on its own prediction."""
    n = p.shape[0]
    one = np.float32(1.0)
    limit = np.float32(30.0)
    second = np.empty(n, dtype=np.float32)
    lead_loss, second_loss = 0.0, 0.0
    for i in range(n):
        z = (inputs[i, 0] * stack[i, 0] + inputs[i, 1] * stack[i, 1]) + (
            inputs[i, 2] * stack[i, 2] + inputs[i, 3] * stack[i, 3]
        )
        q = one / (one + np.exp(-min(max(z, -limit), limit)))
        second[i] = q
        if target[i] > 0:
            lead_loss -= np.log(max(float(p[i]), 1e-6))
            second_loss -= np.log(max(float(q), 1e-6))
        else:
            lead_loss -= np.log(max(1.0 - float(p[i]), 1e-6))
            second_loss -= np.log(max(1.0 - float(q), 1e-6))
    losses[0] += lead_loss
    losses[1] += second_loss
    _learn_stack(target, second, inputs, stack, stack_g2, learning_rate)


@kernel
def _forward_sparse(
    indices: np.ndarray,
    values: np.ndarray,
    df: np.ndarray,
    n_documents: int,
    idf: bool,
    scaled: np.ndarray,
    weights: np.ndarray,
    columns: np.ndarray,
    size: int,
    k: int,
    labels: np.ndarray,
    label_totals: np.ndarray,
    n_seen: int,
    prior_weight: float,
    sketch_code: np.ndarray,
    bucket_sums: np.ndarray,
    bucket_touched: np.ndarray,
    one_row: np.ndarray,
    similarities: np.ndarray,
    nearest: np.ndarray,
    votes: np.ndarray,
    recent: np.ndarray,
    stack: np.ndarray,
    threshold_log_odds: np.ndarray,
    block: np.ndarray,
    inputs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The forward pass of a sparse float32 instance in one call, each step the compiled step its
    component runs (the same operations in the same order, so the same bits): the scaler's idf-weighted
    unit ``scaled`` values, the heads' products into ``block[_HEAD_Z]``, the instance as the neighbour
    window stores it (sketched where ``sketch_code`` is not empty; returned), the neighbours' ``votes``
    (one row) and :func:`_stack_forward`. The window must hold at least one instance."""
    _idf_unit(indices, values, df, n_documents, idf, scaled)
    _sparse_products(indices, scaled, weights, block[_HEAD_Z])
    if sketch_code.shape[0]:
        stored_indices, stored_values = sketch(indices, scaled, sketch_code, bucket_sums, bucket_touched)
    else:
        stored_indices, stored_values = indices, unit(scaled)
    one_row[1] = stored_indices.shape[0]
    votes_sparse(
        columns,
        size,
        k,
        labels,
        label_totals,
        n_seen,
        prior_weight,
        stored_indices,
        stored_values,
        one_row,
        similarities,
        nearest,
        votes,
    )
    _stack_forward(block, weights[weights.shape[0] - 1], votes[0], recent, stack, threshold_log_odds, inputs)
    return stored_indices, stored_values


@kernel
def _learn_sparse(
    indices: np.ndarray,
    scaled: np.ndarray,
    gradient: np.ndarray,
    weights: np.ndarray,
    g2: np.ndarray,
    learning_rate: float,
    adagrad_offset: float,
    group: np.ndarray,
    snapshots: np.ndarray,
    columns: np.ndarray,
    slot: int,
    old_indices: np.ndarray,
    stored_indices: np.ndarray,
    stored_values: np.ndarray,
    labels: np.ndarray,
    label_totals: np.ndarray,
    target: np.ndarray,
    df: np.ndarray,
) -> None:
    """The learning of a sparse instance after its drift bookkeeping, in one call, each step the compiled
    step its component runs: the heads' AdaGrad step, the neighbour window's store into ``slot`` and
    the scaler's document counts."""
    _adagrad_step(weights, g2, indices, scaled, gradient, learning_rate, adagrad_offset, group, snapshots)
    store(columns, slot, old_indices, stored_indices, stored_values, labels, label_totals, target)
    _count_documents(indices, df)


@kernel
def _forward_dense(
    scaled: np.ndarray,
    products: np.ndarray,
    bias: np.ndarray,
    columns: np.ndarray,
    size: int,
    k: int,
    labels: np.ndarray,
    label_totals: np.ndarray,
    n_seen: int,
    prior_weight: float,
    similarities: np.ndarray,
    nearest: np.ndarray,
    votes: np.ndarray,
    recent: np.ndarray,
    stack: np.ndarray,
    threshold_log_odds: np.ndarray,
    block: np.ndarray,
    inputs: np.ndarray,
) -> np.ndarray:
    """:func:`_forward_sparse` of a dense instance from its ``scaled`` values and the heads' ``products``
    (BLAS's): the instance as the neighbour window stores it (returned), the neighbours' ``votes`` and
    :func:`_stack_forward`. The window must hold at least one instance."""
    for i in range(products.shape[0]):
        block[_HEAD_Z, i] = products[i]
    stored = unit(scaled)
    votes_dense(
        columns,
        size,
        k,
        labels,
        label_totals,
        n_seen,
        prior_weight,
        stored.reshape((1, stored.shape[0])),
        similarities,
        nearest,
        votes,
    )
    _stack_forward(block, bias, votes[0], recent, stack, threshold_log_odds, inputs)
    return stored


@kernel
def _learn_dense(
    x: np.ndarray,
    scaled: np.ndarray,
    gradient: np.ndarray,
    weights: np.ndarray,
    g2: np.ndarray,
    learning_rate: float,
    adagrad_offset: float,
    group: np.ndarray,
    snapshots: np.ndarray,
    columns: np.ndarray,
    slot: int,
    stored: np.ndarray,
    labels: np.ndarray,
    label_totals: np.ndarray,
    target: np.ndarray,
    mean: np.ndarray,
    m2: np.ndarray,
    n_documents: int,
) -> None:
    """:func:`_learn_sparse` of a dense instance ``x``: the heads' step, the window's store and the
    scaler's Welford step (``n_documents``: the count with ``x``)."""
    _adagrad_step(weights, g2, _NO_ROWS, scaled, gradient, learning_rate, adagrad_offset, group, snapshots)
    store_dense(columns, slot, stored, labels, label_totals, target)
    _welford_step(x, mean, m2, n_documents)


_NO_ARRAY = np.zeros(0, dtype=np.float32)


#: A fresh stacker row (per label): half the head's log-odds, half the neighbours', no other input.
_STACK_START = np.array([0.5, 0.5, 0.0, 0.0], dtype=np.float32)


def _grown_rows(rows: np.ndarray, n_rows: int, start: np.ndarray) -> np.ndarray:
    """``rows`` (2-D) with ``n_rows`` rows, the new ones copies of ``start``."""
    grown = np.tile(start, (n_rows, 1))
    grown[: rows.shape[0]] = rows
    return grown


def _race_start(rate: float, second_rate: float) -> np.ndarray:
    """The stackers' race before any instance: no loss yet, the leader's and the second's step (no second
    where the stacker does not learn)."""
    return np.array([0.0, 0.0, rate, second_rate if rate else 0.0])


_NO_ROWS = np.zeros(0, dtype=np.int64)  # the heads' step: every feature row of a dense instance
# The neighbours' sketch arrays where they sketch nothing (inputs no wider than their sketch).
_NO_CODES: np.ndarray = np.zeros(0, dtype=np.int16)
_NO_SUMS: np.ndarray = np.zeros(0, dtype=np.float64)
_NO_FLAGS: np.ndarray = np.zeros(0, dtype=bool)


class _Forward:
    """Everything computed for one instance before its labels are learned (reused by learn_one)."""

    __slots__ = ("scaled", "embedded", "head_p", "inputs", "z", "p", "n_labels", "shifted", "decided")

    def __init__(
        self,
        scaled: Features,
        embedded: Embedded | None,  # the instance as the neighbour window stores it (None without neighbours)
        head_p: np.ndarray,
        inputs: np.ndarray,  # (labels, stack inputs)
        z: np.ndarray,  # stacked log-odds
        p: np.ndarray,
        n_labels: int,
        shifted: np.ndarray,  # bounded stacked log-odds minus the thresholds' (the decision margins)
    ) -> None:
        self.scaled = scaled
        self.embedded = embedded
        self.head_p = head_p
        self.inputs = inputs
        self.z = z
        self.p = p
        self.n_labels = n_labels
        self.shifted = shifted
        self.decided: np.ndarray | None = None


class PartitionedClassifier(Stateful, MultiLabelClassifier):
    """Online multi-label classifier over a label space partitioned into clusters of correlated labels.

    The method follows iHOMER (Neves et al., ECAI 2025) as corrected in ARCHITECTURE.md: a
    :class:`~labelflow.operators.labels.clustering.LabelClusterer` keeps the label space partitioned
    online (Jaccard distance, Hoeffding-bounded splits and merges); each cluster is decoded jointly over
    the label subsets it has shown (a label powerset restricted to the cluster, see
    :class:`LabelSetDecoder`), so correlated labels are decided together while the search stays small.

    Per-label evidence comes from three sources, combined per label by an online logistic stacker:

    * :class:`LinearHeads`: a logistic regression per label, vectorized over all labels;
    * :class:`RecentNeighbours`: label votes of the most similar recent instances, strong early in a
      stream and when the recent past resembles the present;
    * the latest learned label set (temporal context): streams are often ordered and a label that was
      just present tends to recur. The stacker learns how much this is worth per label (nothing, on an
      unordered stream).

    Decisions use per-label F1-optimal thresholds learned online (:class:`AdaptiveThresholds`), and,
    when the stream has (almost) never shown an empty label set, at least one label is predicted.
    Labels first seen mid-stream join the label space, the partition and every component at once.

    Parameters
    ----------
    learning_rate
        Step size of the per-label logistic heads (AdaGrad per feature). Inputs reach the heads with
        unit norm (see :class:`FeatureScaler`), so a single feature's value is small (about 0.05 for
        hashed text) and early steps are about ``learning_rate * value``.
    adagrad_offset
        Offset added to each feature's squared-gradient sum before the square root. With unit-norm
        inputs, 1 keeps the first steps on rare features (rare n-grams) moderate; plain AdaGrad (a tiny
        offset) measured lower micro-F1 on Reuters (0.845 against 0.851) and on most ARFF streams.
    neighbours_window, neighbours_k
        Size of the recent window and number of neighbours that vote (0 disables the neighbours).
    stack_learning_rate
        Step size of the per-label stacker (0 keeps its initial weights: half head, half neighbours).
    second_stack_learning_rate
        Step size of a second stacker learning beside the first from the same inputs (0: none). Whichever
        has the lower summed log-loss so far decides (follow the leader; a change of leader swaps them).
        The slower step suits unordered streams, the faster one ordered streams that must learn the
        latest label set's weight quickly: 0.2 beside 0.5 meets issue 16's quality bar on emotions
        (0.6257 -> 0.6477 micro-F1) and lifts medical and Reuters, the other ARFF streams within 0.005
        of one stacker (0.05 and 0.1 screened: 0.1 costs tmc2007_500 0.006 subset accuracy, 0.05 less
        on emotions) (benchmarks/accuracy/HEADS_STUDY.md, DECISION_STUDY.md).
    label_set_prior
        Weight of the label-dependence term in the joint decoding (0 = independent per-label decisions).
    temporal_context
        Use the latest learned label set as evidence.
    at_least_one
        ``"auto"`` (when under 1% of learned label sets were empty), ``True`` or ``False``.
    idf
        Online inverse-document-frequency weighting of sparse features.
    threshold_shrinkage
        Pseudo-count pulling each label's own F1 cut toward the pooled micro-F1 cut; infinity (the
        default) shares the pooled cut, which measured best on every benchmark stream.
    drift_adaptation
        What a confirmed performance drift of a label cluster does (:class:`DriftHandler`):
        ``"background"`` swaps in heads trained since the warning, ``"reset"`` restarts the cluster,
        ``"none"`` only reports. Every detection is an event of :meth:`drain_events`.
    drift_detectors
        Which of :data:`DRIFT_DETECTORS` watch the stream (performance drift adapts the model, the
        others report). Without any, learning skips the drift bookkeeping entirely.
    adaptive_thresholds
        Learn the decision threshold online (:class:`AdaptiveThresholds`); off decides at 0.5.
    clusterer
        The label clusterer; by default a ``LabelClusterer()`` with its default settings.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> model = PartitionedClassifier()
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
        "learning_rate",
        "neighbours_window",
        "neighbours_k",
        "stack_learning_rate",
        "second_stack_learning_rate",
        "label_set_prior",
        "temporal_context",
        "at_least_one",
        "idf",
        "adagrad_offset",
        "drift_adaptation",
        "drift_detectors",
        "adaptive_thresholds",
        "threshold_shrinkage",
    )
    state_fields = ("n_learned", "_partition_version")
    state_arrays = ("_stack", "_stack_g2", "_recent", "_second_stack", "_second_stack_g2", "_stack_race")
    state_children = (
        "label_index",
        "scaler",
        "heads",
        "neighbours",
        "thresholds",
        "decoder",
        "clusterer",
        "drift",
    )
    state_keys = {"label_index": "labels"}

    def __init__(
        self,
        *,
        learning_rate: float = 16.0,
        neighbours_window: int = 1000,
        neighbours_k: int = 15,
        stack_learning_rate: float = 0.5,
        second_stack_learning_rate: float = 0.2,
        label_set_prior: float = 0.3,
        temporal_context: bool = True,
        at_least_one: bool | str = "auto",
        idf: bool = True,
        threshold_shrinkage: float = float("inf"),
        adagrad_offset: float = 1.0,
        drift_adaptation: Adaptation = "background",
        drift_detectors: Sequence[str] = DRIFT_DETECTORS,
        adaptive_thresholds: bool = True,
        clusterer: LabelClusterer | None = None,
    ) -> None:
        if at_least_one not in (True, False, "auto"):
            raise ValueError(f"at_least_one must be True, False or 'auto', not {at_least_one!r}")
        unknown = sorted(set(drift_detectors) - set(DRIFT_DETECTORS))
        if unknown:
            raise ValueError(f"unknown drift detectors {unknown}; choose from {DRIFT_DETECTORS}")
        self.drift_detectors = tuple(d for d in DRIFT_DETECTORS if d in drift_detectors)
        self.adaptive_thresholds = adaptive_thresholds
        self.learning_rate = learning_rate
        self.neighbours_window = neighbours_window
        self.neighbours_k = neighbours_k
        self.stack_learning_rate = stack_learning_rate
        self.second_stack_learning_rate = second_stack_learning_rate
        self.label_set_prior = label_set_prior
        self.temporal_context = temporal_context
        self.at_least_one = at_least_one
        self.idf = idf
        self.threshold_shrinkage = threshold_shrinkage
        if clusterer is None:
            from labelflow.operators.labels.clustering import LabelClusterer

            clusterer = LabelClusterer()
        self.clusterer = clusterer
        self.label_index = LabelIndex()
        self.scaler = FeatureScaler(idf=idf)
        self.adagrad_offset = adagrad_offset
        self.heads = LinearHeads(learning_rate=learning_rate, adagrad_offset=adagrad_offset)
        self.neighbours = (
            RecentNeighbours(window=neighbours_window, k=neighbours_k) if neighbours_k > 0 else None
        )
        self.thresholds = AdaptiveThresholds(shrinkage=threshold_shrinkage) if adaptive_thresholds else None
        self.decoder = LabelSetDecoder(prior_weight=label_set_prior)
        self.drift_adaptation = drift_adaptation
        # Partition changes count as drift once the clusterer's memory has seen the labels for about three
        # lifetimes of its fading (3,000 instances at its default 0.999); before that they are formation.
        fading = clusterer.fading_factor
        formation_age = int(round(3.0 / (1.0 - fading))) if fading < 1.0 else 3000
        self.drift = DriftHandler(
            adaptation=drift_adaptation,
            structure_formation_age=formation_age,
            watch_performance="performance" in self.drift_detectors,
            watch_label_priors="label_prior" in self.drift_detectors,
            watch_label_dependence="label_dependence" in self.drift_detectors,
            watch_inputs="input" in self.drift_detectors,
        )
        self._stack = np.tile(_STACK_START, (8, 1))
        self._stack_g2 = np.zeros_like(self._stack)
        # The second stacker (its rows and accumulators) and the race: the leader's and the second's
        # summed log-loss and step sizes. The leading stacker's arrays are always _stack and _stack_g2.
        self._second_stack = self._stack.copy()
        self._second_stack_g2 = np.zeros_like(self._stack)
        self._stack_race = _race_start(stack_learning_rate, second_stack_learning_rate)
        self._recent = np.zeros(8, dtype=np.float32)
        self._partition_version = -1
        self._cached: tuple[Features, _Forward] | None = None
        self.n_learned = 0

    # ------------------------------------------------------------------ label space

    @property
    def labels(self) -> list[Label]:
        return self.label_index.names

    @property
    def partition(self) -> Partition:
        return self.clusterer.partition

    def drain_events(self) -> list[DriftEvent]:
        """Drift events (``DriftEvent``: performance, label prior, input, label structure) since the last call."""
        return self.drift.drain()

    def _grow(self, n_labels: int) -> None:
        if n_labels <= self._recent.shape[0] and n_labels <= self._stack.shape[0]:
            return
        if self._stack.shape[0] < n_labels:
            rows = max(n_labels, 2 * self._stack.shape[0])
            no_steps = np.zeros_like(_STACK_START)
            self._stack = _grown_rows(self._stack, rows, _STACK_START)
            self._stack_g2 = _grown_rows(self._stack_g2, rows, no_steps)
            self._second_stack = _grown_rows(self._second_stack, rows, _STACK_START)
            self._second_stack_g2 = _grown_rows(self._second_stack_g2, rows, no_steps)
        self._recent = grow_last_axis(self._recent, n_labels)

    # ------------------------------------------------------------------ prediction

    def _forward(self, x: Features) -> _Forward:
        cached = self._cached
        if cached is not None and cached[0] is x:
            return cached[1]
        n = len(self.label_index)
        if n > self._recent.shape[0] or n > self._stack.shape[0]:
            self._grow(n)
        forward = None
        if type(x) is SparseVector:
            forward = self._forward_sparse(x, n)
        elif type(x) is np.ndarray:
            forward = self._forward_dense(x, n)
        if forward is None:
            forward = self._forward_components(x, n)
        self._cached = (x, forward)
        return forward

    def _forward_components(self, x: Features, n: int) -> _Forward:
        """:meth:`_forward` component by component (any input, any component set up or not)."""
        scaled = self.scaler.transform(x)
        block = np.empty((5, n), dtype=np.float32)
        heads = self.heads
        block[_HEAD_Z] = heads.products(scaled, n)
        embedded = None
        votes = _NO_ARRAY
        if self.neighbours is not None:
            embedded = self.neighbours.embed(scaled)
            votes = self.neighbours.votes(scaled, n, embedded)
        inputs = np.empty((n, _N_STACK_INPUTS), dtype=np.float32)
        thresholds = self.thresholds
        _stack_forward(
            block,
            heads.weights[-1],
            votes,
            self._recent if self.temporal_context else _NO_ARRAY,
            self._stack,
            _NO_ARRAY if thresholds is None else thresholds.log_odds(n),
            inputs,
        )
        return _Forward(scaled, embedded, block[_HEAD_P], inputs, block[_Z], block[_P], n, block[_SHIFTED])

    def _fused_fits(self, n: int, dim: int) -> bool:
        """Whether the heads and the neighbour window are set up for ``n`` labels and ``dim``-wide inputs:
        what the compiled paths (:meth:`_forward_sparse`, :meth:`_forward_dense`, :meth:`_learn_fused`)
        need; otherwise the components run one by one (and set themselves up)."""
        heads, neighbours = self.heads, self.neighbours
        return (
            neighbours is not None
            and heads.dim == dim
            and neighbours._dim_in == dim
            and n <= heads.weights.shape[1]
            and n <= neighbours._labels.shape[1]
            and n <= neighbours._label_totals.shape[0]
        )

    def _forward_sparse(self, x: SparseVector, n: int) -> _Forward | None:
        """:meth:`_forward` of a sparse float32 instance in one compiled call (:func:`_forward_sparse`);
        None where a component is not set up for it yet (the general path sets it up)."""
        scaler, heads, neighbours, thresholds = self.scaler, self.heads, self.neighbours, self.thresholds
        df, values, dim = scaler._df, x.values, x.dim
        if (
            not self._fused_fits(n, dim)
            or neighbours is None  # (known from _fused_fits; said again for the type checker)
            or neighbours.size == 0
            or df is None
            or df.shape[0] != dim
            or values.dtype != np.float32
        ):
            return None
        threshold_log_odds = _NO_ARRAY if thresholds is None else thresholds.log_odds(n)
        if neighbours._bucket is None:
            code, sums, touched = _NO_CODES, _NO_SUMS, _NO_FLAGS
        else:
            code, sums, touched = neighbours._sketch_code, neighbours._bucket_sums, neighbours._bucket_touched
        scaled = np.empty(values.shape[0], dtype=np.float32)
        block = np.empty((5, n), dtype=np.float32)
        inputs = np.empty((n, _N_STACK_INPUTS), dtype=np.float32)
        votes = np.empty((1, n), dtype=np.float32)
        embedded = _forward_sparse(
            x.indices,
            values,
            df,
            scaler.n,
            scaler.idf,
            scaled,
            heads.weights,
            neighbours._columns,
            neighbours.size,
            neighbours.k,
            neighbours._labels,
            neighbours._label_totals,
            neighbours.n_seen,
            float(neighbours.prior_weight),
            code,
            sums,
            touched,
            neighbours._one_row,
            neighbours._similarities,
            neighbours._nearest,
            votes,
            self._recent if self.temporal_context else _NO_ARRAY,
            self._stack,
            threshold_log_odds,
            block,
            inputs,
        )
        return _Forward(
            SparseVector(x.indices, scaled, dim),
            embedded,
            block[_HEAD_P],
            inputs,
            block[_Z],
            block[_P],
            n,
            block[_SHIFTED],
        )

    def _forward_dense(self, x: np.ndarray, n: int) -> _Forward | None:
        """:meth:`_forward` of a dense instance with one compiled call after the scaler's and the heads'
        (:func:`_forward_dense`); None where a component is not set up for it yet."""
        scaler, heads, neighbours, thresholds = self.scaler, self.heads, self.neighbours, self.thresholds
        mean, m2 = scaler._mean, scaler._m2
        dim = x.shape[0] if x.ndim == 1 else -1
        if (
            not self._fused_fits(n, dim)
            or neighbours is None  # (known from _fused_fits; said again for the type checker)
            or neighbours.size == 0
            or mean is None
            or m2 is None
            or mean.shape[0] != dim
            or scaler.n < 2
        ):
            return None
        scaled = np.empty(dim, dtype=np.float32)
        _standardized(x, mean, m2, scaler.n, float(scaler.clip), scaled)
        weights = heads.weights
        block = np.empty((5, n), dtype=np.float32)
        inputs = np.empty((n, _N_STACK_INPUTS), dtype=np.float32)
        votes = np.empty((1, n), dtype=np.float32)
        stored = _forward_dense(
            scaled,
            scaled @ weights[:-1, :n],
            weights[-1],
            neighbours._columns,
            neighbours.size,
            neighbours.k,
            neighbours._labels,
            neighbours._label_totals,
            neighbours.n_seen,
            float(neighbours.prior_weight),
            neighbours._similarities,
            neighbours._nearest,
            votes,
            self._recent if self.temporal_context else _NO_ARRAY,
            self._stack,
            _NO_ARRAY if thresholds is None else thresholds.log_odds(n),
            block,
            inputs,
        )
        return _Forward(scaled, stored, block[_HEAD_P], inputs, block[_Z], block[_P], n, block[_SHIFTED])

    def _decided(self, forward: _Forward) -> np.ndarray:
        """The decided label mask of ``forward`` (decided now if it was not yet)."""
        if forward.decided is None:
            forward.decided = self._decide_shifted(forward.shifted)
        return forward.decided

    def _decide(self, forward: _Forward) -> np.ndarray:
        return self._decided(forward).copy()

    def _decide_shifted(self, shifted: np.ndarray) -> np.ndarray:
        """The decided label mask from the bounded stacked log-odds minus the thresholds' log-odds."""
        if shifted.shape[0] == 0:
            return np.zeros(0, dtype=bool)
        decided = self.decoder.decode_one(shifted)
        if self._force_one() and not np.count_nonzero(decided):  # count_nonzero: no Python-level wrapper
            decided[shifted.argmax()] = True
        return decided

    def _force_one(self) -> bool:
        if self.at_least_one == "auto":
            return self.decoder.n_learned >= 20 and self.decoder.n_empty < 0.01 * self.decoder.n_learned
        return bool(self.at_least_one)

    def _named(self, decided: np.ndarray, p: np.ndarray) -> tuple[set[Label], dict[Label, float]]:
        names = self.label_index.names_view  # may know labels added after p was computed: zip stops at p
        return {names[i] for i in decided.nonzero()[0].tolist()}, dict(zip(names, p.tolist(), strict=False))

    def predict_with_scores(self, x: Features) -> ScoredLabels:
        """The decided label set and every known label's probability, computed once."""
        forward = self._forward(x)
        return self._named(self._decide(forward), forward.p)

    def predict_arrays(self, x: Features) -> tuple[np.ndarray, np.ndarray]:
        """The decided label mask and the probabilities (float32) by label id, without label names (read
        them, never change them: they are the model's until it learns)."""
        forward = self._forward(x)
        return self._decided(forward), forward.p

    def predict_with_scores_many(self, xs: Sequence[Features]) -> list[ScoredLabels]:
        """:meth:`predict_with_scores` of every instance of a batch by the model as it is (no learning in
        between): the same predictions, to the bit, as one by one.

        The one-instance path is compiled and costs about what a vectorized batch did per instance, and
        a batch path of its own would give probabilities that differ in the last float digits, which the
        decision experts and the calibrator would then learn from (so a model would depend on how its
        predictions were batched).
        """
        out = []
        for x in xs:
            forward = self._forward(x)
            out.append(self._named(self._decided(forward), forward.p))
        self._cached = None  # the single-instance cache holds only the last of them
        return out

    def predict_many(self, xs: Sequence[Features]) -> list[set[Label]]:
        return [labels for labels, _ in self.predict_with_scores_many(xs)]

    def predict_proba_many(self, xs: Sequence[Features]) -> list[dict[Label, float]]:
        return [scores for _, scores in self.predict_with_scores_many(xs)]

    def predict_proba_one(self, x: Features) -> dict[Label, float]:
        return self.predict_with_scores(x)[1]

    def predict_one(self, x: Features) -> set[Label]:
        return self.predict_with_scores(x)[0]

    def evidence(self, x: Features) -> tuple[Features, np.ndarray]:
        """The scaled features and every known label's stacked log-odds (indexed by label id) for ``x``,
        as its prediction computes them (computed once per instance)."""
        forward = self._forward(x)
        return forward.scaled, forward.z

    def predict_top(self, x: Features, k: int) -> list[tuple[Label, float]]:
        """The ``k`` most probable labels with their probabilities, best first."""
        p = self._forward(x).p
        top = np.argsort(-p)[:k]
        names = self.label_index.names
        return [(names[i], float(p[i])) for i in top]

    # ------------------------------------------------------------------ learning

    def learn_one(self, x: Features, y: Iterable[Label]) -> None:
        self._learn(x, self._forward(x), y)

    def _learn(self, x: Features, forward: _Forward, y: Iterable[Label]) -> None:
        label_ids = self.label_index.ids(y)
        n = len(self.label_index)
        if n > self._recent.shape[0] or n > self._stack.shape[0]:
            self._grow(n)
        target = np.zeros(n, dtype=np.float32)
        gradient = np.empty(n, dtype=np.float32)
        # Stacker, thresholds and drift detectors learn from the prediction made before this update.
        if _learn_labels(
            np.array(label_ids, dtype=np.int64),
            forward.p,
            forward.inputs,
            forward.head_p,
            self._stack,
            self._stack_g2,
            self._recent,
            target,
            gradient,
            self._second_stack,
            self._second_stack_g2,
            self._stack_race,
        ):
            self._swap_stacks()
        n_old = forward.n_labels
        if n_old:
            t = target[:n_old]
            if self.thresholds is not None:
                self.thresholds.update(forward.p, t)
            if self.drift.watches_instances:
                # The decided mask as it is: observe copies it into its block.
                self.drift.observe(
                    self, x, forward.scaled, self._decided(forward), target, self.label_index, self.n_learned
                )
        if not self._learn_fused(x, forward, gradient, target):
            self.heads.learn_gradient(forward.scaled, gradient)
            if self.neighbours is not None:
                self.neighbours.learn(forward.scaled, target, forward.embedded)
            self.scaler.learn_one(x)
        self.clusterer.learn_sorted(sorted(label_ids))  # LabelIndex ids: distinct non-negative ints
        partition = self.clusterer.partition
        if partition.version != self._partition_version:
            names = self.label_index.names
            self.decoder.set_partition(partition.clusters)
            self.drift.flush(self, self.label_index)  # what was observed belongs to the old clusters
            self.drift.set_partition(partition, names)
            self._partition_version = partition.version
        changes = self.clusterer.drain_events()
        if changes:
            self.drift.observe_structure(changes, self.label_index.names)
        self.decoder.learn(label_ids)
        self._cached = None
        self.n_learned += 1

    def _learn_fused(self, x: Features, forward: _Forward, gradient: np.ndarray, target: np.ndarray) -> bool:
        """The heads', neighbours' and scaler's learning of an instance in one compiled call
        (:func:`_learn_sparse`, :func:`_learn_dense`); False (nothing learned) where a component is not
        set up for it (the components then learn one by one)."""
        heads, neighbours, scaler = self.heads, self.neighbours, self.scaler
        scaled, embedded, n = forward.scaled, forward.embedded, gradient.shape[0]
        if type(x) is SparseVector:
            dim = x.dim
        elif type(x) is np.ndarray and x.ndim == 1:
            dim = x.shape[0]
        else:
            return False
        if (
            embedded is None
            or heads.l2
            or not self._fused_fits(n, dim)
            or neighbours is None  # (known from _fused_fits; said again for the type checker)
        ):
            return False
        slot = neighbours.cursor
        if type(x) is SparseVector:
            df = scaler._df
            if (
                df is None
                or df.shape[0] != dim
                or type(scaled) is not SparseVector
                or scaled.values.dtype != np.float32
                or type(embedded) is not tuple
            ):
                return False
            group, snapshots = heads._restart_groups(n)
            stored_indices, stored_values = embedded
            _learn_sparse(
                x.indices,
                scaled.values,
                gradient,
                heads.weights,
                heads._g2,
                heads.learning_rate,
                heads.adagrad_offset,
                group,
                snapshots,
                neighbours._columns,
                slot,
                neighbours._slot_indices[slot],
                stored_indices,
                stored_values,
                neighbours._labels,
                neighbours._label_totals,
                target,
                df,
            )
            neighbours.stored(stored_indices)
        else:
            mean, m2 = scaler._mean, scaler._m2
            if (
                mean is None
                or m2 is None
                or mean.shape[0] != dim
                or type(scaled) is not np.ndarray
                or scaled.dtype != np.float32
                or type(embedded) is not np.ndarray
            ):
                return False
            group, snapshots = heads._restart_groups(n)
            _learn_dense(
                cast("np.ndarray", x),  # a 1-D array: the only other kind that has a dim above
                scaled,
                gradient,
                heads.weights,
                heads._g2,
                heads.learning_rate,
                heads.adagrad_offset,
                group,
                snapshots,
                neighbours._columns,
                slot,
                embedded,
                neighbours._labels,
                neighbours._label_totals,
                target,
                mean,
                m2,
                scaler.n + 1,
            )
            neighbours.stored(None)
        if heads._restarted:
            heads._merge_restarted()
        scaler.n += 1
        return True

    def _swap_stacks(self) -> None:
        """The second stacker leads from the next instance on (both learn every instance: the race never
        ends, and a change of leader is a swap of the two)."""
        self._stack, self._second_stack = self._second_stack, self._stack
        self._stack_g2, self._second_stack_g2 = self._second_stack_g2, self._stack_g2
        self._stack_race[:] = self._stack_race[[1, 0, 3, 2]]

    # ------------------------------------------------------------------ adaptation (called by DriftHandler)

    def background_heads(self) -> LinearHeads:
        """Fresh logistic heads with this model's step size settings, for a background learner."""
        return LinearHeads(learning_rate=self.heads.learning_rate, adagrad_offset=self.heads.adagrad_offset)

    def replace_cluster_heads(self, labels: Sequence[int], heads: LinearHeads) -> None:
        """Swap in logistic heads trained on the cluster's labels since a drift warning (with their step sizes)."""
        self.heads.adopt(list(labels), heads)

    def reset_cluster(self, labels: Sequence[int]) -> None:
        """Forget the cluster's logistic heads; they relearn with fresh step sizes."""
        self.heads.reset(list(labels))

    def reset_cluster_context(self, labels: Sequence[int]) -> None:
        """Forget what depended on the old concept: stacker rows, subset counts, neighbour votes."""
        labels = list(labels)
        for stack, g2 in ((self._stack, self._stack_g2), (self._second_stack, self._second_stack_g2)):
            stack[labels] = _STACK_START
            g2[labels] = 0.0
        self.decoder.reset_labels(labels)
        if self.neighbours is not None:
            self.neighbours.forget_labels(labels)
        self._cached = None

    # ------------------------------------------------------------------ state

    def _load_state(self, state: State) -> None:
        if self._stack_race is None:
            # A state written before the second stacker: it starts as a copy of the leader, with fresh
            # accumulators and no loss, and leads only once strictly better from here on.
            self._second_stack = self._stack.copy()
            self._second_stack_g2 = np.zeros_like(self._stack)
            self._stack_race = _race_start(self.stack_learning_rate, self.second_stack_learning_rate)
