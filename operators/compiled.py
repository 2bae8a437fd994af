"""Compiled kernels for the learner's per-document hot path.

At a few dozen labels a numpy call costs far more than its arithmetic (about 1-3 µs of dispatch for
a handful of floating-point operations), so a learner built from small vectorized steps spends most
of its time in call overhead. The hot loops are compiled with numba instead: one compiled call per
step, with loops written out, no temporaries.

:func:`kernel` is the one way kernels are declared. Compiled code is cached on disk next to the
module (or in numba's user-wide cache when that folder is read-only, as in an installed image), so
only the first process on a machine pays the compile time; where no cache location is writable the
kernel is compiled in memory on first use.

numba checks a cached kernel against its own file only, not the files of the kernels it calls (the
learner's fused kernels call kernels of other modules), so an edited callee left callers compiled
with the old code. A stamp of the contents of every module declaring kernels is kept beside the cache;
when it changes, this package's cached kernels are removed once, and the next calls compile afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])

_PACKAGE = Path(__file__).resolve().parent
_STAMP = _PACKAGE / "__pycache__" / "compiled-kernels.stamp"


def _sources_stamp(package: Path) -> str:
    """A digest of the path and contents of every module that declares kernels (kernels call only
    kernels, so other modules' edits keep the cache). Contents, not numba's size and modification time:
    an edit of the same size within one clock tick changes neither."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        source = path.read_bytes()
        if b"@kernel" in source:
            digest.update(f"{path.relative_to(package)}\n".encode())
            digest.update(hashlib.sha256(source).digest())
    return digest.hexdigest()


def drop_stale_kernels(package: Path = _PACKAGE, stamp: Path = _STAMP) -> int:
    """Remove the package's cached kernels when any module changed since the stamp; how many files.

    A read-only install (numba's user-wide cache, files that never change) is left as it is.
    """
    current = _sources_stamp(package)
    try:
        if stamp.read_text() == current:
            return 0
    except OSError:
        pass  # no stamp yet: a new checkout, or caches from before the stamp existed
    removed = 0
    try:
        for cached in [*package.rglob("__pycache__/*.nbi"), *package.rglob("__pycache__/*.nbc")]:
            cached.unlink(missing_ok=True)
            removed += 1
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(current)
    except OSError:
        return removed  # not writable: numba caches elsewhere (or not at all)
    return removed


drop_stale_kernels()


def kernel(function: F) -> F:
    """``function`` compiled in nopython mode (cached on disk where a cache folder is writable).

    Examples
    --------
    >>> import numpy as np
    >>> @kernel
    ... def total(values):
    ...     s = 0.0
    ...     for v in values:
    ...         s += v
    ...     return s
    >>> total(np.arange(4.0))
    6.0
    """
    try:
        return cast(F, numba.njit(cache=True, nogil=True)(function))
    except RuntimeError:  # "cannot cache function ...: no locator available" (read-only install)
        return cast(F, numba.njit(nogil=True)(function))
