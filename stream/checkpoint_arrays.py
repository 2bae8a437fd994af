"""Compact, lossless storage of a ``State``'s arrays in a checkpoint (format version 2).

A learner's big arrays are mostly redundant: the default learner's weight matrix over 2^18 hashed
features has a row per feature, most never seen (all zero) and many seen in one document only, whose
rows repeat exactly. Version 1 wrote them raw (``np.savez``): 141 MB for a 3,000-document Reuters model.
Version 2 keeps every array bit for bit and stores the large ones (``ENCODE_MIN_BYTES`` and up) as:

* the distinct rows of a 2-D array plus an ``int32`` row index (``unique_rows``), when that saves a
  tenth or more; rows are compared as raw bytes, so -0.0, 0.0 and NaN payloads stay what they were;
* without its columns whose bytes are all zero, plus the indices of the kept columns (``columns``):
  matrices sized for a label capacity hold zero columns for the labels not seen yet;
* for mostly nonzero values, their bytes regrouped by byte position (``byteshuffle``): sign and
  exponent bytes, alike across values, become long similar runs that deflate well (on mostly zero
  data the zero runs deflate well by themselves and shuffling only splits them up);

all inside a compressed npz (``np.savez_compressed``), plus ``encodings.json`` saying how each encoded
array is rebuilt. Arrays are still plain arrays loaded with ``allow_pickle=False``. Measured in
``benchmarks/checkpoint/``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from labelflow.operators.state import State

ARRAYS_FILE = "arrays.npz"
META_FILE = "meta.json"
ENCODINGS_FILE = "encodings.json"
INDEX_SUFFIX = "@rows"
COLUMNS_SUFFIX = "@columns"

# Small arrays are not worth the bookkeeping; 1 MiB catches every array of a real model that matters.
ENCODE_MIN_BYTES = 1 << 20
# Deduplicate rows only when it removes at least this share of them.
UNIQUE_ROWS_MIN_SAVING = 0.1
# Byte-shuffle values when at least this share is nonzero: measured on the default learner's arrays,
# shuffling makes its 92%-nonzero weights 8% smaller and its 9%- to 48%-nonzero arrays 3-48% larger.
BYTESHUFFLE_MIN_NONZERO = 0.75


def _unique_rows(array: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(distinct rows, index) with ``distinct[index]`` equal to ``array`` bytewise; None if not worth it.

    All-zero rows (most of a hashed weight matrix) are set aside before sorting: the sort is the cost,
    and it is skipped where a cheap lower bound of the distinct rows already says it saves too little.
    The distinct rows come out in byte order, the zero row first.
    """
    rows = np.ascontiguousarray(array)
    n = rows.shape[0]
    nonzero = _words(rows).reshape(n, -1).any(axis=1)
    kept = np.flatnonzero(nonzero)
    kept_rows = rows[kept]
    zero_row = int(kept.size < n)
    if _distinct_at_least(kept_rows) + zero_row > (1.0 - UNIQUE_ROWS_MIN_SAVING) * n:
        return None
    as_bytes = kept_rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, inverse = np.unique(as_bytes, return_index=True, return_inverse=True)
    distinct = rows[kept[first]]
    index = np.zeros(n, dtype=np.int32)
    if zero_row:  # a zero row exists: it is distinct row 0
        distinct = np.concatenate([np.zeros((1,) + rows.shape[1:], dtype=rows.dtype), distinct])
        index[kept] = inverse.ravel() + 1
    else:
        index[kept] = inverse.ravel()
    if distinct.shape[0] > (1.0 - UNIQUE_ROWS_MIN_SAVING) * n:
        return None
    return distinct, index


def _distinct_at_least(rows: np.ndarray) -> int:
    """A lower bound of the number of distinct rows of a 2-D array, from one number per row.

    Rows with different numbers differ; rows that differ may share a number (NaN, infinities, -0.0,
    rounding), which only lowers the bound. Floating-point rows are projected on a fixed direction
    (0.2 ms for the default learner's 2,048 x 1,000 neighbour vectors, where sorting their bytes takes
    25 ms); for other dtypes the bound is trivial and the exact count decides.
    """
    if rows.shape[0] <= 1 or rows.dtype.kind != "f":
        return min(rows.shape[0], 1)
    direction = np.random.default_rng(0).standard_normal(size=(rows.shape[1],)).astype(rows.dtype)
    with np.errstate(all="ignore"):
        return int(np.unique(rows @ direction).size)


_WORD_TYPES: dict[int, type[np.unsignedinteger[Any]]] = {
    1: np.uint8,
    2: np.uint16,
    4: np.uint32,
    8: np.uint64,
}


def _words(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array's values as unsigned integers of their width (bytes, on a last axis, for
    other widths): a value's word is nonzero exactly where one of its bytes is, and testing a word
    costs one operation where testing its bytes costs ``itemsize`` (and numpy's byte-wise reduction
    over short inner axes is slow: 19-43 ms for the default learner's big arrays, 0.4-4 ms by words)."""
    word = _WORD_TYPES.get(array.dtype.itemsize)
    return array.view(word) if word is not None else array.view(np.uint8).reshape(array.shape + (-1,))


def _used_columns(array: np.ndarray) -> np.ndarray:
    """Indices of the columns with a nonzero byte (a -0.0 is kept: only all-zero bytes are dropped)."""
    words = _words(np.ascontiguousarray(array))
    used = words.any(axis=0) if words.ndim == 2 else words.any(axis=(0, 2))
    return np.flatnonzero(used).astype(np.int32)


def _shuffle(array: np.ndarray) -> np.ndarray:
    """The values' bytes as an (itemsize, n) uint8 array: byte 0 of every value, then byte 1, ..."""
    flat = np.ascontiguousarray(array).reshape(-1)
    return flat.view(np.uint8).reshape(flat.size, flat.dtype.itemsize).T.copy()


def _unshuffle(shuffled: np.ndarray, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(shuffled.T).view(dtype).reshape(shape)


def encode_arrays(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays to write and the encodings that rebuild them (``decode_arrays`` inverts it).

    >>> w = np.zeros((40_000, 16), dtype=np.float32); w[7] = -0.0; w[9, 3] = np.nan
    >>> stored, encodings = encode_arrays({"w": w, "b": np.arange(3)})
    >>> encodings["w"]["unique_rows"], stored["w"].shape, "b" in encodings
    (True, (3, 16), False)
    >>> back = decode_arrays(stored, encodings)["w"]
    >>> back.tobytes() == w.tobytes()
    True
    """
    stored: dict[str, np.ndarray] = {}
    encodings: dict[str, Any] = {}
    for name, array in arrays.items():
        if "@" in name:
            raise ValueError(f"array name {name!r} must not contain '@'")
        if array.nbytes < ENCODE_MIN_BYTES or array.dtype.kind not in "biuf" or array.size == 0:
            stored[name] = array
            continue
        spec: dict[str, Any] = {"dtype": array.dtype.str, "shape": list(array.shape), "unique_rows": False}
        values = array
        if array.ndim == 2 and array.shape[1] > 0:
            deduplicated = _unique_rows(array)
            if deduplicated is not None:
                values, stored[name + INDEX_SUFFIX] = deduplicated
                spec["unique_rows"] = True
                spec["rows"] = int(values.shape[0])
            used = _used_columns(values)
            if used.size < values.shape[1]:
                values, stored[name + COLUMNS_SUFFIX] = values[:, used], used
        spec["byteshuffle"] = bool(
            array.dtype.itemsize > 1
            and values.size
            and np.count_nonzero(values) >= BYTESHUFFLE_MIN_NONZERO * values.size
        )
        stored[name] = _shuffle(values) if spec["byteshuffle"] else values
        encodings[name] = spec
    return stored, encodings


def decode_arrays(stored: dict[str, np.ndarray], encodings: dict[str, Any]) -> dict[str, np.ndarray]:
    """The original arrays from ``encode_arrays``' output (``ValueError`` when they do not fit)."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in stored.items():
        if "@" in name:
            continue
        spec = encodings.get(name)
        if spec is None:
            arrays[name] = value
            continue
        dtype = np.dtype(spec["dtype"])
        shape = tuple(int(n) for n in spec["shape"])
        columns = stored.get(name + COLUMNS_SUFFIX)
        values_shape = (int(spec["rows"]) if spec["unique_rows"] else shape[0],) + shape[1:]
        if columns is not None:
            if columns.ndim != 1 or (columns.size and (columns.min() < 0 or columns.max() >= shape[1])):
                raise ValueError(f"array {name!r}: column index outside its {shape[1]} columns")
            values_shape = (values_shape[0], columns.size)
        values = _unshuffle(value, dtype, values_shape) if spec["byteshuffle"] else value
        if columns is not None:
            full = np.zeros((values_shape[0], shape[1]), dtype=dtype)
            full[:, columns] = values
            values = full
        if spec["unique_rows"]:
            index = stored[name + INDEX_SUFFIX]
            if index.shape != (shape[0],) or (index.size and int(index.max()) >= values.shape[0]):
                raise ValueError(f"array {name!r}: row index does not fit its {values.shape[0]} rows")
            values = values[index]
        if values.shape != shape or values.dtype != dtype:
            raise ValueError(
                f"array {name!r} decodes to {values.shape} {values.dtype}, expected {shape} {dtype}"
            )
        arrays[name] = values
    return arrays


# Deflate level 1 instead of np.savez_compressed's 6: half the CPU of writing a checkpoint (0.24 s
# instead of 0.50 s for the 14 MB of stored arrays of a default model after 5,000 synthetic documents)
# for a file 7% larger (3.97 instead of 3.70 MB); the worker processes nothing while it writes one.
_DEFLATE_LEVEL = 1


def write_state(state: State, directory: Path) -> None:
    """``meta.json``, ``encodings.json`` and a compressed ``arrays.npz`` in ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    stored, encodings = encode_arrays(state.arrays)
    with (
        open(directory / ARRAYS_FILE, "wb") as handle,
        zipfile.ZipFile(
            handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=_DEFLATE_LEVEL
        ) as archive,
    ):
        for name, values in stored.items():  # what np.savez_compressed writes, at another level
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(values), allow_pickle=False)
    (directory / ENCODINGS_FILE).write_text(json.dumps(encodings, sort_keys=True))
    (directory / META_FILE).write_text(json.dumps(state.meta, sort_keys=True))


def read_state(directory: Path) -> State:
    """The ``State`` that ``write_state`` wrote into ``directory``."""
    meta = json.loads((directory / META_FILE).read_text())
    encodings = json.loads((directory / ENCODINGS_FILE).read_text())
    with np.load(directory / ARRAYS_FILE, allow_pickle=False) as data:
        stored = {key: data[key] for key in data.files}
    return State(meta=meta, arrays=decode_arrays(stored, encodings))
