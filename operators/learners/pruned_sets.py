"""A label-set decision for subset accuracy: pruned sets (a softmax over frequent label sets), pooled with
the per-label model.

Subset accuracy rewards the one label set that is exactly right, which per-label evidence reaches only
through the product of many per-label decisions. A pruned-sets classifier (Read, Pfahringer and Holmes,
"Multi-label classification using ensembles of pruned sets", ICDM 2008; the Hoeffding tree with pruned
sets at its leaves, MLHTPS, is the best published online learner on Yeast and Emotions) learns the label
set directly: a multi-class model whose classes are the label sets seen at least ``min_count`` times. A
document whose set is not (yet) frequent teaches the classes that are its largest frequent subsets
(PS's "decompose into frequent subsets"; the weight is split among them), so rare combinations still
teach their frequent parts.

The decision pools the two views by a product of experts (log-linear pooling, equal weights): among the
frequent sets ``S``, the one maximizing ``log q(S | x) + log P_labels(S | x)``, where ``q`` is the
softmax and ``P_labels(S | x) = prod_{l in S} p_l prod_{l not in S} (1 - p_l)`` the per-label model's
probability of ``S`` if its labels were independent, so ``log P_labels(S | x) = sum_{l in S} z_l`` plus
a term that is the same for every ``S`` (``z_l`` the per-label log-odds). Each view vetoes what the other
finds improbable: the softmax knows which combinations occur, the per-label model knows each label's
evidence. Measured prequentially on the 9 shared ARFF streams (benchmarks/robustness, full file order,
objective subset_accuracy) the pooled decision beats the learner's joint decoding on 8 of them (Yeast
0.15 -> 0.22, Medical 0.53 -> 0.57, Slashdot 0.37 -> 0.45, Bibtex 0.14 -> 0.18 over 5,000 documents) and
loses on Scene (0.905 -> 0.901), where the decision experts keep the learner's decoding.

The classifier: a linear softmax on the learner's scaled features (unit norm), AdaGrad per weight
(offset 1, as the per-label heads). Its memory is ``features x classes`` weights and squared-gradient
sums (float32), bounded by ``memory_budget`` bytes: a label set that becomes frequent once the budget is
full gets no class (on the ARFF streams, at most a few hundred classes of a few thousand features; on
hashed text of 2**18 features, the 64 most frequent early sets).

Screened on the same streams and not taken (pooled decision alone, full files): learning rate 1 (yeast
0.2234 as at 2, medical 0.5644 against 0.5716, enron 0.1469 against 0.1563; emotions 0.2901 against
0.2681); classes from 3 sightings (medical 0.5675, enron 0.1545, scene 0.8986 against 0.9011); the
threshold-shifted log-odds instead of the probabilities' (within 0.003 either way); a per-class weight
for "the latest label set was this class" (scene +0.002, yeast, medical and enron -0.002 to -0.003).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelflow.operators.base import Features, SparseVector
from labelflow.operators.compiled import kernel
from labelflow.operators.learners.space_saving import SpaceSaving
from labelflow.operators.state import State, Stateful

STATE_FORMAT = "labelflow.pruned-sets/1"
#: Distinct label sets counted (Space-Saving beyond that, as the decision experts' majority set).
SET_COUNT_CAPACITY = 4096
_MAX_LOG_ODDS = float(np.log((1 - 1e-4) / 1e-4))  # the learner keeps probabilities within [1e-4, 1 - 1e-4]


@kernel
def _logits(
    indices: np.ndarray, values: np.ndarray, weights: np.ndarray, bias: np.ndarray, n: int, out: np.ndarray
) -> None:
    """``out[:n]``: each class's linear score of the sparse instance (``indices``, ``values``)."""
    for c in range(n):
        out[c] = bias[c]
    for k in range(indices.shape[0]):
        v = np.float64(values[k])
        if v == 0.0:
            continue
        row = indices[k]
        for c in range(n):
            out[c] += v * weights[row, c]


@kernel
def _pooled_choice(
    logits: np.ndarray,
    n: int,
    set_labels: np.ndarray,
    set_starts: np.ndarray,
    set_lengths: np.ndarray,
    log_odds: np.ndarray,
    bound: float,
) -> int:
    """The class maximizing its logit plus the summed (bounded) per-label log-odds of its labels; labels
    without log-odds (newer than the per-label model's prediction) add nothing."""
    best = -1
    best_score = -np.inf
    n_labels = log_odds.shape[0]
    for c in range(n):
        score = logits[c]
        start = set_starts[c]
        for j in range(set_lengths[c]):
            label = set_labels[start + j]
            if label < n_labels:
                score += min(max(np.float64(log_odds[label]), -bound), bound)
        if score > best_score:
            best = c
            best_score = score
    return best


@kernel
def _largest_subsets(
    mask: np.ndarray,
    n: int,
    set_labels: np.ndarray,
    set_starts: np.ndarray,
    set_lengths: np.ndarray,
    out: np.ndarray,
) -> int:
    """The classes whose labels are all in ``mask``, of the largest size among those, written to ``out``;
    returns how many."""
    best_length = -1
    count = 0
    for c in range(n):
        length = set_lengths[c]
        if length < best_length:
            continue
        inside = True
        start = set_starts[c]
        for j in range(length):
            label = set_labels[start + j]
            if label >= mask.shape[0] or not mask[label]:
                inside = False
                break
        if inside:
            if length > best_length:
                best_length = length
                count = 0
            out[count] = c
            count += 1
    return count


@kernel
def _learn_step(
    indices: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    g2: np.ndarray,
    bias: np.ndarray,
    bias_g2: np.ndarray,
    n: int,
    targets: np.ndarray,
    n_targets: int,
    rate: float,
    offset: float,
    work: np.ndarray,
    scored: bool,
) -> None:
    """One AdaGrad step of the softmax's cross-entropy toward ``targets[:n_targets]`` (equal weights);
    ``work[:n]`` holds the instance's logits already when ``scored``."""
    if not scored:
        _logits(indices, values, weights, bias, n, work)
    top = -np.inf
    for c in range(n):
        top = max(top, work[c])
    total = 0.0
    for c in range(n):
        work[c] = np.exp(work[c] - top)
        total += work[c]
    share = 1.0 / n_targets
    for c in range(n):
        work[c] /= total  # the gradient of the loss in the logits: q - t
    for t in range(n_targets):
        work[targets[t]] -= share
    for k in range(indices.shape[0]):
        v = np.float64(values[k])
        if v == 0.0:
            continue
        row = indices[k]
        for c in range(n):
            gradient = v * work[c]
            g2[row, c] += gradient * gradient
            weights[row, c] -= rate * gradient / np.sqrt(offset + g2[row, c])
    for c in range(n):
        gradient = work[c]
        bias_g2[c] += gradient * gradient
        bias[c] -= rate * gradient / np.sqrt(offset + bias_g2[c])


class PrunedSetsClassifier(Stateful):
    """A softmax over the frequent label sets, and its product-of-experts decision with per-label log-odds.

    See the module for the method. Labels are integer ids (the per-label model's); features are the
    per-label model's scaled features (dense vectors or :class:`SparseVector`).

    Parameters
    ----------
    min_count
        Times a label set must be seen before it becomes a class (PS's pruning: a set seen once is as
        likely noise as a pattern).
    learning_rate
        AdaGrad step size of the softmax.
    adagrad_offset
        Added to each weight's squared-gradient sum before the square root (1, as the per-label heads).
    memory_budget
        Bytes of weights and squared-gradient sums; no new class once they would pass it.

    >>> model = PrunedSetsClassifier()
    >>> a, b = np.array([1.0, 0.0], dtype=np.float32), np.array([0.0, 1.0], dtype=np.float32)
    >>> for _ in range(30):
    ...     model.learn(a, [0, 1])
    ...     model.learn(b, [2])
    >>> model.decide(a, np.zeros(3)), model.decide(b, np.zeros(3))
    ((0, 1), (2,))
    >>> model.decide(a, np.array([-9.0, -9.0, 9.0]))  # the per-label model vetoes {0, 1}
    (2,)
    """

    state_header = {"format": STATE_FORMAT}
    state_settings = ("min_count", "learning_rate", "adagrad_offset", "memory_budget")
    state_fields = ("n_learned", "n_classes", "dim")
    state_arrays = ("_weights", "_g2", "_bias", "_bias_g2", "_set_labels", "_set_lengths")

    def __init__(
        self,
        *,
        min_count: int = 2,
        learning_rate: float = 2.0,
        adagrad_offset: float = 1.0,
        memory_budget: int = 128 * 2**20,
    ) -> None:
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        self.min_count = min_count
        self.learning_rate = learning_rate
        self.adagrad_offset = adagrad_offset
        self.memory_budget = memory_budget
        self.n_learned = 0
        self.n_classes = 0
        self.dim = 0
        self._weights = np.zeros((0, 0), dtype=np.float32)  # (features, class capacity)
        self._g2 = np.zeros((0, 0), dtype=np.float32)
        self._bias = np.zeros(0, dtype=np.float64)
        self._bias_g2 = np.zeros(0, dtype=np.float64)
        self._set_labels = np.zeros(0, dtype=np.int64)  # every class's label ids, concatenated
        self._set_lengths = np.zeros(0, dtype=np.int64)
        self._set_starts = np.zeros(0, dtype=np.int64)
        self._classes: dict[tuple[int, ...], int] = {}
        self._counts: SpaceSaving[tuple[int, ...]] = SpaceSaving(SET_COUNT_CAPACITY)
        self._work = np.zeros(0, dtype=np.float64)
        self._targets = np.zeros(0, dtype=np.int64)
        self._dense_indices = np.zeros(0, dtype=np.int64)
        # The features, learned count and class count of the logits decide left in _work: learn reuses
        # them for the same features object while nothing was learned since and no class was added.
        self._scored: tuple[Features, int, int] | None = None

    # ------------------------------------------------------------------ classes

    @property
    def label_sets(self) -> list[tuple[int, ...]]:
        """The classes' label sets, in class order."""
        return sorted(self._classes, key=self._classes.__getitem__)

    def _max_classes(self) -> int:
        return max(1, self.memory_budget // max(1, 8 * self.dim))

    def _add_class(self, key: tuple[int, ...]) -> None:
        c = self.n_classes
        if c == self._weights.shape[1]:
            capacity = min(max(16, 2 * c), self._max_classes())  # never past the budget
            self._weights = _grown_columns(self._weights, capacity)
            self._g2 = _grown_columns(self._g2, capacity)
            self._bias = np.concatenate([self._bias, np.zeros(capacity - c)])
            self._bias_g2 = np.concatenate([self._bias_g2, np.zeros(capacity - c)])
            self._work = np.zeros(capacity, dtype=np.float64)
            self._targets = np.zeros(capacity, dtype=np.int64)
        self._classes[key] = c
        self._set_starts = np.append(self._set_starts, self._set_labels.shape[0])
        self._set_labels = np.concatenate([self._set_labels, np.array(key, dtype=np.int64)])
        self._set_lengths = np.append(self._set_lengths, len(key))
        self.n_classes = c + 1

    def _sparse(self, x: Features) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(x, SparseVector):
            return x.indices, x.values
        if self._dense_indices.shape[0] != x.shape[0]:
            self._dense_indices = np.arange(x.shape[0], dtype=np.int64)
        return self._dense_indices, x

    # ------------------------------------------------------------------ the verbs

    def decide(self, x: Features, log_odds: np.ndarray) -> tuple[int, ...] | None:
        """The frequent label set (sorted ids) with the best pooled score for ``x``, given the per-label
        model's log-odds of every label it knows (indexed by label id); None before any class exists."""
        n = self.n_classes
        if n == 0:
            return None
        indices, values = self._sparse(x)
        _logits(indices, values, self._weights, self._bias, n, self._work)
        self._scored = (x, self.n_learned, n)
        best = _pooled_choice(
            self._work, n, self._set_labels, self._set_starts, self._set_lengths, log_odds, _MAX_LOG_ODDS
        )
        start = int(self._set_starts[best])
        return tuple(self._set_labels[start : start + int(self._set_lengths[best])].tolist())

    def learn(self, x: Features, label_ids: Sequence[int]) -> None:
        """Count the instance's label set and take one step toward it (or its largest frequent subsets)."""
        key = tuple(sorted(int(label) for label in label_ids))
        dim = x.dim if isinstance(x, SparseVector) else int(x.shape[0])
        if self.dim == 0:
            self.dim = dim
            self._weights = np.zeros((dim, 0), dtype=np.float32)
            self._g2 = np.zeros((dim, 0), dtype=np.float32)
        elif dim != self.dim:
            raise ValueError(f"feature dimension changed from {self.dim} to {dim}")
        scored, self._scored = self._scored, None
        fresh = scored is not None and scored[0] is x and scored[1] == self.n_learned
        self.n_learned += 1
        count = self._counts.add(key)
        c = self._classes.get(key)
        if c is None and count >= self.min_count and self.n_classes < self._max_classes():
            self._add_class(key)
            c = self.n_classes - 1
        n = self.n_classes
        if n == 0:
            return
        targets = self._targets
        if c is not None:
            targets[0] = c
            n_targets = 1
        else:
            mask = np.zeros(key[-1] + 1 if key else 0, dtype=np.bool_)
            mask[list(key)] = True
            n_targets = _largest_subsets(
                mask, n, self._set_labels, self._set_starts, self._set_lengths, targets
            )
            if n_targets == 0:
                return
        indices, values = self._sparse(x)
        _learn_step(
            indices,
            values,
            self._weights,
            self._g2,
            self._bias,
            self._bias_g2,
            n,
            targets,
            n_targets,
            float(self.learning_rate),
            float(self.adagrad_offset),
            self._work,
            fresh and scored is not None and scored[2] == n,
        )

    # ------------------------------------------------------------------ state

    def _save_state(self, state: State) -> None:
        state.meta["set_counts"] = [[list(key), count] for key, count in self._counts.items()]

    def _load_state(self, state: State) -> None:
        n = self.n_classes
        self._weights = np.ascontiguousarray(self._weights, dtype=np.float32).reshape(self.dim, -1)
        self._g2 = np.ascontiguousarray(self._g2, dtype=np.float32).reshape(self.dim, -1)
        self._bias = np.asarray(self._bias, dtype=np.float64)
        self._bias_g2 = np.asarray(self._bias_g2, dtype=np.float64)
        self._set_labels = np.asarray(self._set_labels, dtype=np.int64)
        self._set_lengths = np.asarray(self._set_lengths, dtype=np.int64)
        self._set_starts = np.concatenate([[0], np.cumsum(self._set_lengths)[:-1]]).astype(np.int64)[:n]
        labels = self._set_labels.tolist()
        self._classes = {
            tuple(labels[start : start + length]): c
            for c, (start, length) in enumerate(
                zip(self._set_starts.tolist(), self._set_lengths.tolist(), strict=True)
            )
        }
        self._counts = SpaceSaving(
            SET_COUNT_CAPACITY,
            ((tuple(int(v) for v in key), int(count)) for key, count in state.meta["set_counts"]),
        )
        capacity = self._weights.shape[1]
        self._scored = None
        self._work = np.zeros(capacity, dtype=np.float64)
        self._targets = np.zeros(capacity, dtype=np.int64)


def _grown_columns(matrix: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.zeros((matrix.shape[0], capacity), dtype=matrix.dtype)
    grown[:, : matrix.shape[1]] = matrix
    return grown
