"""Checkpoint store: atomic writes, newest valid restore, refusal of incompatible checkpoints, pruning."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from labelflow.operators.state import State
from labelflow.stream import checkpoint as checkpoint_module
from labelflow.stream.checkpoint import (
    Checkpoint,
    CheckpointDirInUseError,
    CheckpointStore,
    CorruptCheckpointError,
    IncompatibleCheckpointError,
)

IDENTITY = {"learner": "partitioned", "embedder": "hashing(n=1024)"}


def make(n: int, offsets: dict | None = None) -> Checkpoint:
    return Checkpoint(
        model=State({"kind": "m", "n": n}, {"w": np.arange(n, dtype=np.float32)}),
        runtime=State({"counters": {"documents_in": n}}, {"rows": np.zeros((n, 4), np.int64)}),
        offsets=offsets or {"docs": {0: n, 1: 2 * n}, "labels": {0: 1}},
        identity=dict(IDENTITY),
    )


def test_round_trip(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=3)
    path = store.save(make(5))
    loaded = store.latest(identity=IDENTITY)
    assert loaded is not None and loaded.path == path and loaded.seq == 1
    assert loaded.model.meta == {"kind": "m", "n": 5} and loaded.model.arrays["w"].tolist() == [0, 1, 2, 3, 4]
    assert loaded.runtime.meta["counters"] == {"documents_in": 5}
    assert loaded.offsets == {"docs": {0: 5, 1: 10}, "labels": {0: 1}}
    assert loaded.identity == IDENTITY
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "labelflow-checkpoint" and manifest["format_version"] == 2


def test_no_checkpoint_is_none(tmp_path: Path) -> None:
    assert CheckpointStore(tmp_path / "nothing-yet").latest() is None


def test_keeps_the_newest_n(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    for n in range(1, 6):
        store.save(make(n))
    assert [p.name for p in store.paths()] == ["ckpt-000000000004", "ckpt-000000000005"]
    assert store.latest().model.meta["n"] == 5


def test_damaged_newest_falls_back_to_the_previous(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=3)
    store.save(make(1))
    newest = store.save(make(2))
    (newest / "model" / "arrays.npz").write_bytes(b"not a zip file")
    assert store.latest(identity=IDENTITY).model.meta["n"] == 1
    shutil.rmtree(newest / "runtime")
    assert store.latest().model.meta["n"] == 1


def test_incompatible_identity_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(make(1))
    with pytest.raises(IncompatibleCheckpointError) as info:
        store.latest(identity={**IDENTITY, "embedder": "static"})
    assert (
        "embedder" in str(info.value)
        and "hashing(n=1024)" in str(info.value)
        and "checkpoint.dir" in str(info.value)
    )


def test_other_format_version_is_refused_not_skipped(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(make(1))
    newest = store.save(make(2))
    manifest = json.loads((newest / "manifest.json").read_text())
    manifest["format_version"] = 999
    (newest / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleCheckpointError, match="format version 999"):
        store.latest()


def test_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(CorruptCheckpointError):
        CheckpointStore.load(tmp_path / "x")


def _crash_while_writing(directory: str) -> None:
    store = CheckpointStore(directory)
    original = checkpoint_module.write_state

    def save_then_die(state: State, target: Path) -> None:
        original(state, target)
        if target.name == "runtime":
            os._exit(9)  # the process dies mid-checkpoint, after some files are written

    checkpoint_module.write_state = save_then_die  # type: ignore[assignment]
    store.save(make(2))


def test_a_crash_mid_write_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(make(1))
    process = multiprocessing.get_context("fork").Process(target=_crash_while_writing, args=(str(tmp_path),))
    process.start()
    process.join(30)
    assert process.exitcode == 9
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers, "the crashed writer should have left its temporary directory"
    assert [p.name for p in store.paths()] == ["ckpt-000000000001"]
    assert store.latest().model.meta["n"] == 1
    store.lock()  # the next owner cleans up what the crashed writer left
    try:
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
        assert store.save(make(3)).name == "ckpt-000000000002"
    finally:
        store.unlock()


def _hold_lock(
    directory: str, ready: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event
) -> None:
    store = CheckpointStore(directory)
    store.lock()
    ready.set()
    release.wait(30)


def test_one_owner_per_directory(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(CheckpointDirInUseError, match=f"pid {holder.pid}"):
            CheckpointStore(tmp_path).lock()
    finally:
        release.set()
        holder.join(30)
    store = CheckpointStore(tmp_path)
    store.lock()  # free again once the holder is gone
    store.unlock()


# -- verification on load (issue 13, defect 3) ------------------------------------------------------


def flip_one_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def big(n: int) -> Checkpoint:
    checkpoint = make(n)
    checkpoint.model.arrays["w"] = np.arange(50_000, dtype=np.float32) * n
    return checkpoint


def test_the_manifest_carries_a_checksum_per_file(tmp_path: Path) -> None:
    path = CheckpointStore(tmp_path).save(make(3))
    files = json.loads((path / "manifest.json").read_text())["files"]
    assert sorted(files) == [
        f"{part}/{name}"
        for part in ("model", "runtime")
        for name in ("arrays.npz", "encodings.json", "meta.json")
    ]
    npz = path / "model" / "arrays.npz"
    assert files["model/arrays.npz"]["bytes"] == npz.stat().st_size
    assert len(files["model/arrays.npz"]["sha256"]) == 64


@pytest.mark.parametrize("damage", [truncate, flip_one_bit])
@pytest.mark.parametrize("name", ["model/arrays.npz", "model/meta.json", "runtime/arrays.npz"])
def test_a_damaged_file_falls_back_to_the_previous_checkpoint_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage, name: str
) -> None:
    store = CheckpointStore(tmp_path, keep=3)
    store.save(big(1))
    newest = store.save(big(2))
    damage(newest / name)
    with caplog.at_level("WARNING", logger="labelflow.stream.checkpoint"):
        restored = store.latest(identity=IDENTITY)
    assert restored is not None and restored.model.meta["n"] == 1
    assert list(store.unreadable) == [newest]
    assert any("checkpoint_unreadable" in r.message and r.levelname == "WARNING" for r in caplog.records)
    with pytest.raises(CorruptCheckpointError, match=name.split("/")[-1]):
        CheckpointStore.load(newest)


def test_a_truncated_npz_without_checksums_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    # Before checksums a truncated arrays.npz raised zipfile.BadZipFile out of the store.
    store = CheckpointStore(tmp_path, keep=3)
    store.save(big(1))
    newest = store.save(big(2))
    manifest = json.loads((newest / "manifest.json").read_text())
    del manifest["files"]
    (newest / "manifest.json").write_text(json.dumps(manifest))
    truncate(newest / "model" / "arrays.npz")
    assert store.latest().model.meta["n"] == 1


def test_a_checkpoint_without_checksums_loads_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = CheckpointStore(tmp_path).save(make(4))
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["files"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="labelflow.stream.checkpoint"):
        assert CheckpointStore(tmp_path).latest(identity=IDENTITY).model.meta["n"] == 4
    assert any("checkpoint_unverified" in r.message for r in caplog.records)


def test_unreadable_checkpoints_are_never_pruned(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    damaged = [store.save(big(n)) for n in (1, 2)]
    for path in damaged:
        flip_one_bit(path / "model" / "arrays.npz")
    store = CheckpointStore(tmp_path, keep=2)  # a new process
    assert store.latest(identity=IDENTITY) is None
    assert sorted(store.unreadable) == damaged
    for n in (3, 4, 5):
        store.save(big(n))
    names = [p.name for p in store.paths()]
    assert names == [p.name for p in damaged] + ["ckpt-000000000004", "ckpt-000000000005"]
