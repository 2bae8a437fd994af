"""The bounded, expiring join between documents and their delayed labels.

An unlabelled document waits here (its features and the labels predicted for it) until its feedback
arrives on the labels topic; feedback that arrives before its document waits here too. Both sides are
bounded in count and age: the oldest entry is evicted when full, and entries older than the TTL
expire. The store also remembers recently learned ids (to recognise duplicate feedback and re-sent
labelled documents) and recently expired ids (to tell late feedback from feedback that never matched).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from labelflow.operators.base import Features, SparseVector
from labelflow.operators.state import State

STATE_KIND = "labelflow.feedback_store"
STATE_VERSION = 1


class FeedbackOutcome(StrEnum):
    """What happened to one feedback message (the ``outcome`` of the feedback counter)."""

    MATCHED = "matched"  # its document was waiting: learned now
    EARLY = "early"  # its document has not arrived yet: held until it does
    LATE = "late"  # its document waited but expired or was evicted before the feedback came
    DUPLICATE = "duplicate"  # the document was already learned (inline labels or earlier feedback)
    UNMATCHED = "unmatched"  # held early feedback whose document never came (counted on expiry)


@dataclass(frozen=True, slots=True)
class WaitingDocument:
    """An unlabelled document waiting for its labels."""

    features: Features
    predicted: frozenset[str]
    stored_at: float


@dataclass(frozen=True, slots=True)
class WaitingFeedback:
    """Labels that arrived before their document."""

    labels: tuple[str, ...]
    stored_at: float


class _BoundedIds:
    """Insertion-ordered set that forgets its oldest ids beyond ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, doc_id: str) -> None:
        if self.capacity == 0:
            return
        self._ids[doc_id] = None
        self._ids.move_to_end(doc_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def discard(self, doc_id: str) -> None:
        self._ids.pop(doc_id, None)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def to_list(self) -> list[str]:
        return list(self._ids)


class FeedbackStore:
    """Joins delayed labels to waiting documents by id, within a size and age budget.

    Parameters
    ----------
    max_entries
        Most waiting documents (and, separately, most waiting early feedback messages) kept.
    ttl_s
        Seconds an entry may wait before it expires.
    remember_ids
        How many learned ids and expired ids are remembered for classifying later feedback.
    clock
        Wall-clock seconds (entries keep their age across a checkpoint restore).

    Examples
    --------
    >>> import numpy as np
    >>> store = FeedbackStore(max_entries=2, ttl_s=60, remember_ids=10, clock=lambda: 0.0)
    >>> store.add_document("d1", np.ones(2, dtype=np.float32), {"a"})
    >>> store.add_document("d2", np.ones(2, dtype=np.float32), set())
    >>> store.add_document("d3", np.ones(2, dtype=np.float32), set())  # evicts d1, the oldest
    1
    >>> store.take_document("d1") is None, store.was_expired("d1")
    (True, True)
    >>> sorted(store.take_document("d2").predicted)
    []
    """

    def __init__(
        self,
        max_entries: int,
        ttl_s: float,
        remember_ids: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.clock = clock
        self._documents: OrderedDict[str, WaitingDocument] = OrderedDict()
        self._feedback: OrderedDict[str, WaitingFeedback] = OrderedDict()
        self._learned = _BoundedIds(remember_ids)
        self._expired = _BoundedIds(remember_ids)

    # -- documents waiting for labels -------------------------------------------------------------

    def add_document(self, doc_id: str, features: Features, predicted: Iterable[str]) -> int | None:
        """Keep an unlabelled document until its feedback comes; the number of documents evicted, if any."""
        self._documents.pop(doc_id, None)
        self._documents[doc_id] = WaitingDocument(features, frozenset(predicted), self.clock())
        self._expired.discard(doc_id)
        evicted = 0
        while len(self._documents) > self.max_entries:
            old_id, _ = self._documents.popitem(last=False)
            self._expired.add(old_id)
            evicted += 1
        return evicted or None

    def take_document(self, doc_id: str) -> WaitingDocument | None:
        """Remove and return the waiting document ``doc_id`` (None if it is not waiting)."""
        return self._documents.pop(doc_id, None)

    def discard_document(self, doc_id: str) -> None:
        self._documents.pop(doc_id, None)

    # -- feedback waiting for its document --------------------------------------------------------

    def add_early_feedback(self, doc_id: str, labels: Iterable[str]) -> int:
        """Hold feedback whose document has not arrived; the number of held messages evicted (unmatched)."""
        self._feedback.pop(doc_id, None)
        self._feedback[doc_id] = WaitingFeedback(tuple(labels), self.clock())
        evicted = 0
        while len(self._feedback) > self.max_entries:
            self._feedback.popitem(last=False)
            evicted += 1
        return evicted

    def take_early_feedback(self, doc_id: str) -> WaitingFeedback | None:
        return self._feedback.pop(doc_id, None)

    # -- memory of learned and expired ids --------------------------------------------------------

    def mark_learned(self, doc_id: str) -> None:
        self._learned.add(doc_id)

    def was_learned(self, doc_id: str) -> bool:
        return doc_id in self._learned

    def was_expired(self, doc_id: str) -> bool:
        return doc_id in self._expired

    def expire(self) -> tuple[int, int]:
        """Drop entries older than the TTL: (documents expired, early feedback expired = unmatched)."""
        cutoff = self.clock() - self.ttl_s
        documents = 0
        while self._documents:
            doc_id, entry = next(iter(self._documents.items()))
            if entry.stored_at > cutoff:
                break
            self._documents.popitem(last=False)
            self._expired.add(doc_id)
            documents += 1
        feedback = 0
        while self._feedback:
            _, waiting = next(iter(self._feedback.items()))
            if waiting.stored_at > cutoff:
                break
            self._feedback.popitem(last=False)
            feedback += 1
        return documents, feedback

    @property
    def waiting_documents(self) -> int:
        return len(self._documents)

    @property
    def waiting_feedback(self) -> int:
        return len(self._feedback)

    # -- checkpoint state -------------------------------------------------------------------------

    def state(self) -> State:
        """Plain arrays + JSON: dense rows concatenated, sparse rows as CSR-style index/value arrays."""
        ids, stored_at, predicted, kinds, dims = [], [], [], [], []
        dense_parts: list[np.ndarray] = []
        dense_ptr = [0]
        sparse_idx: list[np.ndarray] = []
        sparse_val: list[np.ndarray] = []
        sparse_ptr = [0]
        for doc_id, entry in self._documents.items():
            ids.append(doc_id)
            stored_at.append(entry.stored_at)
            predicted.append(sorted(entry.predicted))
            x = entry.features
            if isinstance(x, SparseVector):
                kinds.append("sparse")
                dims.append(x.dim)
                sparse_idx.append(np.asarray(x.indices, dtype=np.int64))
                sparse_val.append(np.asarray(x.values, dtype=np.float32))
                sparse_ptr.append(sparse_ptr[-1] + x.nnz)
            else:
                row = np.asarray(x, dtype=np.float32).ravel()
                kinds.append("dense")
                dims.append(int(row.shape[0]))
                dense_parts.append(row)
                dense_ptr.append(dense_ptr[-1] + int(row.shape[0]))
        meta = {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "max_entries": self.max_entries,
            "ttl_s": self.ttl_s,
            "documents": {
                "ids": ids,
                "stored_at": stored_at,
                "predicted": predicted,
                "kinds": kinds,
                "dims": dims,
            },
            "feedback": {
                "ids": list(self._feedback),
                "labels": [list(w.labels) for w in self._feedback.values()],
                "stored_at": [w.stored_at for w in self._feedback.values()],
            },
            "learned_ids": self._learned.to_list(),
            "expired_ids": self._expired.to_list(),
        }
        arrays = {
            "dense_values": np.concatenate(dense_parts) if dense_parts else np.zeros(0, np.float32),
            "dense_ptr": np.asarray(dense_ptr, dtype=np.int64),
            "sparse_indices": np.concatenate(sparse_idx) if sparse_idx else np.zeros(0, np.int64),
            "sparse_values": np.concatenate(sparse_val) if sparse_val else np.zeros(0, np.float32),
            "sparse_ptr": np.asarray(sparse_ptr, dtype=np.int64),
        }
        return State(meta=meta, arrays=arrays)

    @classmethod
    def from_state(
        cls,
        state: State,
        *,
        max_entries: int,
        ttl_s: float,
        remember_ids: int,
        clock: Callable[[], float] = time.time,
    ) -> FeedbackStore:
        """Rebuild a store; the limits come from the current settings (they may have changed)."""
        meta = state.meta
        if meta.get("kind") != STATE_KIND or meta.get("version") != STATE_VERSION:
            raise ValueError(
                f"feedback store state is {meta.get('kind')!r} version {meta.get('version')!r}; "
                f"expected {STATE_KIND!r} version {STATE_VERSION}"
            )
        store = cls(max_entries=max_entries, ttl_s=ttl_s, remember_ids=remember_ids, clock=clock)
        for doc_id in meta["learned_ids"]:
            store._learned.add(doc_id)
        for doc_id in meta["expired_ids"]:
            store._expired.add(doc_id)
        docs = meta["documents"]
        a = state.arrays
        dense_i = sparse_i = 0
        for doc_id, stored_at, predicted, kind, dim in zip(
            docs["ids"], docs["stored_at"], docs["predicted"], docs["kinds"], docs["dims"]
        ):
            if kind == "sparse":
                lo, hi = int(a["sparse_ptr"][sparse_i]), int(a["sparse_ptr"][sparse_i + 1])
                x: Features = SparseVector(
                    a["sparse_indices"][lo:hi].copy(), a["sparse_values"][lo:hi].copy(), int(dim)
                )
                sparse_i += 1
            else:
                lo, hi = int(a["dense_ptr"][dense_i]), int(a["dense_ptr"][dense_i + 1])
                x = a["dense_values"][lo:hi].copy()
                dense_i += 1
            store._documents[doc_id] = WaitingDocument(x, frozenset(predicted), float(stored_at))
        fb = meta["feedback"]
        for doc_id, labels, stored_at in zip(fb["ids"], fb["labels"], fb["stored_at"]):
            store._feedback[doc_id] = WaitingFeedback(tuple(labels), float(stored_at))
        # Limits may have shrunk since the checkpoint: evict the oldest beyond them.
        while len(store._documents) > max_entries:
            old_id, _ = store._documents.popitem(last=False)
            store._expired.add(old_id)
        while len(store._feedback) > max_entries:
            store._feedback.popitem(last=False)
        return store
