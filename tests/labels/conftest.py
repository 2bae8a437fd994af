"""Label-set streams for the label clusterer tests: synthetic groups, and Bibtex's label columns."""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

Groups = Sequence[Sequence[int]]


def grouped_label_sets(
    groups: Groups, n: int, rng: random.Random, p_member: float = 0.7, p_noise: float = 0.1
) -> Iterator[list[int]]:
    """Each instance draws a group, keeps each of its labels with ``p_member`` (at least one) and,
    with ``p_noise``, adds a label drawn from all groups."""
    every = sorted(label for group in groups for label in group)
    for _ in range(n):
        group = rng.choice(groups)
        labels = [label for label in group if rng.random() < p_member] or [rng.choice(group)]
        if rng.random() < p_noise:
            labels.append(rng.choice(every))
        yield labels


def same_grouping(clusters: Sequence[Sequence[int]], groups: Groups) -> bool:
    return sorted(map(sorted, clusters)) == sorted(map(sorted, groups))


class GroupedStreams:
    """Fixture namespace (test modules cannot import each other under --import-mode=importlib)."""

    label_sets = staticmethod(grouped_label_sets)
    same_grouping = staticmethod(same_grouping)


@pytest.fixture()
def streams() -> type[GroupedStreams]:
    return GroupedStreams


def bibtex_label_ids(path: Path) -> list[list[int]]:
    """Label ids (0..158, attribute order) of each Bibtex row: a MEKA sparse ARFF, labels last."""
    n_attributes = 0
    rows: list[list[int]] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("@attribute"):
                n_attributes += 1
            elif line.startswith("@data"):
                break
        first_label = n_attributes - 159
        for line in fh:
            line = line.strip()
            if line.startswith("{"):
                items = (item.split() for item in line[1:-1].split(","))
                rows.append([int(i) - first_label for i, v in items if int(i) >= first_label and v == "1"])
    return rows


@pytest.fixture(scope="session")
def bibtex_labels(datasets_dir: Path) -> list[list[int]]:
    path = datasets_dir / "bibtex" / "Bibtex.arff.gz"
    if not path.is_file():
        pytest.fail(f"Bibtex dataset missing at {path}")
    return bibtex_label_ids(path)
