"""The bounded, expiring join between documents and their delayed labels.

An unlabelled document waits here (its features and the labels predicted for it) until its feedback
arrives on the labels topic; feedback that arrives before its document waits here too. Both sides are
bounded in count and together in bytes (a document's features can be megabytes: a count alone bounds
nothing), and in age: the oldest entry is evicted when a bound is exceeded, and entries older than the
TTL expire. The store also remembers recently learned ids (to recognise duplicate feedback and re-sent
labelled documents) and recently expired ids (to tell late feedback from feedback that never matched).

Its checkpoint state is binary: features, ids and label names as numpy arrays (strings as one UTF-8
byte array plus offsets), with only counts and limits in the JSON metadata.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from labelflow.operators.base import Features, SparseVector
from labelflow.operators.state import State

STATE_KIND = "labelflow.feedback_store"
# Version 2: ids and labels as arrays (version 1 held them as JSON lists; still read).
STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)

# Bytes an entry costs beyond its arrays and strings: the dict slot, the entry object, the frozenset or
# tuple and the string headers (CPython 3.11, measured with tracemalloc in tests/stream).
ENTRY_OVERHEAD_BYTES = 400
STRING_OVERHEAD_BYTES = 50


def features_bytes(x: Features) -> int:
    """Bytes of a feature vector's arrays."""
    if isinstance(x, SparseVector):
        return int(x.indices.nbytes + x.values.nbytes)
    return int(np.asarray(x).nbytes)


def _strings_bytes(strings: Iterable[str]) -> int:
    return sum(len(text) + STRING_OVERHEAD_BYTES for text in strings)


def pack_strings(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as one UTF-8 byte array and int64 end offsets (a binary, JSON-free encoding).

    >>> data, ends = pack_strings(["ab", "", "é"])
    >>> unpack_strings(data, ends)
    ['ab', '', 'é']
    """
    encoded = [text.encode("utf-8") for text in strings]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64) if encoded else np.zeros(0, np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), ends


def unpack_strings(data: np.ndarray, ends: np.ndarray) -> list[str]:
    raw = data.tobytes()
    starts = [0, *ends[:-1].tolist()] if len(ends) else []
    return [raw[a:b].decode("utf-8") for a, b in zip(starts, ends.tolist(), strict=True)]


@dataclass(frozen=True, slots=True)
class Evictions:
    """Entries a bound pushed out of the store (documents count as expired, feedback as unmatched)."""

    documents: int = 0
    feedback: int = 0

    def __bool__(self) -> bool:
        return bool(self.documents or self.feedback)


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

    def nbytes(self, doc_id: str) -> int:
        return (
            ENTRY_OVERHEAD_BYTES + features_bytes(self.features) + _strings_bytes([doc_id, *self.predicted])
        )


@dataclass(frozen=True, slots=True)
class WaitingFeedback:
    """Labels that arrived before their document."""

    labels: tuple[str, ...]
    stored_at: float

    def nbytes(self, doc_id: str) -> int:
        return ENTRY_OVERHEAD_BYTES + _strings_bytes([doc_id, *self.labels])


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
    """Joins delayed labels to waiting documents by id, within a count, byte and age budget.

    Parameters
    ----------
    max_entries
        Most waiting documents (and, separately, most waiting early feedback messages) kept.
    ttl_s
        Seconds an entry may wait before it expires.
    remember_ids
        How many learned ids and expired ids are remembered for classifying later feedback.
    max_bytes
        Most bytes the waiting entries of both sides hold together (features, ids, label names and a
        per-entry overhead); past it the oldest entries, of either side, are evicted.
    clock
        Wall-clock seconds (entries keep their age across a checkpoint restore).

    Examples
    --------
    >>> import numpy as np
    >>> store = FeedbackStore(max_entries=2, ttl_s=60, remember_ids=10, clock=lambda: 0.0)
    >>> store.add_document("d1", np.ones(2, dtype=np.float32), {"a"})
    Evictions(documents=0, feedback=0)
    >>> _ = store.add_document("d2", np.ones(2, dtype=np.float32), set())
    >>> store.add_document("d3", np.ones(2, dtype=np.float32), set())  # evicts d1, the oldest
    Evictions(documents=1, feedback=0)
    >>> store.take_document("d1") is None, store.was_expired("d1")
    (True, True)
    >>> sorted(store.take_document("d2").predicted)
    []
    >>> small = FeedbackStore(max_entries=100, ttl_s=60, remember_ids=10, max_bytes=10_000)
    >>> _ = [small.add_document(f"d{i}", np.ones(1_000, dtype=np.float32), []) for i in range(5)]
    >>> small.waiting_documents, small.nbytes <= 10_000  # 4 KB of features each: two fit
    (2, True)
    """

    def __init__(
        self,
        max_entries: int,
        ttl_s: float,
        remember_ids: int,
        clock: Callable[[], float] = time.time,
        *,
        max_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.clock = clock
        self._documents: OrderedDict[str, WaitingDocument] = OrderedDict()
        self._feedback: OrderedDict[str, WaitingFeedback] = OrderedDict()
        self._bytes = 0
        self._learned = _BoundedIds(remember_ids)
        self._expired = _BoundedIds(remember_ids)

    # -- documents waiting for labels -------------------------------------------------------------

    def add_document(self, doc_id: str, features: Features, predicted: Iterable[str]) -> Evictions:
        """Keep an unlabelled document until its feedback comes; what the bounds evicted to make room."""
        self.discard_document(doc_id)
        entry = WaitingDocument(features, frozenset(predicted), self.clock())
        self._documents[doc_id] = entry
        self._bytes += entry.nbytes(doc_id)
        self._expired.discard(doc_id)
        documents = 0
        while len(self._documents) > self.max_entries:
            self._pop_document()
            documents += 1
        over = self._evict_over_bytes()
        return Evictions(documents + over.documents, over.feedback)

    def take_document(self, doc_id: str) -> WaitingDocument | None:
        """Remove and return the waiting document ``doc_id`` (None if it is not waiting)."""
        entry = self._documents.pop(doc_id, None)
        if entry is not None:
            self._bytes -= entry.nbytes(doc_id)
        return entry

    def discard_document(self, doc_id: str) -> None:
        self.take_document(doc_id)

    def _pop_document(self) -> None:
        """Evict the oldest waiting document; its id is remembered as expired (late feedback)."""
        old_id, entry = self._documents.popitem(last=False)
        self._bytes -= entry.nbytes(old_id)
        self._expired.add(old_id)

    # -- feedback waiting for its document --------------------------------------------------------

    def add_early_feedback(self, doc_id: str, labels: Iterable[str]) -> Evictions:
        """Hold feedback whose document has not arrived; what the bounds evicted to make room."""
        self.take_early_feedback(doc_id)
        entry = WaitingFeedback(tuple(labels), self.clock())
        self._feedback[doc_id] = entry
        self._bytes += entry.nbytes(doc_id)
        feedback = 0
        while len(self._feedback) > self.max_entries:
            self._pop_feedback()
            feedback += 1
        over = self._evict_over_bytes()
        return Evictions(over.documents, feedback + over.feedback)

    def take_early_feedback(self, doc_id: str) -> WaitingFeedback | None:
        entry = self._feedback.pop(doc_id, None)
        if entry is not None:
            self._bytes -= entry.nbytes(doc_id)
        return entry

    def _pop_feedback(self) -> None:
        old_id, entry = self._feedback.popitem(last=False)
        self._bytes -= entry.nbytes(old_id)

    def _evict_over_bytes(self) -> Evictions:
        """Evict the oldest entries of either side until the store is within ``max_bytes``."""
        documents = feedback = 0
        while self._bytes > self.max_bytes and (self._documents or self._feedback):
            oldest_document = next(iter(self._documents.values()), None)
            oldest_feedback = next(iter(self._feedback.values()), None)
            if oldest_feedback is None or (
                oldest_document is not None and oldest_document.stored_at <= oldest_feedback.stored_at
            ):
                self._pop_document()
                documents += 1
            else:
                self._pop_feedback()
                feedback += 1
        return Evictions(documents, feedback)

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
        while self._documents and next(iter(self._documents.values())).stored_at <= cutoff:
            self._pop_document()
            documents += 1
        feedback = 0
        while self._feedback and next(iter(self._feedback.values())).stored_at <= cutoff:
            self._pop_feedback()
            feedback += 1
        return documents, feedback

    @property
    def waiting_documents(self) -> int:
        return len(self._documents)

    @property
    def waiting_feedback(self) -> int:
        return len(self._feedback)

    @property
    def nbytes(self) -> int:
        """Bytes held by the waiting entries (what ``max_bytes`` bounds)."""
        return self._bytes

    # -- checkpoint state -------------------------------------------------------------------------

    def state(self) -> State:
        """Arrays only for what grows with the entries: dense rows concatenated, sparse rows as
        CSR-style index/value arrays, ids and label names as packed UTF-8 strings."""
        documents = list(self._documents.items())
        dense_parts: list[np.ndarray] = []
        dense_ptr = [0]
        sparse_idx: list[np.ndarray] = []
        sparse_val: list[np.ndarray] = []
        sparse_ptr = [0]
        sparse = np.zeros(len(documents), dtype=bool)
        dims = np.zeros(len(documents), dtype=np.int64)
        for i, (_, entry) in enumerate(documents):
            x = entry.features
            if isinstance(x, SparseVector):
                sparse[i] = True
                dims[i] = x.dim
                sparse_idx.append(np.asarray(x.indices, dtype=np.int64))
                sparse_val.append(np.asarray(x.values, dtype=np.float32))
                sparse_ptr.append(sparse_ptr[-1] + x.nnz)
            else:
                row = np.asarray(x, dtype=np.float32).ravel()
                dims[i] = row.shape[0]
                dense_parts.append(row)
                dense_ptr.append(dense_ptr[-1] + int(row.shape[0]))
        feedback = list(self._feedback.items())
        arrays: dict[str, np.ndarray] = {
            "dense_values": np.concatenate(dense_parts) if dense_parts else np.zeros(0, np.float32),
            "dense_ptr": np.asarray(dense_ptr, dtype=np.int64),
            "sparse_indices": np.concatenate(sparse_idx) if sparse_idx else np.zeros(0, np.int64),
            "sparse_values": np.concatenate(sparse_val) if sparse_val else np.zeros(0, np.float32),
            "sparse_ptr": np.asarray(sparse_ptr, dtype=np.int64),
            "doc_sparse": sparse,
            "doc_dims": dims,
            "doc_stored_at": np.asarray([e.stored_at for _, e in documents], dtype=np.float64),
            "feedback_stored_at": np.asarray([e.stored_at for _, e in feedback], dtype=np.float64),
        }
        for name, groups in (
            ("doc_predicted", [sorted(e.predicted) for _, e in documents]),
            ("feedback_labels", [list(e.labels) for _, e in feedback]),
        ):
            arrays[f"{name}_count"] = np.asarray([len(g) for g in groups], dtype=np.int64)
            arrays[f"{name}_data"], arrays[f"{name}_ends"] = pack_strings([x for g in groups for x in g])
        for name, ids in (
            ("doc_ids", [doc_id for doc_id, _ in documents]),
            ("feedback_ids", [doc_id for doc_id, _ in feedback]),
            ("learned_ids", self._learned.to_list()),
            ("expired_ids", self._expired.to_list()),
        ):
            arrays[f"{name}_data"], arrays[f"{name}_ends"] = pack_strings(ids)
        meta = {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
            "ttl_s": self.ttl_s,
            "waiting_documents": len(documents),
            "waiting_feedback": len(feedback),
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
        max_bytes: int = 256 * 1024 * 1024,
    ) -> FeedbackStore:
        """Rebuild a store; the limits come from the current settings (they may have changed)."""
        meta = state.meta
        version = meta.get("version")
        if meta.get("kind") != STATE_KIND or version not in READABLE_VERSIONS:
            raise ValueError(
                f"feedback store state is {meta.get('kind')!r} version {version!r}; "
                f"expected {STATE_KIND!r} version {' or '.join(map(str, READABLE_VERSIONS))}"
            )
        store = cls(
            max_entries=max_entries, ttl_s=ttl_s, remember_ids=remember_ids, clock=clock, max_bytes=max_bytes
        )
        content = _read_v1(state) if version == 1 else _read_v2(state)
        for doc_id in content.learned_ids:
            store._learned.add(doc_id)
        for doc_id in content.expired_ids:
            store._expired.add(doc_id)
        for doc_id, document in content.documents:
            store._documents[doc_id] = document
            store._bytes += document.nbytes(doc_id)
        for doc_id, waiting in content.feedback:
            store._feedback[doc_id] = waiting
            store._bytes += waiting.nbytes(doc_id)
        # Limits may have shrunk since the checkpoint: evict the oldest beyond them.
        while len(store._documents) > max_entries:
            store._pop_document()
        while len(store._feedback) > max_entries:
            store._pop_feedback()
        store._evict_over_bytes()
        return store


@dataclass
class _Content:
    documents: list[tuple[str, WaitingDocument]]
    feedback: list[tuple[str, WaitingFeedback]]
    learned_ids: list[str]
    expired_ids: list[str]


def _features_at(a: dict[str, np.ndarray], sparse: bool, dim: int, cursor: dict[str, int]) -> Features:
    """The next dense or sparse row of the concatenated feature arrays (``cursor`` counts rows read)."""
    if sparse:
        i = cursor["sparse"]
        lo, hi = int(a["sparse_ptr"][i]), int(a["sparse_ptr"][i + 1])
        cursor["sparse"] += 1
        return SparseVector(a["sparse_indices"][lo:hi].copy(), a["sparse_values"][lo:hi].copy(), int(dim))
    i = cursor["dense"]
    lo, hi = int(a["dense_ptr"][i]), int(a["dense_ptr"][i + 1])
    cursor["dense"] += 1
    return a["dense_values"][lo:hi].copy()


def _grouped(strings: list[str], counts: np.ndarray) -> list[list[str]]:
    ends = np.cumsum(counts).tolist()
    starts = [0, *ends[:-1]] if ends else []
    return [strings[a:b] for a, b in zip(starts, ends, strict=True)]


def _read_v2(state: State) -> _Content:
    a = state.arrays

    def strings(name: str) -> list[str]:
        return unpack_strings(a[f"{name}_data"], a[f"{name}_ends"])

    cursor = {"dense": 0, "sparse": 0}
    predicted = _grouped(strings("doc_predicted"), a["doc_predicted_count"])
    documents = [
        (
            doc_id,
            WaitingDocument(_features_at(a, bool(sparse), int(dim), cursor), frozenset(labels), float(at)),
        )
        for doc_id, sparse, dim, labels, at in zip(
            strings("doc_ids"), a["doc_sparse"], a["doc_dims"], predicted, a["doc_stored_at"], strict=True
        )
    ]
    labels = _grouped(strings("feedback_labels"), a["feedback_labels_count"])
    feedback = [
        (doc_id, WaitingFeedback(tuple(names), float(at)))
        for doc_id, names, at in zip(strings("feedback_ids"), labels, a["feedback_stored_at"], strict=True)
    ]
    return _Content(documents, feedback, strings("learned_ids"), strings("expired_ids"))


def _read_v1(state: State) -> _Content:
    """Version 1: ids, labels and times as JSON lists in the metadata."""
    meta, a = state.meta, state.arrays
    docs = meta["documents"]
    cursor = {"dense": 0, "sparse": 0}
    documents = [
        (
            doc_id,
            WaitingDocument(
                _features_at(a, kind == "sparse", int(dim), cursor), frozenset(predicted), float(at)
            ),
        )
        for doc_id, at, predicted, kind, dim in zip(
            docs["ids"], docs["stored_at"], docs["predicted"], docs["kinds"], docs["dims"], strict=True
        )
    ]
    fb = meta["feedback"]
    feedback = [
        (doc_id, WaitingFeedback(tuple(labels), float(at)))
        for doc_id, labels, at in zip(fb["ids"], fb["labels"], fb["stored_at"], strict=True)
    ]
    return _Content(documents, feedback, list(meta["learned_ids"]), list(meta["expired_ids"]))
