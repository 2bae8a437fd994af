"""The bounded, expiring feedback join store."""

from __future__ import annotations

import numpy as np
import pytest

from labelflow.operators.base import SparseVector
from labelflow.stream.feedback_store import FeedbackStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dense(v: float) -> np.ndarray:
    return np.full(3, v, dtype=np.float32)


def test_join_by_id_and_forget_after_take() -> None:
    store = FeedbackStore(max_entries=10, ttl_s=60, remember_ids=10)
    store.add_document("d1", dense(1), {"a"})
    entry = store.take_document("d1")
    assert entry is not None and entry.predicted == frozenset({"a"}) and entry.features.tolist() == [1, 1, 1]
    assert store.take_document("d1") is None and store.waiting_documents == 0


def test_capacity_evicts_oldest_and_remembers_it_as_expired() -> None:
    store = FeedbackStore(max_entries=2, ttl_s=60, remember_ids=10)
    assert store.add_document("d1", dense(1), []) is None
    store.add_document("d2", dense(2), [])
    assert store.add_document("d3", dense(3), []) == 1
    assert store.was_expired("d1") and not store.was_expired("d2")
    assert store.take_document("d1") is None and store.waiting_documents == 2


def test_ttl_expires_documents_and_early_feedback() -> None:
    clock = Clock()
    store = FeedbackStore(max_entries=10, ttl_s=5, remember_ids=10, clock=clock)
    store.add_document("old", dense(1), [])
    store.add_early_feedback("early-old", ["x"])
    clock.now += 3
    store.add_document("new", dense(2), [])
    store.add_early_feedback("early-new", ["y"])
    clock.now += 3  # old entries are now 6 s old, new ones 3 s
    assert store.expire() == (1, 1)
    assert store.was_expired("old") and store.take_document("new") is not None
    assert store.take_early_feedback("early-old") is None
    assert store.take_early_feedback("early-new").labels == ("y",)


def test_early_feedback_capacity_reports_evictions() -> None:
    store = FeedbackStore(max_entries=1, ttl_s=60, remember_ids=10)
    assert store.add_early_feedback("a", ["x"]) == 0
    assert store.add_early_feedback("b", ["y"]) == 1
    assert store.take_early_feedback("a") is None


def test_learned_ids_are_bounded() -> None:
    store = FeedbackStore(max_entries=1, ttl_s=60, remember_ids=2)
    for doc_id in ("a", "b", "c"):
        store.mark_learned(doc_id)
    assert not store.was_learned("a") and store.was_learned("b") and store.was_learned("c")
    assert not FeedbackStore(max_entries=1, ttl_s=60, remember_ids=0).was_learned("a")


def test_re_adding_a_document_refreshes_it() -> None:
    store = FeedbackStore(max_entries=10, ttl_s=60, remember_ids=10)
    store.add_document("d", dense(1), [])
    store.add_document("d", dense(2), ["z"])
    assert store.waiting_documents == 1 and store.take_document("d").predicted == frozenset({"z"})


def test_state_round_trip_with_dense_and_sparse_features() -> None:
    clock = Clock()
    store = FeedbackStore(max_entries=10, ttl_s=60, remember_ids=10, clock=clock)
    store.add_document("dense", dense(0.5), ["a"])
    store.add_document(
        "sparse", SparseVector(np.array([1, 7]), np.array([0.5, -2.0], dtype=np.float32), 16), []
    )
    store.add_document("empty", SparseVector(np.zeros(0, np.int64), np.zeros(0, np.float32), 16), [])
    store.add_early_feedback("waiting", ["b", "c"])
    store.mark_learned("done")
    store.add_document("gone", dense(9), [])
    store.take_document("gone")
    state = store.state()
    assert all(isinstance(v, np.ndarray) for v in state.arrays.values())
    restored = FeedbackStore.from_state(state, max_entries=10, ttl_s=60, remember_ids=10, clock=clock)
    sparse = restored.take_document("sparse")
    assert (
        sparse.features.indices.tolist() == [1, 7]
        and sparse.features.values.tolist() == [0.5, -2.0]
        and sparse.features.dim == 16
    )
    assert restored.take_document("empty").features.nnz == 0
    assert restored.take_document("dense").features.tolist() == [0.5, 0.5, 0.5]
    assert restored.take_early_feedback("waiting").labels == ("b", "c")
    assert restored.was_learned("done")


def test_restore_into_smaller_limits_evicts_oldest() -> None:
    store = FeedbackStore(max_entries=10, ttl_s=60, remember_ids=10)
    for i in range(5):
        store.add_document(f"d{i}", dense(i), [])
    restored = FeedbackStore.from_state(store.state(), max_entries=2, ttl_s=60, remember_ids=10)
    assert (
        restored.waiting_documents == 2
        and restored.was_expired("d0")
        and restored.take_document("d4") is not None
    )


def test_refuses_foreign_state() -> None:
    state = FeedbackStore(max_entries=1, ttl_s=1, remember_ids=1).state()
    state.meta["version"] = 99
    with pytest.raises(ValueError, match="version"):
        FeedbackStore.from_state(state, max_entries=1, ttl_s=1, remember_ids=1)
    with pytest.raises(ValueError):
        FeedbackStore(max_entries=0, ttl_s=1, remember_ids=1)
