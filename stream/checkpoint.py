"""Crash-safe checkpoints: model state, runtime state and consumer offsets, written together atomically.

Format (version 2), one directory per checkpoint under the checkpoint directory::

    ckpt-000000000042/
        manifest.json          format, format_version, seq, created_at, offsets, model identity, meta
        model/meta.json        the model's State (operators/state.py): JSON metadata ...
        model/arrays.npz       ... and plain numpy arrays (compressed; loaded with allow_pickle=False)
        model/encodings.json   how the large arrays are stored losslessly (``checkpoint_arrays``)
        runtime/meta.json      counters, feedback store, quality window (also a State)
        runtime/arrays.npz
        runtime/encodings.json

Version 1 had no ``encodings.json`` and raw ``np.savez`` arrays (141 MB for a 3,000-document Reuters
model, where version 2 needs 19.9); it is still read.

A checkpoint is written into a hidden temporary directory, every file and the directory are fsync'ed,
and the directory is renamed into place, so a crash leaves either the whole checkpoint or none. The
manifest is written last. ``offsets`` are the *next* offsets to read, per topic and partition, of both
input topics: on restore the worker seeks there, re-predicts what came after and learns it once.

The manifest's ``files`` maps every other file of the checkpoint to its size and SHA-256, checked
before anything is loaded: a truncated or bit-flipped file makes the whole checkpoint unreadable
(``CorruptCheckpointError``), and ``latest`` falls back to the previous one. Checkpoints written before
checksums existed (no ``files``) are loaded with a warning; damage in them shows as a load error.
Unreadable checkpoints are never pruned: they stay on disk for inspection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelflow.operators.state import State
from labelflow.stream.checkpoint_arrays import read_state, write_state
from labelflow.stream.directory_lock import DirectoryInUseError, DirectoryLock

logger = logging.getLogger(__name__)

FORMAT = "labelflow-checkpoint"
FORMAT_VERSION = 2
# Versions this code restores: 1 (raw npz) and 2 (compact arrays, ``checkpoint_arrays``).
READABLE_VERSIONS = (1, 2)
_NAME = re.compile(r"^ckpt-(\d{12})$")
_TMP_PREFIX = ".tmp-ckpt-"

Offsets = dict[str, dict[int, int]]


class CheckpointError(RuntimeError):
    """Base class of checkpoint problems."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint directory that cannot be read (missing or damaged files)."""


class NoReadableCheckpointError(CheckpointError):
    """Checkpoints exist but none can be read: starting a new model would silently lose the learned one."""


class IncompatibleCheckpointError(CheckpointError):
    """A readable checkpoint this worker must not resume from (other format version, model or embedder)."""


class CheckpointDirInUseError(CheckpointError):
    """Another live process holds the checkpoint directory."""


@dataclass
class Checkpoint:
    """One consistent snapshot: model, runtime state and the next offsets to read.

    ``identity`` names what the model state belongs to (learner, embedder); restoring into a worker with
    another identity is refused.
    """

    model: State
    runtime: State
    offsets: Offsets
    identity: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    created_at: float = 0.0
    path: Path | None = None
    format_version: int = FORMAT_VERSION


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            _fsync_path(Path(directory) / name)
        _fsync_path(Path(directory))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_checksums(root: Path) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every file under ``root``, by path relative to it (``model/arrays.npz``)."""
    return {
        path.relative_to(root).as_posix(): {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def verify_files(path: Path, files: Any) -> None:
    """Raise ``CorruptCheckpointError`` naming the first file that is missing, resized or changed."""
    if not isinstance(files, dict):
        raise CorruptCheckpointError(f"checkpoint {path}: the manifest's files entry is not a mapping")
    for name, expected in sorted(files.items()):
        target = path / name
        try:
            size = target.stat().st_size
            if size != expected["bytes"]:
                raise CorruptCheckpointError(
                    f"checkpoint {path}: {name} has {size} bytes, the manifest says {expected['bytes']} (truncated?)"
                )
            if _sha256(target) != expected["sha256"]:
                raise CorruptCheckpointError(
                    f"checkpoint {path}: {name} does not match its SHA-256 in the manifest (damaged on disk)"
                )
        except OSError as exc:
            raise CorruptCheckpointError(f"checkpoint {path}: cannot read {name}: {exc}") from None
        except (KeyError, TypeError):
            raise CorruptCheckpointError(
                f"checkpoint {path}: the manifest's entry for {name} is malformed"
            ) from None


def _encode_offsets(offsets: Offsets) -> dict[str, dict[str, int]]:
    return {
        topic: {str(p): int(o) for p, o in sorted(parts.items())} for topic, parts in sorted(offsets.items())
    }


def _decode_offsets(raw: Any) -> Offsets:
    if not isinstance(raw, dict):
        raise ValueError("offsets is not a mapping")
    return {str(topic): {int(p): int(o) for p, o in parts.items()} for topic, parts in raw.items()}


class CheckpointStore:
    """Writes, lists, loads and prunes checkpoints in one directory.

    Parameters
    ----------
    directory
        Created if missing. One worker (one model) per directory: ``lock()`` enforces it.
    keep
        How many of the newest checkpoints survive pruning.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> store = CheckpointStore(Path(tempfile.mkdtemp()), keep=2)
    >>> cp = Checkpoint(model=State({"kind": "m"}, {"w": np.zeros(2)}), runtime=State({"n": 1}),
    ...                 offsets={"docs": {0: 10, 1: 7}}, identity={"learner": "x"})
    >>> path = store.save(cp)
    >>> restored = store.latest(identity={"learner": "x"})
    >>> restored.offsets, restored.seq
    ({'docs': {0: 10, 1: 7}}, 1)
    """

    def __init__(self, directory: Path | str, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep
        self._lock = DirectoryLock(self.directory)
        # Checkpoints this store failed to read (path -> why): reported, and never pruned.
        self.unreadable: dict[Path, str] = {}

    # -- ownership ----------------------------------------------------------------------------------

    def lock(self) -> None:
        """Claim the directory for this process (released when the process exits, even on kill -9)."""
        try:
            self._lock.acquire()
        except DirectoryInUseError as exc:
            raise CheckpointDirInUseError(
                f"checkpoint directory {exc}; every worker needs its own "
                "checkpoint.dir (set LABELFLOW_CHECKPOINT__DIR or --checkpoint-dir)"
            ) from None
        self._remove_temporaries()

    def unlock(self) -> None:
        self._lock.release()

    def _remove_temporaries(self) -> None:
        # Only the lock holder gets here, so these are leftovers of a writer that crashed mid-write.
        for path in self.directory.glob(_TMP_PREFIX + "*"):
            shutil.rmtree(path, ignore_errors=True)

    # -- listing ------------------------------------------------------------------------------------

    def paths(self) -> list[Path]:
        """Checkpoint directories, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [
            (int(m.group(1)), p)
            for p in self.directory.iterdir()
            if (m := _NAME.match(p.name)) and p.is_dir()
        ]
        return [p for _, p in sorted(found)]

    def _next_seq(self) -> int:
        paths = self.paths()
        return int(_NAME.match(paths[-1].name).group(1)) + 1 if paths else 1  # type: ignore[union-attr]

    # -- writing ------------------------------------------------------------------------------------

    def save(self, checkpoint: Checkpoint) -> Path:
        """Write ``checkpoint`` atomically as the newest one and prune old ones; its directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        seq = self._next_seq()
        final = self.directory / f"ckpt-{seq:012d}"
        tmp = self.directory / f"{_TMP_PREFIX}{seq:012d}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        created_at = time.time()
        try:
            write_state(checkpoint.model, tmp / "model")
            write_state(checkpoint.runtime, tmp / "runtime")
            files = _file_checksums(tmp)
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "seq": seq,
                "created_at": created_at,
                "offsets": _encode_offsets(checkpoint.offsets),
                "identity": checkpoint.identity,
                "files": files,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
            _fsync_tree(tmp)
            os.rename(tmp, final)
            _fsync_path(self.directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        checkpoint.seq, checkpoint.created_at, checkpoint.path = seq, created_at, final
        self.prune()
        return final

    def prune(self) -> None:
        """Delete all but the ``keep`` newest checkpoints; never one this store could not read.

        Called after a save, so a newer valid checkpoint always exists when older ones are removed.
        """
        for path in self.paths()[: -self.keep]:
            if path in self.unreadable:
                continue
            shutil.rmtree(path, ignore_errors=True)

    # -- reading ------------------------------------------------------------------------------------

    @staticmethod
    def read_manifest(path: Path) -> dict[str, Any]:
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise CorruptCheckpointError(f"checkpoint {path} has no readable manifest.json: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise CorruptCheckpointError(
                f"{path} is not a labelflow checkpoint (manifest format {manifest.get('format')!r})"
            )
        version = manifest.get("format_version")
        if version not in READABLE_VERSIONS:
            raise IncompatibleCheckpointError(
                f"checkpoint {path} has format version {version}; this labelflow reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}. "
                "Use the labelflow release that wrote it, or move it away to start from scratch."
            )
        return manifest

    @classmethod
    def load(cls, path: Path | str) -> Checkpoint:
        """Read one checkpoint directory (``CorruptCheckpointError`` / ``IncompatibleCheckpointError``)."""
        path = Path(path)
        manifest = cls.read_manifest(path)
        if "files" in manifest:
            verify_files(path, manifest["files"])
        else:
            logger.warning(
                "event=checkpoint_unverified path=%s (written before checkpoints carried checksums; "
                "loaded without verifying its files)",
                path,
            )
        read = State.load if manifest["format_version"] == 1 else read_state
        try:
            model = read(path / "model")
            runtime = read(path / "runtime")
            offsets = _decode_offsets(manifest["offsets"])
        except Exception as exc:  # noqa: BLE001 - numpy and zipfile raise many types on damaged files
            raise CorruptCheckpointError(
                f"checkpoint {path} is damaged: {type(exc).__name__}: {exc}"
            ) from None
        return Checkpoint(
            model=model,
            runtime=runtime,
            offsets=offsets,
            identity=dict(manifest.get("identity") or {}),
            seq=int(manifest["seq"]),
            created_at=float(manifest["created_at"]),
            path=path,
            format_version=int(manifest["format_version"]),
        )

    def latest(self, identity: dict[str, Any] | None = None) -> Checkpoint | None:
        """The newest readable checkpoint, or None if there is none.

        Damaged checkpoints are skipped (a WARNING each, and remembered in ``unreadable``) in favour of
        older ones; a readable but incompatible one (format version, or ``identity`` differing from
        the given one) raises ``IncompatibleCheckpointError``: resuming from an older one would
        silently lose learning. None with ``unreadable`` not empty means every checkpoint is damaged.
        """
        for path in reversed(self.paths()):
            try:
                checkpoint = self.load(path)
            except CorruptCheckpointError as exc:
                self.unreadable[path] = str(exc)
                logger.warning(
                    "event=checkpoint_unreadable path=%s detail=%r (falling back to the previous checkpoint; "
                    "this one is kept on disk)",
                    path,
                    str(exc),
                )
                continue
            if identity is not None:
                check_identity(checkpoint, identity)
            return checkpoint
        return None


#: Identity entries that describe a checkpoint without deciding whether it can be restored: the class
#: that wrote the model state (``labelflow inspect`` rebuilds it). Whether a model reads a state is the
#: state format's business: a learner may read its predecessor's states (the default learner reads the
#: flat learner's, which was the default before it).
DESCRIPTIVE_IDENTITY = frozenset({"model_class"})


def check_identity(checkpoint: Checkpoint, expected: dict[str, Any]) -> None:
    """Raise ``IncompatibleCheckpointError`` naming each setting where the checkpoint differs."""
    differences = [
        f"{key}: checkpoint has {checkpoint.identity.get(key)!r}, settings ask for {value!r}"
        for key, value in sorted(expected.items())
        if key not in DESCRIPTIVE_IDENTITY and checkpoint.identity.get(key) != value
    ]
    if differences:
        raise IncompatibleCheckpointError(
            f"checkpoint {checkpoint.path} was written by a different model setup:\n  "
            + "\n  ".join(differences)
            + "\nChange the settings back, or point checkpoint.dir to an empty directory to start a new model."
        )
