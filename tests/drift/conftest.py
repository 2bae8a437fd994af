"""Streams with known drifts, shared by the detector tests."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.labels.clustering import StructureChange


@pytest.fixture(scope="session")
def error_stream() -> list[float]:
    """0/1 errors: rate 0.05, then 0.4 from 1500, then 0.8 from 3000 (two rises)."""
    rng = np.random.default_rng(0)
    rates = np.concatenate([np.full(1500, 0.05), np.full(1500, 0.4), np.full(1000, 0.8)])
    return (rng.random(len(rates)) < rates).astype(float).tolist()


@pytest.fixture(scope="session")
def label_set_stream() -> list[list[str]]:
    """Label sets: "b" jumps from 10% to 40% at 3000, a new label "d" appears at 6000."""
    rng = np.random.default_rng(0)
    out = []
    for t in range(9000):
        p_b = 0.1 if t < 3000 else 0.4
        p_d = 0.0 if t < 6000 else 0.3
        out.append([n for n, p in (("a", 0.5), ("b", p_b), ("c", 0.2), ("d", p_d)) if rng.random() < p])
    return out


@pytest.fixture(scope="session")
def vector_stream() -> list[np.ndarray]:
    """16-dim Gaussian vectors whose mean moves at 600 and again at 1200."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1800, 16)).astype(np.float32)
    x[600:] += 1.5 * np.eye(16, dtype=np.float32)[0]
    x[1200:] += 1.5 * np.eye(16, dtype=np.float32)[1]
    return list(x)


@pytest.fixture(scope="session")
def structure_changes() -> list[StructureChange]:
    """Partition changes as the label clusterer reports them (label ids, not names)."""
    return [
        StructureChange("new_label", 1, 0, 1, (0, 1, 2, 3), 4.0, 0.0, "first_seen"),
        StructureChange("split", 180, 1, 2, (0, 1, 2, 3), 0.42, 0.11, "heterogeneity"),
        StructureChange("merge", 900, 2, 3, (1, 2), 0.3, 0.12, "affinity"),
    ]

