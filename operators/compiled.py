"""Compiled kernels for the learner's per-document hot path.

At a few dozen labels a numpy call costs far more than its arithmetic (about 1-3 µs of dispatch for
a handful of floating-point operations), so a learner built from small vectorized steps spends most
of its time in call overhead. The hot loops are compiled with numba instead: one compiled call per
step, with loops written out, no temporaries.

:func:`kernel` is the one way kernels are declared. Compiled code is cached on disk next to the
module (or in numba's user-wide cache when that folder is read-only, as in an installed image), so
only the first process on a machine pays the compile time; where no cache location is writable the
kernel is compiled in memory on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


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
