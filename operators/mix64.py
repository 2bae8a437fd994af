"""A 64-bit integer mixer shared by the code that hashes ids without Python's per-process hash seed."""

from __future__ import annotations

import numpy as np

_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_SHIFT = np.uint64(33)


def mix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: every input bit affects every output bit (uint64 arithmetic wraps).

    Takes arrays: numpy warns about the intended wrap-around on scalars, not on arrays.

    >>> h = mix64(np.arange(3, dtype=np.uint64))
    >>> h.dtype, len(set(h.tolist()))
    (dtype('uint64'), 3)
    """
    h = h ^ (h >> _SHIFT)
    h = h * _FMIX1
    h = h ^ (h >> _SHIFT)
    h = h * _FMIX2
    return h ^ (h >> _SHIFT)
