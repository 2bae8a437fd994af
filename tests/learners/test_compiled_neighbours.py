"""The compiled neighbour vote against a plain numpy reference: cosine similarities to the window, the ``k``
most similar (ties to the lower slot), squared-similarity weights, the prior mixed in."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.base import SparseVector
from labelflow.operators.learners.neighbours import RecentNeighbours
from labelflow.operators.state import State


class ReferenceWindow:
    """The last ``window`` unit vectors (dense float64) and label rows, slot by slot as the ring writes them."""

    def __init__(self, window: int, k: int, prior_weight: float) -> None:
        self.window, self.k, self.prior_weight = window, k, prior_weight
        self.slots: list[tuple[np.ndarray, np.ndarray]] = []
        self.totals = np.zeros(0)
        self.n_seen = 0

    def learn(self, unit: np.ndarray, y: np.ndarray) -> None:
        slot = self.n_seen % self.window
        if slot == len(self.slots):
            self.slots.append((unit, y))
        else:
            self.slots[slot] = (unit, y)
        self.totals = np.pad(self.totals, (0, max(0, y.shape[0] - self.totals.shape[0])))
        self.totals[: y.shape[0]] += y
        self.n_seen += 1

    def votes(self, unit: np.ndarray, n_labels: int) -> np.ndarray:
        totals = np.pad(self.totals, (0, n_labels - self.totals.shape[0]))
        prior = (totals + 0.5) / (self.n_seen + 1.0)
        if not self.slots:
            return prior
        similarities = np.array([unit @ vector for vector, _ in self.slots])
        nearest = np.argsort(-similarities, kind="stable")[: self.k]
        weights = np.maximum(similarities[nearest], 0.0) ** 2
        rows = np.array(
            [np.pad(self.slots[i][1], (0, n_labels - self.slots[i][1].shape[0])) for i in nearest]
        )
        tally = weights @ rows
        if self.prior_weight > 0.0:
            return (tally + self.prior_weight * prior) / (weights.sum() + self.prior_weight)
        return tally / weights.sum() if weights.sum() > 0.0 else prior


def dense_unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.linalg.norm(x)


def sparse_unit(x: SparseVector, width: int, sketch: RecentNeighbours | None = None) -> np.ndarray:
    dense = np.zeros(width)
    if sketch is not None:  # the window's own hashing (bucket and sign per feature)
        assert sketch._bucket is not None and sketch._sign is not None
        np.add.at(dense, sketch._bucket[x.indices], sketch._sign[x.indices] * x.values.astype(np.float64))
    else:
        dense[x.indices] = x.values
    return dense / np.linalg.norm(dense)


def stream(kind: str, rng: np.random.Generator, n: int) -> list[np.ndarray | SparseVector]:
    out: list[np.ndarray | SparseVector] = []
    for _ in range(n):
        if kind == "dense":
            out.append(rng.normal(size=12).astype(np.float32))
        else:
            dim = 30 if kind == "sparse" else 5_000
            indices = np.unique(rng.integers(0, dim, size=6))
            out.append(SparseVector(indices, rng.uniform(0.1, 1.0, indices.shape[0]).astype(np.float32), dim))
    return out


@pytest.mark.parametrize("kind", ["dense", "sparse", "sketched"])
@pytest.mark.parametrize("prior_weight", [1.0, 0.0])
def test_compiled_votes_match_the_reference(kind: str, prior_weight: float):
    rng = np.random.default_rng(3)
    knn = RecentNeighbours(window=25, k=4, sketch_dim=64, prior_weight=prior_weight)
    reference = ReferenceWindow(window=25, k=4, prior_weight=prior_weight)
    xs = stream(kind, rng, 80)

    def unit(x: np.ndarray | SparseVector) -> np.ndarray:
        if isinstance(x, SparseVector):
            return sparse_unit(x, 64 if kind == "sketched" else 30, knn if kind == "sketched" else None)
        return dense_unit(x)

    for step, x in enumerate(xs):
        n_labels = 2 + step // 20  # labels added mid-stream
        votes = knn.votes(x, n_labels)  # first: the first instance sets up the sketch
        assert np.allclose(votes, reference.votes(unit(x), n_labels), atol=1e-5), step
        y = (rng.random(n_labels) < 0.4).astype(np.float32)
        knn.learn(x, y)
        reference.learn(unit(x), y)
    batch = xs[-6:]
    assert np.array_equal(knn.votes_many(batch, 5), np.array([knn.votes(x, 5) for x in batch]))


def test_equally_similar_neighbours_go_to_the_lower_slot():
    knn = RecentNeighbours(window=4, k=1, prior_weight=0.0)
    x = np.array([1.0, 0.0], dtype=np.float32)
    for label in range(6):  # the same instance six times: slots 0, 1 end up holding labels 4 and 5
        knn.learn(x, np.eye(6, dtype=np.float32)[label])
    assert knn.votes(x, 6).tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_a_query_nothing_resembles_gets_the_prior_without_prior_mass():
    knn = RecentNeighbours(window=4, k=2, prior_weight=0.0)
    knn.learn(np.array([1.0, 0.0], dtype=np.float32), np.array([1.0, 0.0], dtype=np.float32))
    votes = knn.votes(np.array([-1.0, 0.0], dtype=np.float32), 2)  # similarity -1: weight 0
    assert votes.tolist() == pytest.approx([1.5 / 2.0, 0.5 / 2.0])


def test_dense_window_keeps_the_state_layout_of_one_instance_per_row(tmp_path):
    rng = np.random.default_rng(5)
    knn = RecentNeighbours(window=6, k=2)
    xs = stream("dense", rng, 9)
    for x in xs:
        knn.learn(x, np.array([1.0, 0.0], dtype=np.float32))
    state = knn.state()
    rows = state.arrays["vectors"]
    assert rows.shape == (6, 12)
    assert np.allclose(rows[(9 - 1) % 6], dense_unit(xs[-1]), atol=1e-6)  # the last instance, in its slot
    # A state as earlier releases wrote it (a C-ordered row matrix) restores and votes the same.
    state.arrays["vectors"] = np.ascontiguousarray(rows)
    state.save(tmp_path)
    restored = RecentNeighbours.from_state(State.load(tmp_path))
    query = rng.normal(size=12).astype(np.float32)
    assert np.array_equal(restored.votes(query, 2), knn.votes(query, 2))
    restored.learn(query, np.array([0.0, 1.0], dtype=np.float32))
    knn.learn(query, np.array([0.0, 1.0], dtype=np.float32))
    assert np.array_equal(restored.state().arrays["vectors"], knn.state().arrays["vectors"])
