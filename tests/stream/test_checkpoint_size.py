"""Checkpoint format 2: large arrays stored losslessly and compactly; version-1 checkpoints still restore."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from labelflow.operators.state import State
from labelflow.stream.checkpoint import Checkpoint, CheckpointStore
from labelflow.stream.checkpoint_arrays import decode_arrays, encode_arrays
from labelflow.stream.config import ModelSettings
from labelflow.stream.messages import Document
from labelflow.stream.model_runtime import ModelRuntime


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def reuters_runtime(datasets_dir: Path) -> ModelRuntime:
    """The worker's default model (partitioned learner, hashing embedder) after 300 Reuters documents."""
    runtime = ModelRuntime.from_settings(ModelSettings())
    path = datasets_dir / "reuters21578_modapte" / "reuters21578_modapte.jsonl"
    with path.open() as handle:
        for line in itertools.islice(handle, 300):
            data = json.loads(line)
            (x,) = runtime.features([Document(id=data["id"], text=data["text"])])
            assert not isinstance(x, Exception)
            runtime.learn(x, data["labels"])
    return runtime


def save_version_1(store: CheckpointStore, checkpoint: Checkpoint) -> Path:
    """A checkpoint exactly as format version 1 wrote it (raw np.savez arrays, no encodings.json)."""
    path = store.directory / "ckpt-000000000001"
    checkpoint.model.save(path / "model")
    checkpoint.runtime.save(path / "runtime")
    manifest = {
        "format": "labelflow-checkpoint",
        "format_version": 1,
        "seq": 1,
        "created_at": 1.0,
        "offsets": {"docs": {"0": 300}},
        "identity": checkpoint.identity,
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes() for k in a
    )


def test_a_real_model_checkpoint_is_small_and_restores_bit_for_bit(
    reuters_runtime: ModelRuntime, tmp_path: Path
) -> None:
    state = reuters_runtime.state()
    raw_bytes = sum(a.nbytes for a in state.arrays.values())
    checkpoint = Checkpoint(model=state, runtime=State({"n": 1}), offsets={"docs": {0: 300}})
    path = CheckpointStore(tmp_path / "v2").save(checkpoint)
    written = directory_bytes(path)
    assert written < raw_bytes / 10, (written, raw_bytes)  # ~140 MB of arrays, almost all zero rows
    loaded = CheckpointStore.load(path)
    assert loaded.format_version == 2 and same_arrays(loaded.model.arrays, state.arrays)
    restored = ModelRuntime.from_settings(ModelSettings())
    restored.restore(loaded.model)
    probe = reuters_runtime.features([Document(id="p", text="wheat and corn exports rose in March")])
    assert restored.predict(probe) == reuters_runtime.predict(probe)  # type: ignore[arg-type]


def test_a_version_1_checkpoint_still_restores(reuters_runtime: ModelRuntime, tmp_path: Path) -> None:
    state = reuters_runtime.state()
    store = CheckpointStore(tmp_path / "v1")
    save_version_1(
        store, Checkpoint(model=state, runtime=State({"n": 1}), offsets={}, identity={"learner": "x"})
    )
    loaded = store.latest(identity={"learner": "x"})
    assert loaded is not None and loaded.format_version == 1
    assert same_arrays(loaded.model.arrays, state.arrays) and loaded.offsets == {"docs": {0: 300}}


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8, np.bool_])
def test_encoding_is_lossless_for_any_numeric_array(dtype: type) -> None:
    rng = np.random.default_rng(1)
    dense = (rng.standard_normal((3_000, 64)) * 10).astype(dtype)
    dense[:2_000] = 0  # mostly zero rows, as in a hashed weight matrix
    dense[5] = dense[6]  # a repeated row
    special = np.zeros((20_000, 8), dtype=np.float64)
    special[1, 0], special[2, 0], special[3, 0] = -0.0, np.nan, np.inf
    padded = np.zeros((100_000, 16), dtype=dtype)
    padded[::3, :5] = 1  # capacity-padded: trailing columns all zero
    arrays = {
        "dense": dense,
        "special": special,
        "padded": padded,
        "zeros": np.zeros((300_000, 4), dtype=dtype),
        "flat": rng.standard_normal(300_000),
        "tiny": np.ones(3),
    }
    stored, encodings = encode_arrays(arrays)
    assert "special" in encodings and encodings["special"]["unique_rows"]
    assert stored["padded@columns"].tolist() == [0, 1, 2, 3, 4]
    assert same_arrays(decode_arrays(stored, encodings), arrays)


def test_a_row_index_that_does_not_fit_is_an_error_not_garbage() -> None:
    stored, encodings = encode_arrays({"w": np.zeros((300_000, 4), dtype=np.float32)})
    stored["w@rows"] = stored["w@rows"] + 5
    with pytest.raises(ValueError, match="row index"):
        decode_arrays(stored, encodings)


def distinct_rows(array: np.ndarray) -> int:
    """Distinct rows compared as raw bytes (what the row deduplication compares)."""
    rows = np.ascontiguousarray(array)
    return np.unique(rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()).size


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.uint8])
@pytest.mark.parametrize("distinct_share", [0.05, 0.5, 0.88, 0.92, 1.0])
def test_rows_are_deduplicated_exactly_when_that_saves_a_tenth(dtype: type, distinct_share: float) -> None:
    """The cheap lower bound that skips the sort of rows never skips a deduplication worth doing:
    rows that differ only in -0.0, NaN payloads or the last bit project alike but are distinct."""
    rng = np.random.default_rng(int(distinct_share * 100))
    n, width = 70_000, 16  # 1.1 MB as uint8: big enough to be encoded
    base = (rng.standard_normal((int(n * distinct_share), width)) * 3).astype(dtype)
    rows = base[rng.integers(0, base.shape[0], n)]
    rows[: base.shape[0]] = base  # every base row occurs
    if rows.dtype.kind == "f":
        twins = rng.choice(n, n // 20, replace=False)
        as_bits = rows.view(np.dtype(f"u{rows.dtype.itemsize}"))
        as_bits[twins, 0] ^= 1  # the last bit: distinct bytes, (nearly) the same projection
        rows[twins[:50], 1] = -0.0
        rows[twins[50:100], 2] = np.nan
    stored, encodings = encode_arrays({"w": rows})
    worth_it = distinct_rows(rows) <= 0.9 * n
    assert encodings["w"]["unique_rows"] is worth_it
    assert same_arrays(decode_arrays(stored, encodings), {"w": rows})
