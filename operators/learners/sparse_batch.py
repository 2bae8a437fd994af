"""A batch of sparse vectors as one CSR matrix over only the columns the batch uses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse


def compact_rows(rows: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[sparse.csr_matrix, np.ndarray]:
    """``(indices, values)`` rows as a CSR matrix whose column ``j`` is original column ``columns[j]``.

    Multiply it by ``matrix[columns]``: gathering the few rows a batch touches is far cheaper than
    handing a wide matrix (often a strided view that scipy would copy whole) to the product.

    >>> batch, columns = compact_rows([(np.array([2, 7]), np.array([1.0, 2.0])), (np.array([7]), np.array([3.0]))])
    >>> columns.tolist(), batch.toarray().tolist()
    ([2, 7], [[1.0, 2.0], [0.0, 3.0]])
    """
    lengths = [indices.shape[0] for indices, _ in rows]
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.concatenate([indices for indices, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
    values = np.concatenate([values for _, values in rows]) if rows else np.zeros(0, dtype=np.float32)
    columns, local = np.unique(indices, return_inverse=True)
    return sparse.csr_matrix((values, local.ravel(), indptr), shape=(len(rows), columns.shape[0])), columns
