"""Compiled kernels of :class:`~labelflow.operators.learners.neighbours.RecentNeighbours`.

The window stores one instance per column of a ``(width, window)`` float32 matrix (dense vectors too), so
the similarities of a query to every stored instance are a sum, over the query's non-zero features, of
that feature's row scaled by the feature's value: contiguous, vectorised, and summed feature by feature
in the query's order, without reassociation (the same result on every CPU). The ``k`` most similar are
then picked in one pass (ties go to the earlier slot), and their squared similarities weigh their label
rows into a smoothed label frequency.
"""

from __future__ import annotations

import numpy as np

from labelflow.operators.compiled import kernel


@kernel
def _add_features(
    similarities: np.ndarray,
    stored: np.ndarray,
    features: np.ndarray,
    values: np.ndarray,
    start: int,
    end: int,
    size: int,
) -> None:
    """Add ``values[t] * stored[features[t], :size]`` to ``similarities`` for ``t`` in ``start:end``, four
    features per pass over the window (a quarter of the loads and stores of the similarities)."""
    t = start
    while t + 4 <= end:
        a, b, c, d = values[t], values[t + 1], values[t + 2], values[t + 3]
        ra, rb, rc, rd = (
            stored[features[t]],
            stored[features[t + 1]],
            stored[features[t + 2]],
            stored[features[t + 3]],
        )
        for j in range(size):
            similarities[j] += (a * ra[j] + b * rb[j]) + (c * rc[j] + d * rd[j])
        t += 4
    while t < end:
        a, ra = values[t], stored[features[t]]
        for j in range(size):
            similarities[j] += a * ra[j]
        t += 1


@kernel
def _vote(
    similarities: np.ndarray,
    size: int,
    k: int,
    labels: np.ndarray,
    label_totals: np.ndarray,
    n_seen: int,
    prior_weight: float,
    nearest: np.ndarray,
    out: np.ndarray,
) -> None:
    """Smoothed label frequencies among the ``k`` most similar of the first ``size`` slots, into ``out``."""
    n_labels = out.shape[0]
    # The k best so far, most similar first; a slot replaces the last one only when strictly more similar.
    found = 0
    last = np.float32(0.0)  # the similarity of the k-th best once there are k (read once per change)
    for j in range(size):
        value = similarities[j]
        if found == k:
            if not value > last:
                continue
            at = k - 1
        else:
            at = found
            found += 1
        while at > 0 and value > similarities[nearest[at - 1]]:
            nearest[at] = nearest[at - 1]
            at -= 1
        nearest[at] = j
        if found == k:
            last = similarities[nearest[k - 1]]
    weight_sum = 0.0
    tally = np.zeros(n_labels)
    for i in range(found):
        slot = nearest[i]
        weight = max(np.float64(similarities[slot]), 0.0)
        weight *= weight
        if weight == 0.0:
            continue
        weight_sum += weight
        row = labels[slot]
        for label in range(n_labels):
            tally[label] += weight * row[label]
    scale = 1.0 / (n_seen + 1.0)
    denominator = weight_sum + prior_weight
    for label in range(n_labels):
        prior = (label_totals[label] + 0.5) * scale
        if prior_weight > 0.0:
            out[label] = (tally[label] + prior_weight * prior) / denominator
        elif weight_sum > 0.0:  # without prior mass a query no neighbour resembles at all gets the prior
            out[label] = tally[label] / weight_sum
        else:
            out[label] = prior


@kernel
def votes_sparse(
    stored: np.ndarray,
    size: int,
    k: int,
    labels: np.ndarray,
    label_totals: np.ndarray,
    n_seen: int,
    prior_weight: float,
    indices: np.ndarray,
    values: np.ndarray,
    indptr: np.ndarray,
    similarities: np.ndarray,
    nearest: np.ndarray,
    out: np.ndarray,
) -> None:
    """The votes of every query row ``r`` (features ``indices[indptr[r]:indptr[r + 1]]`` with ``values``)
    into ``out[r]``; ``similarities`` (window) and ``nearest`` (k) are scratch."""
    for r in range(out.shape[0]):
        similarities[:size] = 0.0
        _add_features(similarities, stored, indices, values, indptr[r], indptr[r + 1], size)
        _vote(similarities, size, k, labels, label_totals, n_seen, prior_weight, nearest, out[r])


@kernel
def votes_dense(
    stored: np.ndarray,
    size: int,
    k: int,
    labels: np.ndarray,
    label_totals: np.ndarray,
    n_seen: int,
    prior_weight: float,
    queries: np.ndarray,
    similarities: np.ndarray,
    nearest: np.ndarray,
    out: np.ndarray,
) -> None:
    """The votes of every dense query row of ``queries`` into ``out``; ``similarities`` and ``nearest``
    are scratch."""
    for r in range(out.shape[0]):
        similarities[:size] = 0.0
        query = queries[r]
        features = np.flatnonzero(query)
        _add_features(similarities, stored, features, query[features], 0, features.shape[0], size)
        _vote(similarities, size, k, labels, label_totals, n_seen, prior_weight, nearest, out[r])


@kernel
def unit(values: np.ndarray) -> np.ndarray:
    """``values`` (float32) scaled to unit Euclidean norm (a copy; all zeros stay zeros)."""
    squares = 0.0
    for v in values:
        squares += np.float64(v) * np.float64(v)
    out = values.copy()
    if squares > 0.0:
        norm = np.float32(np.sqrt(squares))
        for i in range(out.shape[0]):
            out[i] = out[i] / norm
    return out


@kernel
def sketch(
    indices: np.ndarray, values: np.ndarray, code: np.ndarray, sums: np.ndarray, touched: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The signed feature-hashing sketch of a sparse vector, as sorted bucket ids and unit-norm float32
    values. Feature ``i`` adds ``values`` into bucket ``abs(code[i]) - 1`` with the sign of ``code[i]``
    (one small array, so that a wide input's look-ups stay in cache); ``sums`` (float64) and ``touched``
    (bool), one entry per bucket, are all zero / False before and after."""
    n_touched = 0
    order = np.empty(indices.shape[0], dtype=np.int64)
    for t in range(indices.shape[0]):
        signed = np.int64(code[indices[t]])
        b = abs(signed) - 1
        value = values[t]
        sums[b] += value if signed > 0 else -value  # float32 values summed in float64, as np.bincount does
        if not touched[b]:
            touched[b] = True
            order[n_touched] = b
            n_touched += 1
    kept = np.sort(order[:n_touched])
    out = np.empty(n_touched, dtype=np.float32)
    for i in range(n_touched):
        b = kept[i]
        out[i] = np.float32(sums[b])
        sums[b] = 0.0
        touched[b] = False
    return kept, unit(out)


@kernel
def store(
    stored: np.ndarray,
    slot: int,
    old_indices: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    labels: np.ndarray,
    label_totals: np.ndarray,
    y: np.ndarray,
) -> None:
    """Write an instance into column ``slot`` of the window (clearing what its previous occupant, at
    ``old_indices``, wrote) and its labels ``y`` into label row ``slot``; add ``y`` to the label totals."""
    for i in old_indices:
        stored[i, slot] = 0.0
    for t in range(indices.shape[0]):
        stored[indices[t], slot] = values[t]
    row = labels[slot]
    row[:] = 0.0
    for label in range(y.shape[0]):
        row[label] = y[label]
        label_totals[label] += y[label]


@kernel
def store_dense(
    stored: np.ndarray,
    slot: int,
    vector: np.ndarray,
    labels: np.ndarray,
    label_totals: np.ndarray,
    y: np.ndarray,
) -> None:
    """:func:`store` of a dense instance (every feature's row gets its value)."""
    for feature in range(vector.shape[0]):
        stored[feature, slot] = vector[feature]
    row = labels[slot]
    row[:] = 0.0
    for label in range(y.shape[0]):
        row[label] = y[label]
        label_totals[label] += y[label]
