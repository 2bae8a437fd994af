"""Compiled loops of the hashed node weights: node probabilities and AdaGrad steps, one call per document.

In numpy a node evaluation is a ``(features, nodes)`` table of slots, a gather of that many weights and a
matrix product: three temporaries of ``features x nodes`` elements per level of the beam search and per
learning step. These loops read each weight where it lies instead (features outer, nodes inner: a
feature's weights in sibling nodes are adjacent in the table), and sum in float64.
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
    for f in range(feature_keys.shape[0]):
        key = feature_keys[f]
        value = values[f]
        for j in range(n):
            z[j] += value * weights[(key + keys[j]) & mask]
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
