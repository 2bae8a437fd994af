"""The hashed sign projection: same answer for dense and sparse inputs, stable, distance-preserving."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.base import SparseVector
from labelflow.operators.drift import SignProjection


def random_sparse(rng: np.random.Generator, dim: int, nnz: int) -> SparseVector:
    indices = np.sort(rng.choice(dim, size=nnz, replace=False)).astype(np.int64)
    return SparseVector(indices, rng.normal(size=nnz).astype(np.float32), dim)


@pytest.mark.parametrize("dim", [1, 8, 32, 70, 128])
def test_sparse_dense_single_and_batch_agree(dim):
    rng = np.random.default_rng(dim)
    projection = SignProjection(dim, seed=5)
    rows = [random_sparse(rng, 500, 20) for _ in range(6)] + [
        SparseVector(np.zeros(0, np.int64), np.zeros(0, np.float32), 500)
    ]
    batch = projection.project_many(rows)
    dense = projection.project_many(np.stack([r.to_dense() for r in rows]))
    single = np.stack([projection.project_one(r) for r in rows])
    assert batch.shape == (7, dim)
    np.testing.assert_allclose(batch, dense, atol=1e-5)
    np.testing.assert_allclose(batch, single, atol=1e-5)
    assert not batch[-1].any()  # an empty vector projects to zero


def test_projection_is_a_function_of_the_seed_only():
    indices = np.array([0, 7, 123_456_789, 2**40])
    assert np.array_equal(
        SignProjection(32, seed=1).signs(indices), SignProjection(32, seed=1).signs(indices)
    )
    assert not np.array_equal(
        SignProjection(32, seed=1).signs(indices), SignProjection(32, seed=2).signs(indices)
    )
    signs = SignProjection(32, seed=1).signs(np.arange(20_000))
    np.testing.assert_allclose(np.unique(signs), [-1 / np.sqrt(32), 1 / np.sqrt(32)], rtol=1e-6)
    assert abs(float(signs.mean())) < 0.01  # balanced signs


def test_distances_are_roughly_preserved():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 300)).astype(np.float32)
    z = SignProjection(128, seed=0).project_many(x)
    original = np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(50, 1)]
    projected = np.linalg.norm(z[:, None] - z[None], axis=-1)[np.triu_indices(50, 1)]
    ratio = projected / original
    assert 0.9 < np.median(ratio) < 1.1 and ratio.min() > 0.6 and ratio.max() < 1.4


def test_normalize_divides_by_the_input_norm_and_mixed_batches_work():
    rng = np.random.default_rng(1)
    projection = SignProjection(16)
    sparse = random_sparse(rng, 1000, 30)
    dense = rng.normal(size=1000).astype(np.float32)
    both = projection.project_many([sparse, dense], normalize=True)
    np.testing.assert_allclose(
        both[0], projection.project_one(sparse) / np.linalg.norm(sparse.values), atol=1e-5
    )
    np.testing.assert_allclose(both[1], projection.project_one(dense, normalize=True), atol=1e-5)
    with pytest.raises(ValueError, match="different dimensions"):
        projection.project_many([dense, dense[:10]])
    with pytest.raises(ValueError, match="dim"):
        SignProjection(0)


def test_rows_project_exactly_like_a_list_of_the_same_rows():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(9, 40)).astype(np.float32)
    rows[3] = 0.0  # a zero row stays zero
    projection = SignProjection(dim=16, seed=2)
    for normalize in (False, True):
        expected = projection.project_many(list(rows), normalize=normalize)
        assert np.array_equal(projection.project_rows(rows, normalize=normalize), expected)


@pytest.mark.parametrize("dim", [8, 16, 32, 40, 64])  # 1, 2, 4, 5, 8 hash bytes (read as one word but 5)
def test_cached_hash_bytes_equal_the_computed_ones_in_any_order_of_growth(dim):
    projection = SignProjection(dim=dim, seed=5)
    for indices in ([7, 3], [200, 0, 7], [5000], [3, 2**21 + 1, 9]):  # the last one is past the cache
        keys = np.array(indices, dtype=np.int64)
        assert np.array_equal(projection._hash_bytes(keys), projection._compute_hash_bytes(keys))
    assert projection._hash_cache.shape[0] >= 5001


@pytest.mark.parametrize("normalize", [False, True])
def test_a_batch_of_sparse_vectors_projects_as_its_rows_in_a_mixed_batch(normalize):
    rng = np.random.default_rng(11)
    projection = SignProjection(32, seed=2)
    empty = SparseVector(np.zeros(0, np.int64), np.zeros(0, np.float32), 500)
    rows = [random_sparse(rng, 500, int(rng.integers(1, 30))) for _ in range(9)] + [empty]
    dense = rng.normal(size=500).astype(np.float32)
    sparse_only = projection.project_many(rows, normalize=normalize)
    mixed = projection.project_many([*rows, dense], normalize=normalize)  # rows sorted by kind first
    assert sparse_only.dtype == np.float32
    assert np.array_equal(sparse_only, mixed[:-1])
    assert not projection.project_many([empty, empty], normalize=normalize).any()
