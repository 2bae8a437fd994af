"""A vote of the most similar recent documents over their label sets, in memory fixed by the window."""

from __future__ import annotations

import numpy as np

from labelflow.operators.compiled import kernel
from labelflow.operators.state import Stateful

_HASHES = 4  # dimensions each feature is spread over (a count sketch): similarities err less than with one


@kernel
def sketch(feature_keys: np.ndarray, values: np.ndarray, dim: int) -> np.ndarray:
    """A unit vector of ``dim`` floats whose dot products approximate the cosine of the sparse inputs."""
    out = np.zeros(dim, dtype=np.float32)
    for f in range(feature_keys.shape[0]):
        key = feature_keys[f]
        for h in range(_HASHES):
            # a multiplicative hash (int64 products wrap around) of the key and the copy: its high bits
            mixed = (key + h * 0x14057B7EF767814F) * 0x5851F42D4C957F2D
            sign = 1.0 if (mixed >> 40) & 1 else -1.0
            out[((mixed >> 41) & 0x3FFFFF) % dim] += sign * values[f]
    norm = np.sqrt(np.sum(out * out))
    if norm > 0:
        out /= norm
    return out


@kernel
def mixed_scores(
    similarity: np.ndarray,
    k: int,
    row_labels: np.ndarray,
    row_counts: np.ndarray,
    candidates: np.ndarray,
    p: np.ndarray,
    weight: float,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - weight) * p`` of the candidates plus ``weight`` times the similarity-weighted share of the
    ``k`` most similar rows that carry each label; the ``width`` best labels first."""
    nearest = np.zeros(k, dtype=np.int64)
    best = np.full(k, -np.inf)
    n_nearest = 0
    for row in range(similarity.shape[0]):  # the k largest, kept sorted by insertion
        s = similarity[row]
        if n_nearest == k and s <= best[k - 1]:
            continue
        i = min(n_nearest, k - 1)
        while i > 0 and best[i - 1] < s:
            best[i] = best[i - 1]
            nearest[i] = nearest[i - 1]
            i -= 1
        best[i] = s
        nearest[i] = row
        n_nearest = min(n_nearest + 1, k)
    total = 0.0
    n_votes = 0
    for i in range(n_nearest):
        if best[i] > 0.0:
            total += best[i]
            n_votes += row_counts[nearest[i]]
    labels = np.empty(candidates.shape[0] + n_votes, dtype=np.int64)
    scores = np.empty(labels.shape[0], dtype=np.float64)
    for j in range(candidates.shape[0]):
        labels[j] = candidates[j]
        scores[j] = (1.0 - weight) * p[j]
    t = candidates.shape[0]
    for i in range(n_nearest):
        if best[i] > 0.0:
            row = nearest[i]
            for c in range(row_counts[row]):
                labels[t] = row_labels[row, c]
                scores[t] = weight * best[i] / total
                t += 1
    order = np.argsort(labels, kind="mergesort")
    unique = np.empty(t, dtype=np.int64)
    summed = np.zeros(t, dtype=np.float64)
    n = -1
    for j in range(t):
        label = labels[order[j]]
        if n < 0 or unique[n] != label:
            n += 1
            unique[n] = label
        summed[n] += scores[order[j]]
    n += 1
    ranked = np.argsort(-summed[:n], kind="mergesort")[: min(width, n)]
    return unique[ranked], summed[ranked]


class SketchedNeighbourVote(Stateful):
    """Scores labels by how much of the ``k`` most similar of the last ``window`` documents carry them.

    Each learned document is kept as a short sketch of its features (``dim`` floats, a signed hash of
    every feature over a few dimensions, unit norm) with its label ids; a query's similarity to each is
    a dot product. A label's vote is the similarity-weighted share of the ``k`` nearest documents that
    carry it. Memory is ``window * (dim * 4 + max_row_labels * 8)`` bytes, whatever the number of labels.

    >>> votes = SketchedNeighbourVote(window=4, k=2, dim=32)
    >>> a, b = np.array([11, 12], dtype=np.int64), np.array([17, 19], dtype=np.int64)
    >>> ones = np.ones(2, dtype=np.float32)
    >>> votes.learn(a, ones, [0]); votes.learn(b, ones, [1, 2])
    >>> sorted(votes.scores(b, ones).items())
    [(1, 1.0), (2, 1.0)]
    """

    state_settings = ("window", "k", "dim", "max_row_labels")
    state_fields = ("n",)
    state_arrays = ("vectors", "row_labels", "row_counts")

    def __init__(self, *, window: int = 2048, k: int = 16, dim: int = 128, max_row_labels: int = 32) -> None:
        if window < 1 or k < 1 or dim < 8 or max_row_labels < 1:
            raise ValueError("window, k and max_row_labels must be at least 1, dim at least 8")
        self.window = window
        self.k = k
        self.dim = dim
        self.max_row_labels = max_row_labels
        self.vectors = np.zeros((window, dim), dtype=np.float32)
        # The label ids of the document in each row (its first max_row_labels: a vote is about typical sets).
        self.row_labels = np.zeros((window, max_row_labels), dtype=np.int64)
        self.row_counts = np.zeros(window, dtype=np.int64)
        self.n = 0  # documents learned; the next goes to row n % window

    def mix(
        self,
        feature_keys: np.ndarray,
        values: np.ndarray,
        candidates: np.ndarray,
        p: np.ndarray,
        weight: float,
        width: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``width`` best of ``candidates`` (scored ``p``) and the nearest documents' labels, scored
        ``(1 - weight) * p + weight * vote`` (``p`` is 0 for a label that is not a candidate)."""
        used = min(self.n, self.window)
        if not used:
            return candidates, p
        similarity = self.vectors[:used] @ sketch(feature_keys, values, self.dim)
        return mixed_scores(
            similarity, self.k, self.row_labels, self.row_counts, candidates, p, weight, width
        )

    def scores(self, feature_keys: np.ndarray, values: np.ndarray) -> dict[int, float]:
        """Label id -> the nearest recent documents' vote for it, in [0, 1]."""
        none = np.zeros(0, dtype=np.int64)
        labels, votes = self.mix(feature_keys, values, none, np.zeros(0), 1.0, self.k * self.max_row_labels)
        return dict(zip(labels.tolist(), votes.tolist(), strict=True))

    def learn(self, feature_keys: np.ndarray, values: np.ndarray, label_ids: list[int]) -> None:
        row = self.n % self.window
        self.vectors[row] = sketch(feature_keys, values, self.dim)
        kept = label_ids[: self.max_row_labels]
        self.row_labels[row, : len(kept)] = kept
        self.row_counts[row] = len(kept)
        self.n += 1
