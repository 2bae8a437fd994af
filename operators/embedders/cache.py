"""An on-disk embedding cache keyed by (embedder identity, text hash), for repeated evaluation runs."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labelflow.operators.embedders.base import DenseEmbedder, Embedder, check_texts

log = logging.getLogger(__name__)

_DIGEST_BYTES = 16  # 128 bits of SHA-256: collisions are out of reach for any corpus we will see
_STORAGE_DTYPES = ("float32", "float16")


def text_digest(text: str) -> bytes:
    """The cache key of a text (lone surrogates are kept, not rejected)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:_DIGEST_BYTES]


class CachedEmbedder(DenseEmbedder):
    """Wraps a dense embedder: texts seen before (in this or an earlier run) are read from disk.

    Layout: ``directory/<sha256 of identity>/`` holds ``identity.txt`` and append-only shards, each a
    pair ``<name>.vectors.npy`` (rows) and ``<name>.keys.npy`` (one 16-byte text digest per row,
    uint8). A shard is written to temporary files, fsynced and renamed, vectors first; its keys file
    is the commit marker, so an interrupted run leaves at worst an orphan vectors file that is
    ignored. New vectors are buffered and written as a shard every ``shard_rows`` misses and on
    ``flush()`` / leaving a ``with`` block; a crash loses only the unflushed buffer. No pickle.
    Several processes may share a directory: each writes its own shards; a duplicate row is harmless.

    Parameters
    ----------
    embedder
        A dense embedder (sparse ones are cheap to recompute and are not cached).
    directory
        Cache root; one sub-directory per embedder identity.
    dtype
        ``"float32"`` (exact) or ``"float16"`` (half the disk; values differ by ~1e-3 relative).
        Returned rows always come from the stored precision, so a hit equals the original miss.
    shard_rows
        Buffered rows per shard.

    Examples
    --------
    >>> import tempfile
    >>> from labelflow.operators.embedders.static import StaticEmbedder
    >>> base = StaticEmbedder(cache_dir=tempfile.mkdtemp(), method="input", dim=32)
    >>> with CachedEmbedder(base, tempfile.mkdtemp()) as cached:
    ...     first = cached.embed_array(["corn", "wheat", "corn"])
    ...     again = cached.embed_array(["wheat"])
    >>> cached.misses, cached.hits, bool((again[0] == first[1]).all())
    (2, 2, True)
    """

    def __init__(
        self,
        embedder: Embedder,
        directory: str | Path,
        *,
        dtype: str = "float32",
        shard_rows: int = 1024,
    ) -> None:
        if embedder.sparse or not isinstance(embedder, DenseEmbedder):
            raise TypeError(
                f"CachedEmbedder caches dense embedders only, got {type(embedder).__name__} "
                "(sparse features are cheaper to recompute than to read back)"
            )
        if dtype not in _STORAGE_DTYPES:
            raise ValueError(f"dtype must be one of {_STORAGE_DTYPES}, got {dtype!r}")
        if shard_rows < 1:
            raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
        self.embedder = embedder
        self.identity = embedder.identity
        self.dim = embedder.dim
        self.storage_dtype = np.dtype(dtype)
        self.shard_rows = int(shard_rows)
        self.directory = (
            Path(directory).expanduser() / hashlib.sha256(self.identity.encode()).hexdigest()[:24]
        )
        self.hits = 0
        self.misses = 0
        self._index: dict[bytes, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        self._pending: dict[bytes, np.ndarray] = {}
        self._written = 0
        self._open_directory()

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.embedder!r}, directory={str(self.directory)!r})"

    def __len__(self) -> int:
        """Distinct texts stored (on disk or buffered)."""
        return len(self._index) + len(self._pending)

    def __enter__(self) -> CachedEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()

    def _open_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        identity_file = self.directory / "identity.txt"
        if identity_file.is_file():
            stored = identity_file.read_text(encoding="utf-8")
            if stored != self.identity:
                raise ValueError(
                    f"cache directory {self.directory} belongs to embedder {stored!r}, not {self.identity!r}"
                )
        else:
            _write_atomically(identity_file, self.identity.encode("utf-8"))
        for keys_path in sorted(self.directory.glob("shard-*.keys.npy")):
            self._load_shard(keys_path)
        if self._index:
            log.info(
                "embedding cache %s: %d vectors in %d shards",
                self.directory,
                len(self._index),
                len(self._shards),
            )

    def _load_shard(self, keys_path: Path) -> None:
        vectors_path = keys_path.with_name(keys_path.name.removesuffix(".keys.npy") + ".vectors.npy")
        try:
            keys = np.load(keys_path, allow_pickle=False)
            vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable embedding cache shard %s: %s", keys_path.name, exc)
            return
        expected = (keys.shape[0], self.dim)
        if keys.ndim != 2 or keys.shape[1] != _DIGEST_BYTES or vectors.shape != expected:
            log.warning(
                "skipping embedding cache shard %s: shapes %s / %s", keys_path.name, keys.shape, vectors.shape
            )
            return
        shard_no = len(self._shards)
        self._shards.append(vectors)
        for row, key in enumerate(keys):
            self._index.setdefault(key.tobytes(), (shard_no, row))

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        for i, text in enumerate(texts):
            key = text_digest(text)
            location = self._index.get(key)
            if location is not None:
                out[i] = self._shards[location[0]][location[1]]
            elif key in self._pending:
                out[i] = self._pending[key]
            else:
                missing.setdefault(key, []).append(i)
        self.hits += len(texts) - sum(map(len, missing.values()))
        if missing:
            self.misses += len(missing)
            fresh = self.embedder.embed_array([texts[positions[0]] for positions in missing.values()])
            stored = fresh.astype(self.storage_dtype)
            for (key, positions), vector in zip(missing.items(), stored, strict=True):
                self._pending[key] = vector
                out[positions] = vector
            # Duplicates of a missing text within this call count as hits of its first copy.
            self.hits += sum(len(p) - 1 for p in missing.values())
            if len(self._pending) >= self.shard_rows:
                self.flush()
        return out

    def flush(self) -> None:
        """Write the buffered vectors as one new shard (no-op when nothing is buffered)."""
        if not self._pending:
            return
        keys = np.frombuffer(b"".join(self._pending), dtype=np.uint8).reshape(-1, _DIGEST_BYTES)
        vectors = np.stack(list(self._pending.values())).astype(self.storage_dtype, copy=False)
        self._written += 1
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{self._written}"
        vectors_path = self.directory / f"{name}.vectors.npy"
        keys_path = self.directory / f"{name}.keys.npy"
        _write_atomically(vectors_path, _npy_bytes(vectors))
        _write_atomically(keys_path, _npy_bytes(keys))  # the commit marker goes last
        _fsync_directory(self.directory)
        shard_no = len(self._shards)
        self._shards.append(np.load(vectors_path, mmap_mode="r", allow_pickle=False))
        for row, key in enumerate(self._pending):
            self._index.setdefault(key, (shard_no, row))
        self._pending.clear()


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _write_atomically(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
