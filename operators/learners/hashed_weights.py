"""Logistic models for many nodes in one fixed-size hashed weight table (memory independent of the labels)."""

from __future__ import annotations

import numpy as np

from labelflow.operators.learners.node_kernels import adagrad_steps, node_probabilities
from labelflow.operators.mix64 import mix64
from labelflow.operators.state import State, Stateful

_NODE_SALT = np.uint64(0x9E3779B97F4A7C15)  # keeps node keys and feature keys independent
# Keys keep 40 bits whatever the table size, so a table can double (see grow) and their sums stay in int64.
_KEY_BITS = np.uint64((1 << 40) - 1)
_MAX_FILL = 0.5  # a table this full doubles (while under max_bits): collisions stay below about one in two


class HashedNodeWeights(Stateful):
    """One online logistic regression per node, all sharing a table of ``2 ** bits`` weights.

    The weight of feature ``f`` in node ``n`` lives in slot ``(key(f) + key(n)) mod 2 ** bits`` (Vowpal
    Wabbit's trick): memory is fixed whatever the number of nodes and features, and two (feature, node)
    pairs collide with probability ``2 ** -bits``. The table is allocated lazily by the operating
    system (``np.zeros`` maps a page at its first write), up to ``8 * 2 ** bits`` bytes (weights and
    their AdaGrad accumulators). Where transparent huge pages are on (numpy asks for them for large
    arrays; many Linux defaults grant them) a page is 2 MB, and the scattered writes of the first
    documents make the whole table resident at once: on EUR-Lex the tree's first learning step added
    504 MB. Resident memory is then the table's size, fixed, whatever the labels.

    The table starts at ``2 ** bits`` weights and doubles (up to ``2 ** max_bits``) when over half of it
    is in use (:meth:`maybe_grow`): the doubled table holds two copies of the old one, so every weight
    reads as before and the pairs that shared a slot drift apart as they learn. Memory and checkpoints
    therefore follow what was learned.

    Each weight has its own AdaGrad step size: a node deep in a tree sees few instances and keeps large
    steps while the root's shrink. Biases are per node (dense, they grow with the nodes).

    >>> w = HashedNodeWeights(bits=12)
    >>> w.add_nodes(2)
    >>> features, values = np.array([3, 7]), np.array([0.6, 0.8], dtype=np.float32)
    >>> keys = w.feature_keys(features)
    >>> nodes = np.array([0, 1])
    >>> for _ in range(30):
    ...     p = w.probabilities(keys, values, nodes)
    ...     _ = w.learn(keys, values, nodes, p - np.array([1.0, 0.0]))
    >>> (w.probabilities(keys, values, nodes) > 0.5).tolist()
    [True, False]
    """

    state_settings = ("bits", "max_bits", "learning_rate", "adagrad_offset")

    def __init__(
        self,
        *,
        bits: int = 20,
        max_bits: int | None = None,
        learning_rate: float = 0.5,
        adagrad_offset: float = 1.0,
    ) -> None:
        max_bits = bits if max_bits is None else max_bits
        if not 8 <= bits <= max_bits <= 31:
            raise ValueError(f"bits must be within 8..max_bits..31, not {bits}..{max_bits}")
        self.bits = bits
        self.max_bits = max_bits
        self.learning_rate = learning_rate
        self.adagrad_offset = adagrad_offset
        self._mask = np.int64((1 << bits) - 1)
        self.weights = np.zeros(1 << bits, dtype=np.float32)
        self.g2 = np.zeros(1 << bits, dtype=np.float32)
        self.bias = np.zeros(0, dtype=np.float32)
        self.bias_g2 = np.zeros(0, dtype=np.float32)
        self._node_keys = np.zeros(0, dtype=np.int64)
        self.n_nodes = 0

    def reserve(self, n_nodes: int) -> None:
        """Allocate room for ``n_nodes`` nodes now, so that adding them later cannot fail for memory."""
        if n_nodes > self.bias.shape[0]:
            extra = n_nodes - self.bias.shape[0]
            self.bias = np.concatenate([self.bias, np.zeros(extra, dtype=np.float32)])
            self.bias_g2 = np.concatenate([self.bias_g2, np.zeros(extra, dtype=np.float32)])
            self._node_keys = np.concatenate([self._node_keys, np.zeros(extra, dtype=np.int64)])

    def add_nodes(self, n: int, bias: float = 0.0, keys: np.ndarray | None = None) -> None:
        """Make room for ``n`` more nodes (ids continue from :attr:`n_nodes`), starting at ``bias``.

        ``keys`` place the nodes' weights in the table (default: a hash of the node id). Nodes evaluated
        together (siblings) are faster with consecutive keys: the weights of one feature in all of them
        then share a few cache lines.
        """
        needed = self.n_nodes + n
        if needed > self.bias.shape[0]:
            self.reserve(max(needed, 2 * self.bias.shape[0], 64))
        if keys is None:
            ids = np.arange(self.n_nodes, needed, dtype=np.uint64)
            keys = self.hash_keys(ids)
        self._node_keys[self.n_nodes : needed] = np.asarray(keys, dtype=np.int64) & np.int64(_KEY_BITS)
        self.bias[self.n_nodes : needed] = bias
        self.bias_g2[self.n_nodes : needed] = 0.0
        self.n_nodes = needed

    def hash_keys(self, ids: np.ndarray) -> np.ndarray:
        """Table keys spread at random from integer ids (``ids`` can be node ids or anything stable)."""
        return (mix64(np.asarray(ids, dtype=np.uint64) * _NODE_SALT + np.uint64(1)) & _KEY_BITS).astype(
            np.int64
        )

    @property
    def mask(self) -> int:
        """``2 ** bits - 1``: a slot is ``(feature key + node key) & mask``."""
        return int(self._mask)

    @property
    def node_keys(self) -> np.ndarray:
        return self._node_keys[: self.n_nodes]

    def feature_keys(self, indices: np.ndarray) -> np.ndarray:
        """The hashed keys of feature ``indices`` (computed once per instance, reused for every node)."""
        return (mix64(indices.astype(np.uint64)) & _KEY_BITS).astype(np.int64)

    def probabilities(self, feature_keys: np.ndarray, values: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """The probability of each of ``nodes`` (float64) for an instance of these feature keys and values."""
        return node_probabilities(
            self.weights, self.bias, self._node_keys, int(self._mask), feature_keys, values, nodes
        )

    def learn(
        self,
        feature_keys: np.ndarray,
        values: np.ndarray,
        nodes: np.ndarray,
        gradient: np.ndarray,
        floor: float = 0.0,
    ) -> int:
        """One AdaGrad step of the logistic loss for the nodes whose ``|gradient|`` (``p - target``) is
        over ``floor``; returns how many nodes were updated.

        A slot shared by two (node, feature) pairs of the same step takes both updates, one after the
        other (the collision the table size bounds).
        """
        return int(
            adagrad_steps(
                self.weights,
                self.g2,
                self.bias,
                self.bias_g2,
                self._node_keys,
                int(self._mask),
                feature_keys,
                values,
                nodes,
                np.asarray(gradient, dtype=np.float64),
                floor,
                self.learning_rate,
                self.adagrad_offset,
            )
        )

    def fill(self) -> float:
        """The fraction of the table in use, estimated from a sample of its slots."""
        return float(np.count_nonzero(self.g2[::61])) / float(self.g2[::61].shape[0])

    def maybe_grow(self) -> bool:
        """Double the table if it is over half full and may grow; returns whether it grew."""
        if self.bits >= self.max_bits or self.fill() <= _MAX_FILL:
            return False
        self.weights = np.tile(self.weights, 2)
        self.g2 = np.tile(self.g2, 2)
        self.bits += 1
        self._mask = np.int64((1 << self.bits) - 1)
        return True

    def _save_state(self, state: State) -> None:
        """Only the slots learned so far are stored (the whole table once that is smaller): the
        checkpoint grows with learning, not with the table."""
        # Counted before the slots are listed: a list of every used slot of a full table would take as
        # much memory as the table itself, at the moment a checkpoint is written.
        dense = 3 * int(np.count_nonzero(self.g2)) > self.g2.shape[0]  # slot ids cost 4 bytes: past 1/3, all
        state.meta.update(n_nodes=self.n_nodes, dense=dense)
        if dense:
            state.arrays.update(weights=self.weights, g2=self.g2)
        else:
            used = np.flatnonzero(self.g2)
            state.arrays.update(slots=used.astype(np.uint32), weights=self.weights[used], g2=self.g2[used])
        state.arrays.update(
            bias=self.bias[: self.n_nodes].copy(),
            bias_g2=self.bias_g2[: self.n_nodes].copy(),
            node_keys=self.node_keys.copy(),
        )

    def _load_state(self, state: State) -> None:
        self.add_nodes(int(state.meta["n_nodes"]), keys=state.arrays["node_keys"])
        if state.meta["dense"]:
            self.weights = state.arrays["weights"].astype(np.float32)
            self.g2 = state.arrays["g2"].astype(np.float32)
        else:
            slots = state.arrays["slots"].astype(np.int64)
            self.weights[slots] = state.arrays["weights"]
            self.g2[slots] = state.arrays["g2"]
        self.bias[: self.n_nodes] = state.arrays["bias"]
        self.bias_g2[: self.n_nodes] = state.arrays["bias_g2"]
