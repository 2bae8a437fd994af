"""Capacity growth for arrays indexed by label id (the label space grows online)."""

from __future__ import annotations

import numpy as np


def grow_last_axis(array: np.ndarray, needed: int, fill: float = 0.0) -> np.ndarray:
    """Return ``array`` with its last axis at least ``needed`` long, doubling to amortise copies."""
    have = array.shape[-1]
    if needed <= have:
        return array
    new_size = max(needed, 2 * have, 8)
    grown = np.full(array.shape[:-1] + (new_size,), fill, dtype=array.dtype)
    grown[..., :have] = array
    return grown
