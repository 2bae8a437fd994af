"""A random sign projection that needs no stored matrix: entry (i, j) is a hash of (seed, i, j).

Hashing features live in spaces of a million dimensions; a stored Gaussian projection matrix would not
fit, and the same input index must always map the same way (across restarts, without pickling a
matrix). Sign projections with entries +-1/sqrt(dim) preserve distances in the Johnson-Lindenstrauss
sense (Achlioptas, "Database-friendly random projections", PODS 2001).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from labelflow.operators.base import Features, SparseVector, feature_dim
from labelflow.operators.compiled import kernel

# Dense inputs up to this dimension get their projection matrix materialised once (float32, dim columns).
_MAX_CACHED_INPUT_DIM = 1 << 16
# Input indices below this get their hash bytes computed once and kept (4 MB at 32 output dimensions for
# the hashing featurizer's 2**18 columns; sparse inputs reuse the same few thousand indices all the time).
_MAX_CACHED_HASH_INDEX = 1 << 20

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser, element-wise on uint64 (wrapping arithmetic is intended)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MIX_1
    x = (x ^ (x >> np.uint64(27))) * _MIX_2
    return x ^ (x >> np.uint64(31))


@kernel
def _byte_sums(
    rows: np.ndarray, hash_bytes: np.ndarray, weights: np.ndarray, sums: np.ndarray, squares: np.ndarray
) -> None:
    """Per hash byte ``k``, the weighted counts ``sums[k, row * 256 + byte]`` of the nonzeros (row ``rows[t]``,
    byte ``hash_bytes[t, k]``, weight ``weights[t]``), and per row the sum of its squared weights, each
    summed from zero in nonzero order: what ``np.bincount`` gives, byte by byte, in one pass."""
    for t in range(weights.shape[0]):
        row = rows[t]
        base = row * 256
        weight = weights[t]
        for k in range(hash_bytes.shape[1]):
            sums[k, base + hash_bytes[t, k]] += weight
        squares[row] += weight * weight


class SignProjection:
    """Projects dense or sparse vectors of any dimension to ``dim`` dimensions.

    Parameters
    ----------
    dim
        Output dimension.
    seed
        Chooses the projection; the same seed always gives the same projection.

    Examples
    --------
    >>> projection = SignProjection(dim=8, seed=3)
    >>> x = SparseVector.from_dict({5: 1.0, 1_000_000: 2.0}, dim=1 << 20)
    >>> z = projection.project_many([x])[0]
    >>> z.shape, bool(np.allclose(z, projection.project_many([x.to_dense()])[0], atol=1e-6))
    ((8,), True)
    """

    def __init__(self, dim: int, seed: int = 0) -> None:
        if dim < 1:
            raise ValueError(f"projection dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.seed = int(seed)
        self._words = -(-self.dim // 64)  # 64 signs per hash
        self._seed_key = _splitmix64(np.array([self.seed], dtype=np.uint64))[0]
        self._scale = np.float32(1.0 / np.sqrt(self.dim))
        self._n_bytes = -(-self.dim // 8)
        bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little")
        self._byte_signs = ((1.0 - 2.0 * bits) * self._scale).astype(np.float32)  # (256, 8)
        # The same signs in float64 (exactly), as the byte sums are multiplied by them: no cast per product.
        self._byte_signs_64 = self._byte_signs.astype(np.float64)
        # A cached row of hash bytes read as one unsigned integer, where its width is one's (a gather of
        # one element per index instead of a row of bytes).
        self._hash_word = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}.get(self._n_bytes)
        self._dense_matrix: np.ndarray | None = None
        self._hash_cache = np.zeros((0, self._n_bytes), dtype=np.uint8)  # rows: input indices 0, 1, ...

    def signs(self, indices: np.ndarray) -> np.ndarray:
        """Rows of the projection matrix for the given input indices: shape (len(indices), dim), +-1/sqrt(dim)."""
        # Each hash byte selects a row of 8 signs from a table.
        hash_bytes = self._hash_bytes(indices)
        return self._byte_signs[hash_bytes].reshape(len(hash_bytes), -1)[:, : self.dim]

    def _hash_bytes(self, indices: np.ndarray) -> np.ndarray:
        """The hash bytes of each input index (``n_bytes`` each): from the cache where the indices fit it."""
        indices = np.asarray(indices)
        if not indices.size:
            return self._compute_hash_bytes(indices)
        top = int(indices.max()) + 1
        if top > _MAX_CACHED_HASH_INDEX or int(indices.min()) < 0:
            return self._compute_hash_bytes(indices)
        cached = self._hash_cache.shape[0]
        if top > cached:
            grown = max(top, min(2 * cached, _MAX_CACHED_HASH_INDEX))
            self._hash_cache = np.concatenate(
                [self._hash_cache, self._compute_hash_bytes(np.arange(cached, grown))]
            )
        if self._hash_word is not None:
            words = self._hash_cache.view(self._hash_word).reshape(-1)
            return words[indices].view(np.uint8).reshape(-1, self._n_bytes)
        return self._hash_cache[indices]

    def _compute_hash_bytes(self, indices: np.ndarray) -> np.ndarray:
        keys: np.ndarray = np.asarray(indices, dtype=np.uint64)[:, None] * np.uint64(self._words)
        keys = keys + np.arange(self._words, dtype=np.uint64)
        hashed = _splitmix64(keys ^ self._seed_key)
        return hashed.astype("<u8", copy=False).view(np.uint8).reshape(len(keys), -1)[:, : self._n_bytes]

    def _project_sparse(
        self, indices: np.ndarray, values: np.ndarray, rows: np.ndarray, n_rows: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Project nonzeros (``rows[i]``, ``indices[i]``, ``values[i]``, float64) of ``n_rows`` vectors; also
        each vector's squared norm.

        Signs come in groups of 8 selected by one hash byte, so each output group is
        sum_b (sum of the values whose byte is b) * table[b]: weighted counts per byte (one compiled pass
        over the nonzeros) and a small matmul per byte, never the (nnz, dim) matrix of signs.
        """
        hash_bytes = self._hash_bytes(indices)
        sums = np.zeros((self._n_bytes, n_rows * 256))
        squares = np.zeros(n_rows)
        _byte_sums(rows, np.ascontiguousarray(hash_bytes), values, sums, squares)
        # One stacked product, byte by byte the same (n_rows, 256) @ (256, 8) products as one per byte.
        products = sums.reshape(self._n_bytes, n_rows, 256) @ self._byte_signs_64
        out = products.transpose(1, 0, 2).reshape(n_rows, 8 * self._n_bytes)
        return out[:, : self.dim].astype(np.float32), squares

    def _matrix(self, input_dim: int) -> np.ndarray:
        if self._dense_matrix is None or self._dense_matrix.shape[0] < input_dim:
            self._dense_matrix = self.signs(np.arange(input_dim))
        return self._dense_matrix[:input_dim]

    def project_one(self, x: Features, *, normalize: bool = False) -> np.ndarray:
        """Project one vector to a (dim,) float32 array; ``normalize`` divides by the input's L2 norm."""
        if isinstance(x, SparseVector):
            values = x.values.astype(np.float64, copy=False)
            if x.nnz:
                out = (values @ self.signs(x.indices)).astype(np.float32)
            else:
                out = np.zeros(self.dim, dtype=np.float32)
            norm = float(np.sqrt(values @ values)) if normalize else 1.0
        else:
            row = np.asarray(x, dtype=np.float32)
            if row.ndim != 1:
                raise ValueError(f"expected a 1-D feature vector, got shape {row.shape}")
            out = self._project_dense(row[None, :])[0]
            norm = float(np.sqrt(row @ row)) if normalize else 1.0
        return out / norm if norm > 0.0 else out

    def project_many(self, xs: Sequence[Features] | np.ndarray, *, normalize: bool = False) -> np.ndarray:
        """Project a batch (dense rows, ``SparseVector``s, or a 2-D array) to an (n, dim) float32 array;
        ``normalize`` divides each row by its input's L2 norm (zero rows stay zero)."""
        if isinstance(xs, np.ndarray) and xs.ndim == 2:
            out = self._project_dense(xs)
            if normalize:
                norms = np.sqrt(np.einsum("ij,ij->i", xs, xs, dtype=np.float64)).astype(np.float32)
                out /= np.where(norms > 0.0, norms, 1.0)[:, None]
            return out
        n = len(xs)
        if n and all(type(x) is SparseVector for x in xs):
            return self._project_all_sparse(cast("Sequence[SparseVector]", xs), normalize)
        out = np.zeros((n, self.dim), dtype=np.float32)
        norms = np.ones(n, dtype=np.float32)
        sparse_at = [i for i, x in enumerate(xs) if isinstance(x, SparseVector)]
        dense_at = [i for i, x in enumerate(xs) if not isinstance(x, SparseVector)]
        if dense_at:
            dims = {feature_dim(xs[i]) for i in dense_at}
            if len(dims) > 1:
                raise ValueError(f"dense vectors of different dimensions in one batch: {sorted(dims)}")
            out[dense_at] = self.project_rows(
                np.stack([np.asarray(xs[i], dtype=np.float32) for i in dense_at]), normalize=normalize
            )
        if sparse_at:
            rows = cast("Sequence[SparseVector]", [xs[i] for i in sparse_at] if dense_at else xs)
            lengths = np.array([r.nnz for r in rows])
            if lengths.sum():
                indices = np.concatenate([r.indices for r in rows])
                values = np.concatenate([r.values for r in rows]).astype(np.float64)
                row_of = np.repeat(np.arange(len(rows)), lengths)
                projected, squares = self._project_sparse(indices, values, row_of, len(rows))
                if dense_at:
                    out[sparse_at] = projected
                else:  # all sparse (the common case): the rows as they are, in order
                    out = projected
                if normalize:
                    norms[sparse_at] = np.sqrt(squares)
        if normalize and sparse_at:
            out /= np.where(norms > 0.0, norms, 1.0)[:, None]
        return out

    def _project_all_sparse(self, xs: Sequence[SparseVector], normalize: bool) -> np.ndarray:
        """:meth:`project_many` of sparse vectors only (the drift detectors' usual batch), without sorting
        the batch into dense and sparse rows: the same float32 rows."""
        lengths = [x.indices.shape[0] for x in xs]
        if not sum(lengths):
            return np.zeros((len(xs), self.dim), dtype=np.float32)
        indices = np.concatenate([x.indices for x in xs])
        values = np.concatenate([x.values for x in xs]).astype(np.float64)
        row_of = np.repeat(np.arange(len(xs)), lengths)
        out, squares = self._project_sparse(indices, values, row_of, len(xs))
        if normalize:
            norms = np.sqrt(squares).astype(np.float32)
            out /= np.where(norms > 0.0, norms, 1.0)[:, None]
        return out

    def project_rows(self, rows: np.ndarray, *, normalize: bool = False) -> np.ndarray:
        """Project dense float32 rows (an (n, input dim) array) to an (n, dim) float32 array, exactly as
        :meth:`project_many` projects a list of those rows (its 2-D array path takes norms in float64)."""
        rows = np.asarray(rows, dtype=np.float32)
        out = self._project_dense(rows)
        if normalize:
            norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
            out /= np.where(norms > 0.0, norms, 1.0)[:, None]
        return out

    def _project_dense(self, matrix: np.ndarray) -> np.ndarray:
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.shape[1] <= _MAX_CACHED_INPUT_DIM:
            return matrix @ self._matrix(matrix.shape[1])
        out = np.zeros((matrix.shape[0], self.dim), dtype=np.float32)
        for i, row in enumerate(matrix):
            nonzero = np.flatnonzero(row)
            out[i] = row[nonzero] @ self.signs(nonzero)
        return out
