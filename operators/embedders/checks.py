"""The conformance checks every embedder must pass (after river's ``check_estimator``).

Each check takes an embedder and raises ``AssertionError`` naming what is wrong. Tests apply all of
them to every embedder in the registry; a new embedder is conforming once ``check_embedder`` passes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from labelflow.operators.base import Features, SparseVector, dense_rows
from labelflow.operators.embedders.base import DenseEmbedder, Embedder

#: Texts that stress tokenizers: empty, blank, punctuation only, non-Latin scripts, emoji, control
#: characters, a lone surrogate, and one far longer than any model's sequence limit.
ODD_TEXTS: tuple[str, ...] = (
    "",
    "   \n\t ",
    "?!...",
    "Wheat exports ROSE 3.5% to 1.2 mln tonnes, the U.S. said.",
    "中文字符 Ελληνικά naïve résumé",
    "emoji 😀👍🏽 and ctrl\x00\x07chars",
    "lone \ud800 surrogate",
    "grain " * 3000,
)

SAMPLE_TEXTS: tuple[str, ...] = (
    "Wheat exports rose sharply in March.",
    "The central bank cut its discount rate by half a point.",
    "Crude oil prices fell after OPEC met in Vienna.",
    "Corn and soybean futures were mixed.",
    "A much longer article about the sugar harvest in Brazil, with several sentences. "
    "Analysts expect output to fall. Exporters disagree.",
)


def _rows_equal(a: Features, b: Features, atol: float) -> bool:
    if isinstance(a, SparseVector) or isinstance(b, SparseVector):
        return (
            isinstance(a, SparseVector)
            and isinstance(b, SparseVector)
            and a.dim == b.dim
            and np.array_equal(a.indices, b.indices)
            and np.allclose(a.values, b.values, atol=atol)
        )
    return a.shape == b.shape and np.allclose(a, b, atol=atol)


def _check_row(embedder: Embedder, row: Features, where: str) -> None:
    if embedder.sparse:
        assert isinstance(row, SparseVector), f"{where}: sparse embedder returned {type(row).__name__}"
        assert row.dim == embedder.dim, f"{where}: row dim {row.dim} != embedder dim {embedder.dim}"
        assert row.values.dtype == np.float32, f"{where}: values dtype {row.values.dtype}"
        assert row.indices.dtype == np.int64, f"{where}: indices dtype {row.indices.dtype}"
        assert np.all(np.diff(row.indices) > 0), f"{where}: indices not sorted and unique"
        assert row.nnz == 0 or (row.indices[0] >= 0 and row.indices[-1] < row.dim), (
            f"{where}: index out of range"
        )
        values = row.values
    else:
        assert isinstance(row, np.ndarray), f"{where}: dense embedder returned {type(row).__name__}"
        assert row.shape == (embedder.dim,), f"{where}: shape {row.shape} != ({embedder.dim},)"
        assert row.dtype == np.float32, f"{where}: dtype {row.dtype}"
        values = row
    assert np.all(np.isfinite(values)), f"{where}: non-finite values"
    norm = float(np.sqrt(np.sum(np.square(values, dtype=np.float64))))
    assert norm == 0.0 or abs(norm - 1.0) < 1e-3, f"{where}: norm {norm}, expected 1 (or 0 for no content)"


def check_attributes(embedder: Embedder) -> None:
    assert isinstance(embedder.identity, str) and embedder.identity, "identity must be a non-empty str"
    assert isinstance(embedder.dim, int) and embedder.dim > 0, (
        f"dim must be a positive int, got {embedder.dim!r}"
    )
    assert isinstance(embedder.sparse, bool), "sparse must be a bool"


def check_shapes_and_dtypes(embedder: Embedder) -> None:
    rows = embedder.embed_many(list(SAMPLE_TEXTS))
    assert isinstance(rows, list) and len(rows) == len(SAMPLE_TEXTS), "one row per text, as a list"
    for i, row in enumerate(rows):
        _check_row(embedder, row, f"sample text {i}")
        norm = np.linalg.norm(row.values if isinstance(row, SparseVector) else row)
        assert abs(norm - 1.0) < 1e-3, f"sample text {i} has norm {norm}, expected 1"
    if isinstance(embedder, DenseEmbedder):
        matrix = embedder.embed_array(list(SAMPLE_TEXTS))
        assert matrix.shape == (len(SAMPLE_TEXTS), embedder.dim) and matrix.dtype == np.float32
        assert np.array_equal(matrix, np.stack(dense_rows(rows))), "embed_array and embed_many disagree"


def check_empty_batch(embedder: Embedder) -> None:
    assert embedder.embed_many([]) == [], "an empty batch gives an empty list"
    if isinstance(embedder, DenseEmbedder):
        assert embedder.embed_array([]).shape == (0, embedder.dim)


def check_odd_texts(embedder: Embedder) -> None:
    rows = embedder.embed_many(list(ODD_TEXTS))
    assert len(rows) == len(ODD_TEXTS)
    for text, row in zip(ODD_TEXTS, rows, strict=True):
        _check_row(embedder, row, f"odd text {text[:20]!r}")


def check_rejects_non_text(embedder: Embedder) -> None:
    for bad in ([None], [b"bytes"], [3]):
        try:
            embedder.embed_many(bad)  # type: ignore[arg-type]  # a wrong type on purpose: it must be refused
        except TypeError:
            continue
        raise AssertionError(f"embed_many({bad!r}) must raise TypeError")
    try:
        embedder.embed_many("a single string")
    except TypeError:
        return
    raise AssertionError("embed_many on a bare string must raise TypeError (it is not a batch)")


def check_deterministic(embedder: Embedder) -> None:
    first = embedder.embed_many(list(SAMPLE_TEXTS))
    second = embedder.embed_many(list(SAMPLE_TEXTS))
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        assert _rows_equal(a, b, atol=0.0), f"text {i} embeds differently on a second call"


def check_batch_equals_one_by_one(embedder: Embedder, atol: float = 1e-5) -> None:
    """Batching (padding, length sorting) must not change results beyond float noise."""
    texts = list(SAMPLE_TEXTS) + ["", "short"]
    together = embedder.embed_many(texts)
    for i, text in enumerate(texts):
        alone = embedder.embed_one(text)
        assert _rows_equal(together[i], alone, atol=atol), f"text {i} differs in a batch and alone"


def check_similar_texts_closer(embedder: Embedder) -> None:
    """A sanity check on meaning: a paraphrase is nearer than an unrelated text."""
    a, b, c = embedder.embed_many(
        # Common words only, so that a static embedder distilled from a small vocabulary (as in the
        # fast tests: the first ~3,000 token ids) still sees every one of them.
        ["the team won the game", "the game was won by the team", "the government said the law was changed"]
    )

    def dense(x: Features) -> np.ndarray:
        return x.to_dense() if isinstance(x, SparseVector) else x

    a, b, c = dense(a), dense(b), dense(c)
    assert float(a @ b) > float(a @ c), "a paraphrase must be more similar than an unrelated text"


EMBEDDER_CHECKS: tuple[Callable[[Embedder], None], ...] = (
    check_attributes,
    check_shapes_and_dtypes,
    check_empty_batch,
    check_odd_texts,
    check_rejects_non_text,
    check_deterministic,
    check_batch_equals_one_by_one,
    check_similar_texts_closer,
)


def check_embedder(embedder: Embedder) -> None:
    """Run every conformance check on ``embedder``; the first failure raises ``AssertionError``."""
    for check in EMBEDDER_CHECKS:
        check(embedder)
