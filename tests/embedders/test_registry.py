"""Embedders by name, and the concatenation embedder."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.base import SparseVector
from labelflow.operators.embedders.concat import ConcatEmbedder
from labelflow.operators.embedders.hashing import HashingFeaturizer
from labelflow.operators.embedders.registry import EMBEDDERS, make_embedder
from labelflow.operators.embedders.static import StaticEmbedder
from labelflow.operators.embedders.transformer import TransformerEmbedder


def test_every_name_builds(static_cache_dir):
    built = {
        "hashing": make_embedder("hashing", n_features=2**12),
        "static": make_embedder("static", cache_dir=static_cache_dir, method="input", dim=64),
        "transformer": make_embedder("transformer", device="cpu", max_seq_length=16),
    }
    assert set(built) == set(EMBEDDERS)
    assert isinstance(built["hashing"], HashingFeaturizer) and built["hashing"].dim == 4096
    assert isinstance(built["static"], StaticEmbedder) and built["static"].dim == 64
    assert isinstance(built["transformer"], TransformerEmbedder)
    assert built["transformer"].max_seq_length == 16


def test_unknown_names_and_arguments_are_named():
    with pytest.raises(ValueError, match="hashing, static, transformer"):
        make_embedder("word2vec")
    with pytest.raises(TypeError):
        make_embedder("static", no_such_setting=3)


def test_concat_layout_and_norm(static_input):
    hashing = HashingFeaturizer(n_features=2**10)
    both = ConcatEmbedder([hashing, static_input], weights=[2.0, 1.0])
    text = "wheat and corn exports"
    row = both.embed_one(text)
    assert isinstance(row, SparseVector) and row.dim == 2**10 + static_input.dim
    assert both.identity == f"concat(2*{hashing.identity},1*{static_input.identity})"
    hashed = hashing.transform_one(text)
    dense = static_input.embed_one(text)
    expected = np.concatenate([hashed.to_dense() * 2.0, dense])
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(row.to_dense(), expected, atol=1e-6)


def test_concat_of_dense_parts_is_dense(static_input, static_contextual):
    both = ConcatEmbedder([static_input, static_contextual])
    rows = both.embed_many(["oil", "gold"])
    assert not both.sparse and rows[0].shape == (static_input.dim + static_contextual.dim,)
    assert abs(float(np.linalg.norm(rows[0])) - 1.0) < 1e-5


def test_concat_argument_validation(static_input):
    with pytest.raises(ValueError, match="at least two"):
        ConcatEmbedder([static_input])
    with pytest.raises(ValueError, match="weights"):
        ConcatEmbedder([static_input, static_input], weights=[1.0])
    with pytest.raises(ValueError, match="positive"):
        ConcatEmbedder([static_input, static_input], weights=[1.0, 0.0])
