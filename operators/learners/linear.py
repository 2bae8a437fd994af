"""Binary-relevance logistic heads for every label, updated together in one vectorized step."""

from __future__ import annotations

import numpy as np

from labelflow.operators.base import Features, SparseVector, dense_rows, sparse_rows
from labelflow.operators.compiled import kernel
from labelflow.operators.learners.growth import grow_last_axis
from labelflow.operators.learners.sparse_batch import compact_rows
from labelflow.operators.state import State, Stateful

# Labels restarted by drift handling keep their own step sizes until these are within 10% of the shared
# ones: once the instances seen in all are 1 / (1 - 1 / 1.1**2) = 5.8x those seen before the restart.
_RESTART_MERGE_FRACTION = 1.0 - 1.0 / 1.1**2
_MAX_RESTARTED_GROUPS = 16  # each keeps one accumulator snapshot of (dim + 1) floats


@kernel
def _adagrad_step(
    weights: np.ndarray,
    g2: np.ndarray,
    rows: np.ndarray,
    values: np.ndarray,
    gradient: np.ndarray,
    learning_rate: float,
    offset: float,
    group: np.ndarray,
    snapshots: np.ndarray,
) -> None:
    """In place: the AdaGrad step of the feature rows ``rows`` (unique; empty: every row, ``values`` is
    then the dense instance) and of the bias row, for the labels of ``gradient``.

    A label ``j`` with ``group[j] >= 0`` (``group`` may be empty: none) steps with the accumulators
    counted from its restart, ``g2 - snapshots[group[j]]``. Every operation is the float32 one of the
    vectorized form, in its order, so the weights are the same to the bit.
    """
    rate = np.float32(learning_rate)
    shift = np.float32(offset)
    n = gradient.shape[0]
    bias = g2.shape[0] - 1
    dense = rows.shape[0] == 0
    count = values.shape[0]
    restarted = group.shape[0] > 0
    group_step = np.empty(snapshots.shape[0], dtype=np.float32)
    for k in range(count):
        row = k if dense else rows[k]
        g2[row] += values[k] * values[k]
    g2[bias] += np.float32(1.0)
    for k in range(count):
        row = k if dense else rows[k]
        accumulated = g2[row]
        step = rate / np.sqrt(shift + accumulated) * values[k]
        if not restarted:
            for j in range(n):
                weights[row, j] += step * gradient[j]
            continue
        for g in range(snapshots.shape[0]):
            group_step[g] = rate / np.sqrt(shift + (accumulated - snapshots[g, row])) * values[k]
        for j in range(n):
            own = group[j]
            weights[row, j] += (step if own < 0 else group_step[own]) * gradient[j]
    bias_step = rate / np.sqrt(shift + g2[bias])
    for j in range(n):
        weights[bias, j] += bias_step * gradient[j]
        if restarted and group[j] >= 0:
            own_step = rate / np.sqrt(shift + (g2[bias] - snapshots[group[j], bias]))
            weights[bias, j] += (own_step - bias_step) * gradient[j]


@kernel
def _sparse_products(indices: np.ndarray, values: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """``out[j]`` = ``sum_k values[k] * weights[indices[k], j]`` for the labels of ``out`` (summed over
    the nonzeros in order, one weight row at a time)."""
    n = out.shape[0]
    for j in range(n):
        out[j] = np.float32(0.0)
    for k in range(indices.shape[0]):
        value = values[k]
        row = indices[k]
        for j in range(n):
            out[j] += value * weights[row, j]


@kernel
def _negated_bounded_logits(products: np.ndarray, bias: np.ndarray) -> None:
    """In place: ``-min(max(products + bias, -30), 30)`` (float32, as the numpy form of
    :meth:`LinearHeads.probabilities` computes it before its exponential)."""
    low = np.float32(-30.0)
    high = np.float32(30.0)
    for i in range(products.shape[0]):
        products[i] = -min(max(products[i] + bias[i], low), high)


@kernel
def _logistic_gradient(y: np.ndarray, exp_negated: np.ndarray, gradient: np.ndarray) -> None:
    """``gradient = y - 1 / (1 + exp_negated)``: the targets minus the probabilities, as
    :meth:`LinearHeads.learn` computes them from :meth:`LinearHeads.probabilities`."""
    one = np.float32(1.0)
    for i in range(gradient.shape[0]):
        gradient[i] = y[i] - one / (one + exp_negated[i])


_NO_ROWS = np.zeros(0, dtype=np.int64)
_NO_GROUPS = np.zeros((0, 0), dtype=np.float32)


class LinearHeads(Stateful):
    """One online logistic regression per label, stored as a single ``(dim + 1, labels)`` matrix.

    A step costs ``O(nnz(x) * labels)`` with no Python loop over labels. Learning rates adapt per
    feature (AdaGrad on the squared feature values, shared by all labels), which suits both dense
    embeddings and sparse bag-of-words whose rare terms need larger steps.

    AdaGrad's steps shrink as evidence accumulates, which is right on a stationary stream and wrong after
    a concept drift: a label whose weights were zeroed would relearn at the tiny step sizes of a
    long-converged model. :meth:`reset` and :meth:`adopt` therefore give the labels they restart step
    sizes counted from the restart (the shared accumulators minus a snapshot), until those are within
    10% of the shared ones.

    Parameters
    ----------
    learning_rate
        Base step size of the per-feature AdaGrad rate.
    l2
        L2 penalty applied to the touched weights at each step.
    adagrad_offset
        Added to the squared-gradient sum in the step size ``learning_rate / sqrt(offset + sum)``.

    >>> heads = LinearHeads()
    >>> x = np.array([1.0, 0.0], dtype=np.float32)
    >>> for _ in range(20):
    ...     p = heads.probabilities(x, n_labels=2)
    ...     heads.learn(x, np.array([1.0, 0.0], dtype=np.float32), p)
    >>> (heads.probabilities(x, n_labels=2) > 0.5).tolist()
    [True, False]
    """

    state_settings = ("learning_rate", "l2", "adagrad_offset")
    state_fields = ("dim",)
    state_arrays = ("weights", "_g2")

    def __init__(self, *, learning_rate: float = 0.5, l2: float = 0.0, adagrad_offset: float = 1.0) -> None:
        self.learning_rate = learning_rate
        self.adagrad_offset = adagrad_offset
        self.l2 = l2
        self.dim: int | None = None
        self.weights = np.zeros((0, 0), dtype=np.float32)  # last row is the bias
        self._g2 = np.zeros(0, dtype=np.float32)  # AdaGrad accumulators per feature (+ bias)
        # (labels, accumulators at their restart): the step sizes of these labels count from there on.
        self._restarted: list[tuple[np.ndarray, np.ndarray]] = []
        self._groups: tuple[np.ndarray, np.ndarray] | None = None  # _restart_groups's, while _restarted holds

    def _ensure(self, dim: int, n_labels: int) -> None:
        if self.dim is None:
            self.dim = dim
            self.weights = np.zeros((dim + 1, max(n_labels, 8)), dtype=np.float32)
            self._g2 = np.zeros(dim + 1, dtype=np.float32)
        elif dim != self.dim:
            raise ValueError(f"feature dimension changed from {self.dim} to {dim}")
        self.weights = grow_last_axis(self.weights, n_labels)

    def logits(self, x: Features, n_labels: int) -> np.ndarray:
        """Raw scores ``w_l . x + b_l`` for the first ``n_labels`` labels."""
        return self.products(x, n_labels) + self.weights[-1, :n_labels]

    def products(self, x: Features, n_labels: int) -> np.ndarray:
        """:meth:`logits` without the bias ``b_l`` (the last row of :attr:`weights`): ``w_l . x``."""
        if isinstance(x, SparseVector):
            if x.dim != self.dim or n_labels > self.weights.shape[1]:
                self._ensure(x.dim, n_labels)
            out = np.empty(n_labels, dtype=np.float32)
            _sparse_products(x.indices, x.values.astype(np.float32, copy=False), self.weights, out)
            return out
        if x.shape[0] != self.dim or n_labels > self.weights.shape[1]:
            self._ensure(x.shape[0], n_labels)
        return x @ self.weights[:-1, :n_labels]

    def logits_many(self, xs: list[Features], n_labels: int) -> np.ndarray:
        """:meth:`logits` of a batch, ``(len(xs), n_labels)``, in one matrix product."""
        if not xs:
            return np.zeros((0, n_labels), dtype=np.float32)
        dims = {x.dim if isinstance(x, SparseVector) else x.shape[0] for x in xs}
        if len(dims) > 1:
            raise ValueError(f"a batch mixes feature dimensions {sorted(dims)}")
        self._ensure(dims.pop(), n_labels)
        w = self.weights
        if isinstance(xs[0], SparseVector):
            batch, columns = compact_rows([(x.indices, x.values) for x in sparse_rows(xs)])
            z = np.asarray(batch @ w[columns, :n_labels])
        else:
            z = np.stack(dense_rows(xs)) @ w[:-1, :n_labels]
        return z + w[-1, :n_labels]

    def probabilities(self, x: Features, n_labels: int) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(self.logits(x, n_labels), -30.0), 30.0)))

    def learn_logistic(self, x: Features, y: np.ndarray) -> None:
        """:meth:`learn` from the heads' own :meth:`probabilities` of ``x`` (float32 targets ``y``, one per
        label): the same step, with the per-label arithmetic in two compiled calls around numpy's
        exponential instead of ten numpy calls (a background learner takes one such step per instance)."""
        n = y.shape[0]
        z = self.products(x, n)
        _negated_bounded_logits(z, self.weights[-1])
        gradient = np.empty(n, dtype=np.float32)
        _logistic_gradient(y, np.exp(z), gradient)
        self.learn_gradient(x, gradient)

    def learn(self, x: Features, y: np.ndarray, p: np.ndarray) -> None:
        """One logistic-loss step given targets ``y`` and the probabilities ``p`` predicted for ``x``."""
        self.learn_gradient(x, (y - p).astype(np.float32, copy=False))

    def learn_gradient(self, x: Features, gradient: np.ndarray) -> None:
        """:meth:`learn` given the gradient ``y - p`` of the logistic loss in the logits (one per label)."""
        n_labels = gradient.shape[0]
        dim = x.dim if isinstance(x, SparseVector) else x.shape[0]
        if dim != self.dim or n_labels > self.weights.shape[1]:
            self._ensure(dim, n_labels)
        w = self.weights
        values = x.values if isinstance(x, SparseVector) else x
        if not self.l2 and values.dtype == np.float32 and gradient.dtype == np.float32:
            # The hot path: one compiled step over the touched rows, in place (a dense zero feature's row
            # and accumulator get exactly zero added, as if it were skipped).
            group, snapshots = self._restart_groups(n_labels)
            rows = x.indices if isinstance(x, SparseVector) else _NO_ROWS
            _adagrad_step(
                w, self._g2, rows, values, gradient, self.learning_rate, self.adagrad_offset, group, snapshots
            )
            if self._restarted:
                self._merge_restarted()
            return
        if isinstance(x, SparseVector):
            idx, values = x.indices, x.values
        else:
            idx = np.flatnonzero(x)
            values = x[idx]
        self._g2[idx] += values * values
        self._g2[-1] += 1.0
        accumulated, bias_accumulated = self._g2[idx], self._g2[-1]
        block = w[idx, :n_labels]
        restarted = [(labels, block[:, labels], snapshot) for labels, snapshot in self._restarted]
        self._step(block, accumulated, values, gradient)
        bias_rate = self._rates(bias_accumulated)
        w[-1, :n_labels] += bias_rate * gradient
        if not restarted:
            w[idx, :n_labels] = block
            return
        for labels, sub, snapshot in restarted:
            self._step(sub, accumulated - snapshot[idx], values, gradient[labels])
            block[:, labels] = sub
            w[-1, labels] += (self._rates(bias_accumulated - snapshot[-1]) - bias_rate) * gradient[labels]
        w[idx, :n_labels] = block
        if restarted:
            self._merge_restarted()

    def _restart_groups(self, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
        """Per label, its restarted group (-1: none; empty: no label restarted), and the groups' snapshots."""
        if not self._restarted:
            return _NO_ROWS, _NO_GROUPS
        if self._groups is None or self._groups[0].shape[0] != n_labels:
            group = np.full(n_labels, -1, dtype=np.int64)
            for i, (labels, _) in enumerate(self._restarted):
                group[labels[labels < n_labels]] = i
            self._groups = (group, np.stack([snapshot for _, snapshot in self._restarted]).astype(np.float32))
        return self._groups

    def _rates(self, accumulated: np.ndarray) -> np.ndarray:
        return self.learning_rate / np.sqrt(self.adagrad_offset + accumulated)

    def _step(
        self, block: np.ndarray, accumulated: np.ndarray, values: np.ndarray, gradient: np.ndarray
    ) -> None:
        """In place: the AdaGrad step of the rows ``block`` (features) given their accumulators."""
        rates = self._rates(accumulated)
        if self.l2:
            block *= 1.0 - (rates * self.l2)[:, None]
        block += np.outer(rates * values, gradient)

    # ------------------------------------------------------------------ restarts (drift adaptation)

    def reset(self, labels: list[int] | np.ndarray) -> None:
        """Forget the weights of ``labels`` and restart their step sizes."""
        labels = np.unique(np.asarray(labels, dtype=np.int64))
        if self.dim is None or labels.size == 0:
            return
        self._ensure(self.dim, int(labels[-1]) + 1)
        self.weights[:, labels] = 0.0
        self._restart(labels, self._g2.copy())

    def adopt(self, labels: list[int] | np.ndarray, other: LinearHeads) -> None:
        """Take ``other``'s heads (its labels ``0..len(labels)-1``) for ``labels``, with its step sizes.

        ``other`` must have learned from the same instances as these heads since it started, as the
        background heads of a drift warning do; its accumulators are then those of these heads minus
        their value at its start.
        """
        labels = np.asarray(labels, dtype=np.int64)
        if other.dim is None or labels.size == 0:
            return
        if self.dim != other.dim:
            raise ValueError(
                f"cannot adopt heads of dimension {other.dim} into heads of dimension {self.dim}"
            )
        self._ensure(other.dim, int(labels.max()) + 1)
        self.weights[:, labels] = other.weights[:, : labels.size]
        self._restart(labels, np.maximum(self._g2 - other._g2, 0.0))

    def _restart(self, labels: np.ndarray, snapshot: np.ndarray) -> None:
        kept = [(group[~np.isin(group, labels)], snap) for group, snap in self._restarted]
        self._restarted = [(group, snap) for group, snap in kept if group.size][
            -(_MAX_RESTARTED_GROUPS - 1) :
        ]
        self._restarted.append((labels, snapshot.astype(np.float32)))
        self._groups = None

    def _merge_restarted(self) -> None:
        """Return restarted labels to the shared step sizes once theirs are close (the bias counts instances)."""
        limit = _RESTART_MERGE_FRACTION * self._g2[-1]
        kept = [(labels, snap) for labels, snap in self._restarted if snap[-1] > limit]
        if len(kept) != len(self._restarted):
            self._restarted = kept
            self._groups = None

    @property
    def restarted_labels(self) -> list[int]:
        """Labels whose step sizes currently count from a restart (:meth:`reset` or :meth:`adopt`)."""
        return sorted(int(label) for labels, _ in self._restarted for label in labels)

    def _save_state(self, state: State) -> None:
        state.meta["n_restarted"] = len(self._restarted)
        for i, (labels, snapshot) in enumerate(self._restarted):
            state.arrays[f"restarted{i}/labels"], state.arrays[f"restarted{i}/g2"] = labels, snapshot

    def _load_state(self, state: State) -> None:
        self._restarted = [
            (state.arrays[f"restarted{i}/labels"], state.arrays[f"restarted{i}/g2"])
            for i in range(state.meta.get("n_restarted", 0))
        ]
        self._groups = None
