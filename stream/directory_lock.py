"""Exclusive ownership of a directory by one process, released when the process exits (even on kill -9)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_FILE = ".lock"


class DirectoryInUseError(RuntimeError):
    """Another live process holds the directory."""


class DirectoryLock:
    """An ``flock`` on ``directory/.lock`` that names its holder (``pid N``) for the error of the next one.

    >>> import tempfile
    >>> directory = Path(tempfile.mkdtemp()) / "owned"
    >>> lock = DirectoryLock(directory)
    >>> lock.acquire()
    >>> (directory / LOCK_FILE).read_text().startswith("pid ")
    True
    >>> lock.release()
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Create the directory if needed and claim it; raises :class:`DirectoryInUseError` (naming the
        holder) if another process has it, ``OSError`` if it cannot be created or written."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = open(self.directory / LOCK_FILE, "a+")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise DirectoryInUseError(f"{self.directory} is in use by {owner}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
