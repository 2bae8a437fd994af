"""The bounded, expiring feedback join store."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from labelflow.operators.base import SparseVector
from labelflow.operators.state import State
from labelflow.stream.feedback_store import Evictions, FeedbackStore


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
    assert not store.add_document("d1", dense(1), [])
    store.add_document("d2", dense(2), [])
    assert store.add_document("d3", dense(3), []) == Evictions(documents=1)
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
    assert store.add_early_feedback("a", ["x"]) == Evictions()
    assert store.add_early_feedback("b", ["y"]) == Evictions(feedback=1)
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


# -- bounded in bytes, binary checkpoint state (issue 13, defect 6) ---------------------------------


def large_document(seed: int, nnz: int = 100_000) -> SparseVector:
    """The hashed features of a long text: ~1.2 MB of index and value arrays."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(1 << 20, size=nnz, replace=False)).astype(np.int64)
    return SparseVector(indices, rng.random(nnz, dtype=np.float32), 1 << 20)


def test_large_waiting_documents_are_bounded_in_bytes_and_their_evictions_counted() -> None:
    # 200 documents of ~1.2 MB each would take ~240 MB under the count bound alone.
    store = FeedbackStore(max_entries=20_000, ttl_s=3_600, remember_ids=1_000, max_bytes=20_000_000)
    tracemalloc.start()
    evicted = Evictions()
    for i in range(200):
        e = store.add_document(f"d{i}", large_document(i), ["a", "b"])
        evicted = Evictions(evicted.documents + e.documents, evicted.feedback + e.feedback)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert store.nbytes <= 20_000_000 and store.waiting_documents == 16
    assert evicted == Evictions(documents=184)
    assert store.was_expired("d0") and store.take_document("d199") is not None
    # The estimate is honest: what the process actually holds is within 10% of it.
    assert held <= 1.1 * 20_000_000


def test_the_byte_bound_evicts_the_oldest_entry_of_either_side() -> None:
    clock = Clock()
    store = FeedbackStore(max_entries=100, ttl_s=3_600, remember_ids=10, clock=clock, max_bytes=4_000)
    store.add_early_feedback("f-old", ["x"])
    clock.now += 1
    store.add_document("d1", np.ones(200, np.float32), [])
    clock.now += 1
    # 800 bytes of features each: the third document pushes out the oldest entry, the early feedback.
    store.add_document("d2", np.ones(200, np.float32), [])
    assert store.add_document("d3", np.ones(200, np.float32), []) == Evictions(feedback=1)
    assert store.take_early_feedback("f-old") is None and store.waiting_documents == 3
    assert store.nbytes <= 4_000


def test_byte_accounting_follows_takes_and_expiry() -> None:
    clock = Clock()
    store = FeedbackStore(max_entries=10, ttl_s=5, remember_ids=10, clock=clock)
    store.add_document("d", dense(1), ["a"])
    store.add_early_feedback("f", ["x", "y"])
    assert store.nbytes > 0
    store.take_document("d")
    clock.now += 10
    store.expire()
    assert store.nbytes == 0


def test_many_pending_feedback_messages_checkpoint_as_arrays_not_json() -> None:
    # 20,000 pending feedback messages used to become a 121 MB JSON metadata file.
    store = FeedbackStore(max_entries=20_000, ttl_s=3_600, remember_ids=100_000)
    labels = [f"a-fairly-long-label-name-{i:03d}" for i in range(40)]
    for i in range(20_000):
        store.add_early_feedback(f"document-{i:06d}", labels[i % 7 : i % 7 + 20])
        store.mark_learned(f"learned-{i:06d}")
    state = store.state()
    assert len(json.dumps(state.meta)) < 1_000
    restored = FeedbackStore.from_state(state, max_entries=20_000, ttl_s=3_600, remember_ids=100_000)
    assert restored.waiting_feedback == 20_000 and restored.nbytes == store.nbytes
    assert restored.take_early_feedback("document-000008").labels == tuple(labels[1:21])
    assert restored.was_learned("learned-019999")


def test_a_version_1_state_is_still_read() -> None:
    state = State(
        meta={
            "kind": "labelflow.feedback_store",
            "version": 1,
            "max_entries": 10,
            "ttl_s": 60,
            "documents": {
                "ids": ["d"],
                "stored_at": [5.0],
                "predicted": [["a"]],
                "kinds": ["dense"],
                "dims": [2],
            },
            "feedback": {"ids": ["f"], "labels": [["x", "y"]], "stored_at": [6.0]},
            "learned_ids": ["l"],
            "expired_ids": ["e"],
        },
        arrays={
            "dense_values": np.array([1.0, 2.0], np.float32),
            "dense_ptr": np.array([0, 2]),
            "sparse_indices": np.zeros(0, np.int64),
            "sparse_values": np.zeros(0, np.float32),
            "sparse_ptr": np.array([0]),
        },
    )
    store = FeedbackStore.from_state(state, max_entries=10, ttl_s=60, remember_ids=10, clock=lambda: 7.0)
    assert store.take_document("d").features.tolist() == [1.0, 2.0]
    assert store.take_early_feedback("f").labels == ("x", "y")
    assert store.was_learned("l") and store.was_expired("e")
