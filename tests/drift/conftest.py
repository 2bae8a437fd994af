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
    """Partition changes as the label clusterer reports them (label ids, not names): a new label and a
    split while the partition forms (warnings), then a split and a merge of the settled partition."""
    return [
        StructureChange("new_label", 1, 0, 1, (0, 1, 2, 3), 4.0, 0.0, "first_seen", 0, 0.0),
        StructureChange("split", 180, 1, 2, (0, 1, 2, 3), 0.42, 0.11, "heterogeneity", 179, 40.0),
        StructureChange("split", 4200, 2, 3, (0, 1, 2, 3), 0.38, 0.1, "separation", 4199, 212.5),
        StructureChange("merge", 4900, 3, 4, (1, 2), 0.3, 0.12, "affinity", 4899, 96.1),
    ]


def dependence_label_sets(
    n: int,
    swaps: tuple[int, ...] = (),
    seed: int = 0,
    prior_shift_at: int | None = None,
    new_group_at: int | None = None,
) -> list[list[int]]:
    """Label-id sets from two groups of labels, {0, 1, 2} and {3, 4, 5}: each set draws its labels from
    one group (each group half of the time, or 90% / 10% from ``prior_shift_at`` on), label by label
    with probabilities 0.9, 0.5, 0.5. At each position in ``swaps`` labels 2 and 5 trade groups (their
    frequencies stay, their company changes). From ``new_group_at`` on, a third group {6, 7} (new
    label ids) is drawn a third of the time."""
    rng = np.random.default_rng(seed)
    out = []
    swapped = False
    for t in range(n):
        if t in swaps:
            swapped = not swapped
        groups = [[0, 1, 5], [3, 4, 2]] if swapped else [[0, 1, 2], [3, 4, 5]]
        weights = [0.5, 0.5] if prior_shift_at is None or t < prior_shift_at else [0.9, 0.1]
        if new_group_at is not None and t >= new_group_at:
            groups.append([6, 7])
            weights = [2 * w / 3 for w in weights] + [1 / 3]
        group = groups[rng.choice(len(groups), p=weights)]
        out.append([label for label, p in zip(group, (0.9, 0.5, 0.5), strict=False) if rng.random() < p])
    return out


@pytest.fixture(scope="session")
def make_dependence_sets():
    """``dependence_label_sets`` (tests import fixtures, not modules: pytest runs in importlib mode)."""
    return dependence_label_sets


@pytest.fixture(scope="session")
def dependence_stream() -> list[list[int]]:
    """Label-id sets whose pair dependence changes at 3000 (labels 2 and 5 trade groups) and back at 6000."""
    return dependence_label_sets(9000, swaps=(3000, 6000))
