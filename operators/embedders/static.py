"""Static embeddings: a document is the weighted mean of distilled token vectors (CPU-fast)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from labelflow.operators.embedders.base import DenseEmbedder, check_texts, tokenizable
from labelflow.operators.embedders.distill import (
    METHODS,
    TokenVectors,
    build_key,
    distill_token_vectors,
)
from labelflow.operators.embedders.minilm import bundled_model_dir, check_model_dir
from labelflow.operators.embedders.paths import default_cache_dir
from labelflow.operators.embedders.tokenization import load_tokenizer
from labelflow.operators.embedders.wordpiece import MemoizedWordPiece

log = logging.getLogger(__name__)

WEIGHTINGS = ("zipf", "uniform")


def zipf_token_weights(vocab_size: int, sif: float = 1e-4) -> np.ndarray:
    """SIF weights ``sif / (sif + p(token))`` with ``p`` from Zipf's law over the token id order.

    WordPiece vocabularies list tokens roughly by corpus frequency, so the id stands in for the
    frequency rank: frequent tokens ("the", "of", single characters) get small weights, rare and
    informative ones weights near 1 (Arora et al. 2017, "A simple but tough-to-beat baseline for
    sentence embeddings"; rank-based probabilities as in model2vec).
    """
    ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
    probability = 1.0 / ranks
    probability /= probability.sum()
    return (sif / (sif + probability)).astype(np.float32)


class StaticEmbedder(DenseEmbedder):
    """Weighted mean of static token vectors taken from all-MiniLM-L6-v2, L2-normalised.

    A document is the SIF-weighted, sublinear-TF mean of the vectors of its WordPiece tokens (after
    model2vec, Tulkens & van Dongen 2024, and SIF, Arora et al. 2017). The token vectors are built
    once (see ``distill``) and kept in ``cache_dir``; later instances load them in milliseconds.
    Embedding a document is tokenization (memoised per word) plus one sparse matrix product:
    thousands of documents per second on one CPU core, with no length limit. A text with no known
    token (e.g. empty) embeds to the zero vector.

    Parameters
    ----------
    model_dir
        The transformer to distil; default: the bundled all-MiniLM-L6-v2.
    cache_dir
        Where distilled vectors are stored; default ``$LABELFLOW_CACHE_DIR`` or ``~/.cache/labelflow``.
    method
        ``"input"`` (the model's input embedding table; builds in a second) or ``"contextual"``
        (each token's sentence embedding through the whole model; a one-time build of about two
        minutes on 2 CPU cores). On Reuters the input table scored 0.005 micro-F1 higher
        (benchmarks/embedding/RESULTS.md).
    dim
        PCA output dimension (``None``: the model's 384, centred and rotated; 256 lost 0.011
        micro-F1 on Reuters).
    weighting
        ``"zipf"`` (SIF weights from the token frequency rank) or ``"uniform"`` (plain mean).
    sublinear_tf
        Count a token repeated ``tf`` times in a text as ``1 + log(tf)`` (+0.006 micro-F1 on Reuters
        over raw counts).
    sif
        The SIF constant ``a`` of the ``"zipf"`` weighting: smaller values discount frequent tokens
        more. 1e-5 measured best on Reuters among 1e-3 .. 1e-7, 0.012 micro-F1 above model2vec's
        1e-4 (benchmarks/embedding/RESULTS.md).
    vocab_limit
        Distil only the first that many token ids (for fast tests); ``None``: the whole vocabulary.
    max_tokens
        Tokens read per text (``None``: all).
    device
        Where the one-time distillation runs (``"auto"``: CUDA if available).

    Examples
    --------
    >>> import tempfile
    >>> embedder = StaticEmbedder(cache_dir=tempfile.mkdtemp(), method="input", dim=64)
    >>> matrix = embedder.embed_array(["wheat exports rose", ""])
    >>> matrix.shape, matrix.dtype.name
    ((2, 64), 'float32')
    >>> round(float(np.linalg.norm(matrix[0])), 4), float(np.abs(matrix[1]).sum())
    (1.0, 0.0)
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
        method: str = "input",
        dim: int | None = None,
        weighting: str = "zipf",
        sif: float = 1e-5,
        sublinear_tf: bool = True,
        vocab_limit: int | None = None,
        max_tokens: int | None = None,
        device: str = "auto",
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}; use one of {WEIGHTINGS}")
        if not sif > 0:
            raise ValueError(f"sif must be > 0, got {sif}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens}")
        self.model_dir = bundled_model_dir() if model_dir is None else check_model_dir(Path(model_dir))
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        key = build_key(self.model_dir, method, dim, vocab_limit)
        self.vectors_dir = self.cache_dir / "static" / key
        self.token_vectors = self._load_or_build(method, dim, vocab_limit, device)
        vocab_size = self.token_vectors.vectors.shape[0]
        weights = (
            zipf_token_weights(vocab_size, sif) if weighting == "zipf" else np.ones(vocab_size, np.float32)
        )
        # Tokens a partial build left out weigh nothing, so they neither move the mean nor count.
        self._weights = weights * self.token_vectors.covered
        self._vectors = np.ascontiguousarray(self.token_vectors.vectors, dtype=np.float32)
        self._wordpiece = MemoizedWordPiece(load_tokenizer(self.model_dir, None))
        self.max_tokens = max_tokens
        self.sublinear_tf = bool(sublinear_tf)
        self.dim = int(self._vectors.shape[1])
        tokens_part = "all" if max_tokens is None else str(max_tokens)
        weighting_part = f"zipf(sif={sif:g})" if weighting == "zipf" else weighting
        tf_part = "sublinear" if self.sublinear_tf else "linear"
        self.identity = f"static/{key}/{weighting_part}/tf={tf_part}/max_tokens={tokens_part}/l2"

    def _load_or_build(
        self, method: str, dim: int | None, vocab_limit: int | None, device: str
    ) -> TokenVectors:
        if (self.vectors_dir / "meta.json").is_file():
            return TokenVectors.load(self.vectors_dir)
        log.info("no distilled token vectors at %s: building them once (%s)", self.vectors_dir, method)
        built = distill_token_vectors(
            self.model_dir, method=method, dim=dim, vocab_limit=vocab_limit, device=device
        )
        built.save(self.vectors_dir)
        return built

    def __repr__(self) -> str:
        return f"StaticEmbedder(identity={self.identity!r})"

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        token_ids = [self._wordpiece.ids(tokenizable(text)) for text in texts]
        if self.max_tokens is not None:
            token_ids = [ids[: self.max_tokens] for ids in token_ids]
        lengths = np.fromiter(map(len, token_ids), dtype=np.int64, count=len(texts))
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.fromiter(itertools.chain.from_iterable(token_ids), dtype=np.int64, count=int(indptr[-1]))
        counts = sp.csr_matrix(
            (np.ones(indices.shape[0], dtype=np.float32), indices, indptr),
            shape=(len(texts), self._vectors.shape[0]),
        )
        if self.sublinear_tf:
            counts.sum_duplicates()  # one entry per (text, token) with its count
            counts.data = 1.0 + np.log(counts.data)
        counts.data *= self._weights[counts.indices]
        out = np.asarray(counts @ self._vectors, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
