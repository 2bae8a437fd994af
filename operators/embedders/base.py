"""The embedder role: a batch of texts in, one feature vector per text out."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from labelflow.operators.base import Features


class Embedder(abc.ABC):
    """Turns texts into feature vectors for the classifiers.

    ``identity`` is a stable string naming the embedder and every setting that changes its output
    (used as the cache key); ``dim`` is the output dimension; ``sparse`` says whether ``embed_many``
    returns ``SparseVector`` rows (hashing) or dense float32 rows (neural embedders).
    """

    identity: str
    dim: int
    sparse: bool

    @abc.abstractmethod
    def embed_many(self, texts: Sequence[str]) -> list[Features]:
        """One feature vector per text, in order."""

    def embed_one(self, text: str) -> Features:
        return self.embed_many([text])[0]


class DenseEmbedder(Embedder):
    """An embedder whose output is a dense float32 matrix (one L2-normalised row per text).

    Subclasses implement ``embed_array``; ``embed_many`` returns its rows. Batch consumers (the embed
    stage, the cache, the benchmarks) call ``embed_array`` to keep the matrix in one piece.
    """

    sparse = False

    @abc.abstractmethod
    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dim)`` float32 matrix, row i embedding ``texts[i]``."""

    def embed_many(self, texts: Sequence[str]) -> list[Features]:
        return list(self.embed_array(texts))


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, after checking every item is a string (a clear error instead of a
    tokenizer traceback when a caller passes None or bytes)."""
    if isinstance(texts, str):
        raise TypeError("embed_many expects a sequence of texts, not a single string; use embed_one")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, expected str")
    return texts


def tokenizable(text: str) -> str:
    """``text`` with lone UTF-16 surrogates (which ``json.loads`` accepts from ``"\\ud800"`` escapes)
    replaced by ``?``: Rust tokenizers reject such strings outright."""
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
