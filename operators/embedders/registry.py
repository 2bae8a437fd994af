"""Embedders by name, as configuration files and command lines refer to them."""

from __future__ import annotations

from typing import Any

from labelflow.operators.embedders.base import Embedder

#: The names ``make_embedder`` accepts.
EMBEDDERS: tuple[str, ...] = ("hashing", "static", "transformer", "static+hashing")


def make_embedder(name: str, **kwargs: Any) -> Embedder:
    """A new embedder called ``name`` (one of ``EMBEDDERS``), built with ``kwargs``.

    * ``"hashing"``: ``HashingFeaturizer`` (sparse hashed word uni- and bigrams; default 2**18 columns).
    * ``"static"``: ``StaticEmbedder`` (distilled MiniLM token vectors; CPU-fast).
    * ``"transformer"``: ``TransformerEmbedder`` (all-MiniLM-L6-v2; use on a GPU).
    * ``"static+hashing"``: ``ConcatEmbedder`` of both; ``kwargs`` may hold ``hashing`` and ``static``
      (dicts of their arguments) and ``weights`` (hashing weight, static weight).

    >>> make_embedder("hashing", n_features=2**12).embed_one("corn exports").dim
    4096
    """
    if name == "hashing":
        from labelflow.operators.features.hashing import HashingFeaturizer

        return HashingFeaturizer(**kwargs)
    if name == "static":
        from labelflow.operators.embedders.static import StaticEmbedder

        return StaticEmbedder(**kwargs)
    if name == "transformer":
        from labelflow.operators.embedders.transformer import TransformerEmbedder

        return TransformerEmbedder(**kwargs)
    if name == "static+hashing":
        from labelflow.operators.embedders.concat import ConcatEmbedder

        hashing_kwargs = kwargs.pop("hashing", {})
        static_kwargs = kwargs.pop("static", {})
        weights = kwargs.pop("weights", None)
        if kwargs:
            raise TypeError(
                f"unexpected arguments for 'static+hashing': {sorted(kwargs)}; "
                "pass 'hashing', 'static' (dicts) and 'weights'"
            )
        return ConcatEmbedder(
            [make_embedder("hashing", **hashing_kwargs), make_embedder("static", **static_kwargs)],
            weights=weights,
        )
    raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")
