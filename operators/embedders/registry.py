"""Embedders by name, as configuration files and command lines refer to them."""

from __future__ import annotations

from typing import Any

from labelflow.operators.embedders.base import Embedder
from labelflow.operators.embedders.hashing import HashingFeaturizer

#: The names ``make_embedder`` accepts.
EMBEDDERS: tuple[str, ...] = ("hashing", "static", "transformer")


def make_embedder(name: str, **kwargs: Any) -> Embedder:
    """A new embedder called ``name`` (one of ``EMBEDDERS``), built with ``kwargs``.

    * ``"hashing"``: ``HashingFeaturizer`` (sparse hashed word uni- and bigrams; default 2**18 columns).
    * ``"static"``: ``StaticEmbedder`` (distilled MiniLM token vectors; CPU-fast).
    * ``"transformer"``: ``TransformerEmbedder`` (all-MiniLM-L6-v2; use on a GPU).

    No combination is registered: ``ConcatEmbedder([hashing, static])`` measured no better than
    hashing alone on Reuters (benchmarks/embedding/RESULTS.md).

    >>> make_embedder("hashing", n_features=2**12).embed_one("corn exports").dim
    4096
    """
    if name == "hashing":
        return HashingFeaturizer(**kwargs)
    if name == "static":
        from labelflow.operators.embedders.static import StaticEmbedder

        return StaticEmbedder(**kwargs)
    if name == "transformer":
        from labelflow.operators.embedders.transformer import TransformerEmbedder

        return TransformerEmbedder(**kwargs)
    raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")
