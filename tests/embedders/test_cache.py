"""The on-disk embedding cache: hits, persistence across processes' runs, crash safety."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from labelflow.operators.embedders.base import DenseEmbedder
from labelflow.operators.embedders.cache import CachedEmbedder, text_digest
from labelflow.operators.embedders.hashing import HashingFeaturizer


class CountingEmbedder(DenseEmbedder):
    """Wraps a real embedder and records which texts reached it."""

    def __init__(self, inner):
        self.inner = inner
        self.identity = inner.identity
        self.dim = inner.dim
        self.seen: list[str] = []

    def embed_array(self, texts):
        self.seen.extend(texts)
        return self.inner.embed_array(texts)


@pytest.fixture
def counting(static_input):
    return CountingEmbedder(static_input)


def test_second_run_reads_everything_from_disk(counting, static_input, tmp_path, reuters_texts):
    texts = reuters_texts[:50]
    with CachedEmbedder(counting, tmp_path) as cache:
        first = cache.embed_array(texts)
    assert len(counting.seen) == len(set(texts))
    np.testing.assert_array_equal(first, static_input.embed_array(texts))

    counting.seen.clear()
    reopened = CachedEmbedder(counting, tmp_path)
    assert len(reopened) == len(set(texts))
    np.testing.assert_array_equal(reopened.embed_array(texts), first)
    assert counting.seen == [] and reopened.hits == len(texts) and reopened.misses == 0


def test_only_misses_reach_the_embedder_and_duplicates_once(counting, tmp_path):
    cache = CachedEmbedder(counting, tmp_path)
    cache.embed_array(["corn", "wheat"])
    rows = cache.embed_array(["wheat", "rice", "rice", "corn"])
    assert counting.seen == ["corn", "wheat", "rice"]
    assert np.array_equal(rows[1], rows[2]) and cache.misses == 3 and cache.hits == 3


def test_shards_are_written_every_shard_rows(counting, tmp_path):
    cache = CachedEmbedder(counting, tmp_path, shard_rows=2)
    cache.embed_array(["a b", "c d", "e f"])  # 3 misses >= 2: flushed as one shard
    assert len(list(cache.directory.glob("shard-*.keys.npy"))) == 1
    cache.embed_array(["g h"])  # buffered only
    assert len(list(cache.directory.glob("shard-*.keys.npy"))) == 1
    cache.flush()
    assert len(list(cache.directory.glob("shard-*.keys.npy"))) == 2
    cache.flush()  # nothing buffered: no empty shard
    assert len(list(cache.directory.glob("shard-*.keys.npy"))) == 2


def test_float16_storage_returns_what_it_stored(counting, tmp_path):
    cache = CachedEmbedder(counting, tmp_path, dtype="float16")
    first = cache.embed_array(["oil prices fell"])
    cache.flush()
    assert first.dtype == np.float32
    again = CachedEmbedder(counting, tmp_path, dtype="float16").embed_array(["oil prices fell"])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, counting.inner.embed_array(["oil prices fell"]), atol=1e-3)


def test_interrupted_writes_are_ignored(counting, tmp_path, caplog):
    cache = CachedEmbedder(counting, tmp_path)
    cache.embed_array(["kept"])
    cache.flush()
    # A crash between the two renames leaves a vectors file with no keys file (no commit marker), a
    # crash inside a write leaves a temporary file, and a damaged keys file cannot be parsed.
    (cache.directory / "shard-9-1-1.vectors.npy").write_bytes(b"partial")
    (cache.directory / ".tmp-1-shard-9-1-2.keys.npy").write_bytes(b"partial")
    (cache.directory / "shard-9-1-3.vectors.npy").write_bytes(b"partial")
    (cache.directory / "shard-9-1-3.keys.npy").write_bytes(b"\x93NUMPY garbage")
    counting.seen.clear()
    with caplog.at_level(logging.WARNING):
        reopened = CachedEmbedder(counting, tmp_path)
    assert "skipping" in caplog.text
    assert len(reopened) == 1
    reopened.embed_array(["kept"])
    assert counting.seen == []


def test_one_directory_per_identity_and_mismatch_detected(counting, static_contextual, tmp_path):
    a = CachedEmbedder(counting, tmp_path)
    b = CachedEmbedder(static_contextual, tmp_path)
    assert a.directory != b.directory
    (a.directory / "identity.txt").write_text("something else")
    with pytest.raises(ValueError, match="belongs to embedder"):
        CachedEmbedder(counting, tmp_path)


def test_shared_directory_sees_both_writers(counting, tmp_path):
    one, two = CachedEmbedder(counting, tmp_path), CachedEmbedder(counting, tmp_path)
    one.embed_array(["alpha"])
    two.embed_array(["beta", "alpha"])
    one.flush()
    two.flush()
    assert len(CachedEmbedder(counting, tmp_path)) == 2


def test_rejects_sparse_embedders_and_bad_arguments(counting, tmp_path):
    with pytest.raises(TypeError, match="dense"):
        CachedEmbedder(HashingFeaturizer(), tmp_path)
    with pytest.raises(ValueError, match="dtype"):
        CachedEmbedder(counting, tmp_path, dtype="int8")
    with pytest.raises(ValueError, match="shard_rows"):
        CachedEmbedder(counting, tmp_path, shard_rows=0)


def test_text_digest_accepts_any_string():
    assert len(text_digest("lone \ud800 surrogate")) == 16
    assert text_digest("a") != text_digest("b")
