"""Several embedders side by side: their outputs concatenated into one vector."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelflow.operators.base import Features, SparseVector, dense_rows
from labelflow.operators.embedders.base import DenseEmbedder, Embedder, check_texts


class ConcatEmbedder(Embedder):
    """The concatenation of the outputs of ``parts``, part i scaled by ``weights[i]``.

    The concatenation is L2-normalised, so with unit-norm parts a dot product is a weighted mean of
    the parts' cosine similarities (weights squared), and a part with nothing to say (a zero vector,
    e.g. hashing an all-punctuation text) does not shrink the vector. The output is sparse (a
    ``SparseVector``) when any part is sparse: dense parts then take one column per dimension, after
    the columns of the parts before them.

    Measured on Reuters, hashing + static was no better than hashing alone, so no combination is in
    the registry; the class stays for experiments (benchmarks/embedding).

    Examples
    --------
    >>> import tempfile
    >>> from labelflow.operators.embedders.static import StaticEmbedder
    >>> from labelflow.operators.embedders.hashing import HashingFeaturizer
    >>> static = StaticEmbedder(cache_dir=tempfile.mkdtemp(), method="input", dim=16)
    >>> both = ConcatEmbedder([HashingFeaturizer(n_features=2**10), static])
    >>> v = both.embed_one("wheat exports rose")
    >>> v.dim, both.sparse, round(float((v.values ** 2).sum()), 4)
    (1040, True, 1.0)
    """

    def __init__(self, parts: Sequence[Embedder], weights: Sequence[float] | None = None) -> None:
        parts = list(parts)
        if len(parts) < 2:
            raise ValueError(f"ConcatEmbedder needs at least two parts, got {len(parts)}")
        weights = [1.0] * len(parts) if weights is None else [float(w) for w in weights]
        if len(weights) != len(parts):
            raise ValueError(f"{len(weights)} weights for {len(parts)} parts")
        if any(w <= 0 for w in weights):
            raise ValueError(f"weights must be positive, got {weights}")
        self.parts = parts
        self.weights = weights
        self.sparse = any(part.sparse for part in parts)
        self.dim = int(sum(part.dim for part in parts))
        self._offsets = np.cumsum([0] + [part.dim for part in parts[:-1]]).tolist()
        self.identity = (
            "concat("
            + ",".join(f"{w:g}*{part.identity}" for w, part in zip(weights, parts, strict=True))
            + ")"
        )

    def __repr__(self) -> str:
        return f"ConcatEmbedder({self.parts!r}, weights={self.weights})"

    def embed_many(self, texts: Sequence[str]) -> list[Features]:
        texts = check_texts(texts)
        if not texts:
            return []
        outputs = [_part_rows(part, texts) for part in self.parts]
        if not self.sparse:
            matrix = np.hstack(
                [w * np.stack(dense_rows(rows)) for w, rows in zip(self.weights, outputs, strict=True)]
            )
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            np.divide(matrix, norms, out=matrix, where=norms > 0)
            return list(matrix.astype(np.float32, copy=False))
        return [self._sparse_row([rows[i] for rows in outputs]) for i in range(len(texts))]

    def _sparse_row(self, pieces: list[Features]) -> SparseVector:
        indices: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for piece, offset, weight in zip(pieces, self._offsets, self.weights, strict=True):
            if isinstance(piece, SparseVector):
                indices.append(piece.indices + offset)
                values.append(piece.values * weight)
            else:
                nonzero = np.flatnonzero(piece)
                indices.append(nonzero.astype(np.int64) + offset)
                values.append(piece[nonzero] * weight)
        row = np.concatenate(values).astype(np.float64, copy=False)
        norm = float(np.sqrt(row @ row))
        if norm > 0:
            row = row / norm
        return SparseVector(
            np.concatenate(indices).astype(np.int64, copy=False), row.astype(np.float32), self.dim
        )


def _part_rows(part: Embedder, texts: list[str]) -> list[Features]:
    if isinstance(part, DenseEmbedder):
        return list(part.embed_array(texts))
    return part.embed_many(texts)
