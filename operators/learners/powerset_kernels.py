"""Compiled kernels of :class:`~labelflow.operators.learners.powerset.LabelSetDecoder`.

The decoder's tables are flat arrays grouped by cluster (see ``LabelSetDecoder._flatten``): row ``r`` is a
seen label subset whose global label ids are ``row_labels[row_starts[r] : row_starts[r] + row_lengths[r]]``,
and the rows of cluster ``c`` are ``cluster_rows[c] : cluster_rows[c + 1]``. One compiled call decodes an
instance: every cluster's candidates (the empty subset, the seen subsets, the per-label decision when it
is a subset never seen) scored and the best one written into the output mask.

Sums run in the order numpy's ``np.add.reduceat`` uses (first element, plus the pairwise sum of the
rest), so the compiled decoder decides exactly as the vectorized one it replaced, bit for bit.
"""

from __future__ import annotations

import numpy as np

from labelflow.operators.compiled import kernel

#: numpy's pairwise summation block (``PW_BLOCKSIZE``): longer runs are split in two.
_BLOCK = 128


@kernel
def _pairwise_sum(values: np.ndarray, index: np.ndarray, start: int, n: int) -> float:
    """``values[index[start : start + n]]`` summed as numpy's pairwise summation sums a contiguous run."""
    if n < 8:
        total = 0.0
        for i in range(n):
            total += values[index[start + i]]
        return total
    if n <= _BLOCK:
        r0 = values[index[start]]
        r1 = values[index[start + 1]]
        r2 = values[index[start + 2]]
        r3 = values[index[start + 3]]
        r4 = values[index[start + 4]]
        r5 = values[index[start + 5]]
        r6 = values[index[start + 6]]
        r7 = values[index[start + 7]]
        i = 8
        end = n - n % 8
        while i < end:
            at = start + i
            r0 += values[index[at]]
            r1 += values[index[at + 1]]
            r2 += values[index[at + 2]]
            r3 += values[index[at + 3]]
            r4 += values[index[at + 4]]
            r5 += values[index[at + 5]]
            r6 += values[index[at + 6]]
            r7 += values[index[at + 7]]
            i += 8
        total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            total += values[index[start + i]]
            i += 1
        return total
    half = n // 2
    half -= half % 8
    return _pairwise_sum(values, index, start, half) + _pairwise_sum(values, index, start + half, n - half)


@kernel
def dependence_ratios(
    counts: np.ndarray,
    row_labels: np.ndarray,
    row_starts: np.ndarray,
    row_lengths: np.ndarray,
    cluster_rows: np.ndarray,
    total: float,
    n_labels: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The probabilities the subset scores are the logarithms of, from each row's faded ``counts``.

    Returns ``ratios``: each row's ``P(S)``, then each cluster's ``P(empty)`` and novelty probability,
    all over ``total + k + 1`` (``k`` subsets seen in the cluster); and each label's marginal, clipped to
    [1e-3, 1 - 1e-3]. Sums run in the order ``np.bincount`` sums (row by row).
    """
    n_clusters = cluster_rows.shape[0] - 1
    n_rows = counts.shape[0]
    ratios = np.empty(n_rows + 2 * n_clusters)
    marginal = np.zeros(n_labels)
    for c in range(n_clusters):
        sets = np.float64(cluster_rows[c + 1] - cluster_rows[c])
        denominator = total + sets + 1.0
        taken = 0.0
        for r in range(cluster_rows[c], cluster_rows[c + 1]):
            count = counts[r]
            start = row_starts[r]
            for j in range(start, start + row_lengths[r]):
                marginal[row_labels[j]] += count
            taken += count
            ratios[r] = max(count, 1e-12) / denominator
        ratios[n_rows + c] = max(max(total - taken, 0.0), 0.5) / denominator
        ratios[n_rows + n_clusters + c] = (sets + 1.0) / denominator
    scale = max(total, 1.0)
    for label in range(n_labels):
        marginal[label] = min(max(marginal[label] / scale, 1e-3), 1 - 1e-3)
    return ratios, marginal


@kernel
def dependence_scores(
    log_ratios: np.ndarray,
    log_marginal: np.ndarray,
    log_complement: np.ndarray,
    row_labels: np.ndarray,
    row_starts: np.ndarray,
    n_rows: int,
) -> np.ndarray:
    """The decoding kernels' ``scores`` from the logarithms of :func:`dependence_ratios`' results: each
    row's ``log P(S) - sum_{l in S} logit P(l)``, each cluster's empty-subset and novelty log-probability,
    each label's prior log-odds ``log P(l) - log(1 - P(l))``."""
    n_labels = log_marginal.shape[0]
    scores = np.empty(log_ratios.shape[0] + n_labels)
    prior_at = log_ratios.shape[0]
    for label in range(n_labels):
        scores[prior_at + label] = log_marginal[label] - log_complement[label]
    prior = scores[prior_at:]
    for r in range(n_rows):
        start = row_starts[r]
        end = row_starts[r + 1] if r + 1 < n_rows else row_labels.shape[0]
        logit_sum = prior[row_labels[start]] + _pairwise_sum(prior, row_labels, start + 1, end - start - 1)
        scores[r] = log_ratios[r] - logit_sum
    for i in range(n_rows, prior_at):
        scores[i] = log_ratios[i]
    return scores


@kernel
def decode_one(
    s: np.ndarray,
    beta: float,
    row_labels: np.ndarray,
    row_starts: np.ndarray,
    row_lengths: np.ndarray,
    cluster_rows: np.ndarray,
    scores: np.ndarray,
    cluster_of: np.ndarray,
    choice: np.ndarray,
    work: np.ndarray,
    out: np.ndarray,
) -> int:
    """The decided labels of one instance's threshold-shifted log-odds ``s`` (float64), written into ``out``.

    ``scores`` holds, concatenated, each row's dependence term, each cluster's empty-subset dependence,
    each cluster's novelty log-probability and each label's prior log-odds. ``choice`` (3, clusters) and
    ``work`` (2, clusters) are scratch; afterwards ``choice[0]`` is each cluster's choice (a row, -1 for
    the empty subset, -2 for the per-label decision) and ``choice[1]`` its best choice among the empty and
    the seen subsets. Returns how many clusters chose the per-label decision.
    """
    n_clusters = cluster_rows.shape[0] - 1
    n_rows = cluster_rows[n_clusters]  # not row_starts' length: it is [0] when no subset was seen
    # scores: row dependence (rows), then empty-subset dependence, novelty log-probability (clusters),
    # then every label's prior log-odds.
    empty_at = n_rows
    novel_at = n_rows + n_clusters
    prior_at = n_rows + 2 * n_clusters
    best = work[0]
    gain = work[1]
    fallback = choice[1]
    n_positive = choice[2]
    for c in range(n_clusters):
        # Candidate 1: the empty subset. Candidate 2: the first best seen subset, if it beats it.
        best[c] = beta * scores[empty_at + c]
        chosen = -1
        top = 0.0
        for r in range(cluster_rows[c], cluster_rows[c + 1]):
            start = row_starts[r]
            score = s[row_labels[start]] + _pairwise_sum(s, row_labels, start + 1, row_lengths[r] - 1)
            score += beta * scores[r]
            if chosen == -1 or score > top:
                top = score
                chosen = r
        if chosen != -1 and top > best[c]:
            best[c] = top
        else:
            chosen = -1
        choice[0, c] = chosen
        fallback[c] = chosen
        gain[c] = 0.0
        n_positive[c] = 0
    for label in range(s.shape[0]):
        out[label] = False
        if s[label] > 0.0:
            c = cluster_of[label]
            if c < 0:  # a label outside the partition keeps its per-label decision
                out[label] = True
                continue
            gain[c] += s[label] - beta * scores[prior_at + label]
            n_positive[c] += 1
    # Candidate 3: the per-label decision, when it is a subset never seen (a seen one is a row already).
    n_novel = 0
    for c in range(n_clusters):
        m = n_positive[c]
        if m == 0:
            continue
        seen = False
        for r in range(cluster_rows[c], cluster_rows[c + 1]):
            if row_lengths[r] != m:
                continue
            start = row_starts[r]
            seen = True
            for j in range(start, start + m):
                if not s[row_labels[j]] > 0.0:
                    seen = False
                    break
            if seen:
                break
        if seen:
            continue
        score = gain[c] + beta * scores[novel_at + c]
        if score > best[c]:
            best[c] = score
            choice[0, c] = -2
            n_novel += 1
    for label in range(s.shape[0]):
        if s[label] > 0.0:
            c = cluster_of[label]
            if c >= 0 and choice[0, c] == -2:
                out[label] = True
    for c in range(n_clusters):
        r = choice[0, c]
        if r >= 0:
            start = row_starts[r]
            for j in range(start, start + row_lengths[r]):
                out[row_labels[j]] = True
    return n_novel


@kernel
def decode_rows(
    s: np.ndarray,
    beta: float,
    row_labels: np.ndarray,
    row_starts: np.ndarray,
    row_lengths: np.ndarray,
    cluster_rows: np.ndarray,
    scores: np.ndarray,
    cluster_of: np.ndarray,
    choices: np.ndarray,
    work: np.ndarray,
    out: np.ndarray,
) -> int:
    """:func:`decode_one` of every row of ``s`` (instances, labels) into ``out``; ``choices`` is
    (instances, 3, clusters). Returns how many (instance, cluster) pairs chose the per-label decision."""
    n_novel = 0
    for i in range(s.shape[0]):
        n_novel += decode_one(
            s[i],
            beta,
            row_labels,
            row_starts,
            row_lengths,
            cluster_rows,
            scores,
            cluster_of,
            choices[i],
            work,
            out[i],
        )
    return n_novel


@kernel
def insert_rows(
    row_labels: np.ndarray,
    row_lengths: np.ndarray,
    cluster_rows: np.ndarray,
    new_cluster: np.ndarray,
    new_lengths: np.ndarray,
    new_labels: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The flat layout with new rows (ordered by cluster, ``new_labels`` their labels concatenated), each
    put after its cluster's rows. Returns row labels, row starts, row lengths, each row's cluster, each
    cluster's first row (and the end), the clusters with rows and their first rows: what the decoder
    builds from its tables (row starts ``[0]`` when there are no rows)."""
    n_clusters = cluster_rows.shape[0] - 1
    n_rows = row_lengths.shape[0] + new_lengths.shape[0]
    labels = np.empty(row_labels.shape[0] + new_labels.shape[0], dtype=np.int64)
    lengths = np.empty(n_rows, dtype=np.int64)
    clusters = np.empty(n_rows, dtype=np.int64)
    rows = np.empty(n_clusters + 1, dtype=np.int64)
    rows[0] = 0
    r = at = old_at = new_at = k = 0
    n_with_rows = 0
    for c in range(n_clusters):
        for old in range(cluster_rows[c], cluster_rows[c + 1]):
            length = row_lengths[old]
            lengths[r] = length
            clusters[r] = c
            labels[at : at + length] = row_labels[old_at : old_at + length]
            at += length
            old_at += length
            r += 1
        while k < new_cluster.shape[0] and new_cluster[k] == c:
            length = new_lengths[k]
            lengths[r] = length
            clusters[r] = c
            labels[at : at + length] = new_labels[new_at : new_at + length]
            at += length
            new_at += length
            r += 1
            k += 1
        rows[c + 1] = r
        if r > rows[c]:
            n_with_rows += 1
    starts = np.zeros(max(n_rows, 1), dtype=np.int64)
    for i in range(1, n_rows):
        starts[i] = starts[i - 1] + lengths[i - 1]
    with_rows = np.empty(n_with_rows, dtype=np.int64)
    first_rows = np.empty(n_with_rows, dtype=np.int64)
    i = 0
    for c in range(n_clusters):
        if rows[c + 1] > rows[c]:
            with_rows[i] = c
            first_rows[i] = rows[c]
            i += 1
    return labels, starts, lengths, clusters, rows, with_rows, first_rows
