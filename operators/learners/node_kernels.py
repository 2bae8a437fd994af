"""Compiled loops of the hashed node weights: node probabilities and AdaGrad steps, one call per document.

In numpy a node evaluation is a ``(features, nodes)`` table of slots, a gather of that many weights and a
matrix product: three temporaries of ``features x nodes`` elements per level of the beam search and per
learning step. These loops read each weight where it lies instead, one node at a time, and sum in float64.
"""

from __future__ import annotations

import math

import numpy as np

from labelflow.operators.compiled import kernel


@kernel
def node_probabilities(
    weights: np.ndarray,
    bias: np.ndarray,
    node_keys: np.ndarray,
    mask: int,
    feature_keys: np.ndarray,
    values: np.ndarray,
    nodes: np.ndarray,
) -> np.ndarray:
    """``sigmoid(bias[n] + sum_f values[f] * weights[(feature_keys[f] + node_keys[n]) & mask])`` per node."""
    n = nodes.shape[0]
    z = np.empty(n, dtype=np.float64)
    keys = np.empty(n, dtype=np.int64)
    for j in range(n):
        z[j] = bias[nodes[j]]
        keys[j] = node_keys[nodes[j]]
    # Nodes outer, features inner: a node's sum stays in a register and its loads are independent, so
    # the processor overlaps their cache misses. Features outer (a feature's slots in sibling nodes are
    # adjacent) wrote every partial sum back to memory and ran 1.75x slower (128 nodes x 128 features,
    # a 2**26 table: 140 against 80 µs a call). The sum's order is the same either way.
    for j in range(n):
        key = keys[j]
        total = z[j]
        for f in range(feature_keys.shape[0]):
            total += values[f] * weights[(feature_keys[f] + key) & mask]
        z[j] = total
    for j in range(n):
        z[j] = 1.0 / (1.0 + math.exp(-min(max(z[j], -30.0), 30.0)))
    return z


@kernel
def adagrad_steps(
    weights: np.ndarray,
    g2: np.ndarray,
    bias: np.ndarray,
    bias_g2: np.ndarray,
    node_keys: np.ndarray,
    mask: int,
    feature_keys: np.ndarray,
    values: np.ndarray,
    nodes: np.ndarray,
    gradient: np.ndarray,
    floor: float,
    learning_rate: float,
    offset: float,
) -> int:
    """One AdaGrad step of the logistic loss for each node whose ``|gradient|`` (``p - target``) passes
    ``floor``; returns how many nodes were updated."""
    updated = 0
    for j in range(nodes.shape[0]):
        g = gradient[j]
        if abs(g) <= floor:
            continue
        updated += 1
        node = nodes[j]
        node_key = node_keys[node]
        for f in range(feature_keys.shape[0]):
            slot = (feature_keys[f] + node_key) & mask
            step = values[f] * g
            accumulated = g2[slot] + step * step
            g2[slot] = accumulated
            weights[slot] -= learning_rate * step / math.sqrt(offset + accumulated)
        accumulated = bias_g2[node] + g * g
        bias_g2[node] = accumulated
        bias[node] -= learning_rate * g / math.sqrt(offset + accumulated)
    return updated


@kernel
def beam_search(
    weights: np.ndarray,
    bias: np.ndarray,
    node_keys: np.ndarray,
    mask: int,
    feature_keys: np.ndarray,
    values: np.ndarray,
    child_table: np.ndarray,
    child_count: np.ndarray,
    root: int,
    height: int,
    beam: int,
    last_width: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A probabilistic label tree's beam search from ``root`` down ``height`` levels.

    ``child_table[node, :child_count[node]]`` are a node's children. Each level evaluates the children
    of the frontier and keeps the ``beam`` most probable (``last_width`` at the bottom level), a node's
    probability being its parent's times its own given the parent's. Returns the bottom frontier and
    its probabilities (best first, ties in tree order), every node evaluated with its probability given
    its parent's, and the frontier one level above the bottom (the clusters the search reached).
    """
    widest = max(beam, last_width)
    capacity = 1 + height * widest * child_table.shape[1]
    evaluated = np.empty(capacity, dtype=np.int64)
    conditional = np.empty(capacity, dtype=np.float64)
    frontier = np.full(1, root, dtype=np.int64)
    p = node_probabilities(weights, bias, node_keys, mask, feature_keys, values, frontier)
    evaluated[0] = root
    conditional[0] = p[0]
    n_evaluated = 1
    routed = frontier.copy()
    for level in range(height, 0, -1):
        total = 0
        for i in range(frontier.shape[0]):
            total += child_count[frontier[i]]
        if total == 0:
            frontier = frontier[:0]
            p = p[:0]
            break
        kids = np.empty(total, dtype=np.int64)
        parent_p = np.empty(total, dtype=np.float64)
        t = 0
        for i in range(frontier.shape[0]):
            node = frontier[i]
            for c in range(child_count[node]):
                kids[t] = child_table[node, c]
                parent_p[t] = p[i]
                t += 1
        q = node_probabilities(weights, bias, node_keys, mask, feature_keys, values, kids)
        evaluated[n_evaluated : n_evaluated + total] = kids
        conditional[n_evaluated : n_evaluated + total] = q
        n_evaluated += total
        joint = parent_p * q
        width = beam if level > 1 else last_width
        order = np.argsort(-joint, kind="mergesort")[: min(width, total)]
        frontier = kids[order]
        p = joint[order]
        if level == 2:
            routed = frontier.copy()
    return frontier, p, evaluated[:n_evaluated], conditional[:n_evaluated], routed


@kernel
def training_nodes(
    leaves: np.ndarray, parent: np.ndarray, child_table: np.ndarray, child_count: np.ndarray, mark: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """PLT's training set of one instance whose true labels sit at ``leaves``: every node on their paths
    is positive, every child of a positive node that is not positive is negative. ``mark`` is a zeroed
    scratch array of one byte per node (left zeroed)."""
    positive = np.empty(leaves.shape[0] * 64, dtype=np.int64)  # paths are far shorter than 64 nodes
    n_positive = 0
    n_negative = 0
    for i in range(leaves.shape[0]):
        node = leaves[i]
        while node >= 0 and mark[node] == 0:
            mark[node] = 1
            positive[n_positive] = node
            n_positive += 1
            node = parent[node]
    for i in range(n_positive):
        n_negative += child_count[positive[i]]
    nodes = np.empty(n_positive + n_negative, dtype=np.int64)
    nodes[:n_positive] = positive[:n_positive]
    t = n_positive
    for i in range(n_positive):
        node = positive[i]
        for c in range(child_count[node]):
            child = child_table[node, c]
            if mark[child] == 0:
                nodes[t] = child
                t += 1
    for i in range(n_positive):
        mark[positive[i]] = 0
    targets = np.zeros(t, dtype=np.float64)
    targets[:n_positive] = 1.0
    return nodes[:t], targets
