"""Which input partitions a worker owns and how far it has processed each: the offset ledger.

The ledger knows nothing of Kafka: partitions are ``(topic, partition)`` pairs (kafka-python's
``TopicPartition`` is one), offsets are the *next* offset to read. The worker tells it what happened
(a checkpoint was restored, partitions were assigned or revoked, a batch was processed, a checkpoint
was written) and asks it what to do (where to seek, what to commit, what a checkpoint must claim).

Rules it keeps:

- A restored checkpoint's offset is applied when its partition is first assigned (a seek), and stays
  claimed by later checkpoints until something of that partition is processed.
- Commits cover only partitions assigned now: a revoked partition's new owner commits it.
- A partition that is revoked and comes straight back (an eager rebalance revokes everything first)
  resumes where this worker's model left it, not at the committed offset (a commit refused during the
  rebalance must not make the model learn those records twice).
- A partition processed here that no checkpoint covers yet must be checkpointed before its first
  commit, so no committed offset ever runs ahead of the learning a checkpoint can restore.

Rebalance callbacks run on kafka-python's IO thread while the main loop runs; every method takes the
ledger's lock, which is never held across a call into Kafka.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

TopicPart = tuple[str, int]


class SeekReason(StrEnum):
    """Why the ledger asks for a seek on assignment."""

    CHECKPOINT = "checkpoint"  # first assignment after a restore: the checkpoint's offset
    RETURNING = "returning"  # revoked and assigned straight back: where this worker left it


@dataclass(frozen=True, slots=True)
class Seek:
    """Position the consumer of ``partition`` at ``offset``."""

    partition: TopicPart
    offset: int
    reason: SeekReason


class OffsetLedger:
    """The partition and offset bookkeeping of one worker.

    Examples
    --------
    >>> ledger = OffsetLedger()
    >>> ledger.restore({("docs", 0): 10, ("docs", 1): 4})
    >>> [(s.partition, s.offset, s.reason.value) for s in ledger.assign([("docs", 0)])]
    [(('docs', 0), 10, 'checkpoint')]
    >>> ledger.processed({("docs", 0): 12})
    >>> ledger.commit_offsets()
    {('docs', 0): 12}
    >>> sorted(ledger.checkpoint_offsets().items())  # partition 1 is still claimed by the restore
    [(('docs', 0), 12), (('docs', 1), 4)]
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._assigned: set[TopicPart] = set()
        self._positions: dict[TopicPart, int] = {}  # processed here, by partitions assigned now
        self._restored: dict[TopicPart, int] = {}  # from the checkpoint, partition not assigned yet
        self._restored_unprocessed: dict[TopicPart, int] = {}  # assigned and sought, nothing processed
        self._just_revoked: dict[TopicPart, int] = {}  # positions of the latest revocation
        self._checkpointed: set[TopicPart] = set()  # partitions the newest checkpoint covers

    # -- what happened --------------------------------------------------------------------------------

    def restore(self, offsets: Mapping[TopicPart, int]) -> None:
        """A checkpoint with these next offsets was restored (before any assignment)."""
        with self._lock:
            self._restored = {_key(tp): int(offset) for tp, offset in offsets.items()}
            self._checkpointed = set(self._restored)

    def assign(self, partitions: Iterable[TopicPart]) -> list[Seek]:
        """Partitions were assigned; the seeks to make before reading them."""
        seeks: list[Seek] = []
        with self._lock:
            assigned = {_key(tp) for tp in partitions}
            self._assigned |= assigned
            returning, self._just_revoked = self._just_revoked, {}
            for tp in sorted(assigned):
                position = returning.get(tp)
                if position is not None:
                    self._positions[tp] = position
                    seeks.append(Seek(tp, position, SeekReason.RETURNING))
                    continue
                offset = self._restored.pop(tp, None)
                if offset is not None:
                    self._restored_unprocessed[tp] = offset
                    seeks.append(Seek(tp, offset, SeekReason.CHECKPOINT))
        return seeks

    def revoke(self, partitions: Iterable[TopicPart]) -> None:
        """Partitions were taken away; records of them not processed yet belong to their new owner."""
        with self._lock:
            for tp in (_key(p) for p in partitions):
                position = self._positions.pop(tp, None)
                if position is not None:
                    self._just_revoked[tp] = position
                offset = self._restored_unprocessed.pop(tp, None)
                if offset is not None:
                    # Restored but never read here: keep it for when the partition comes back.
                    self._restored[tp] = offset
                self._assigned.discard(tp)

    def processed(self, next_offsets: Mapping[TopicPart, int]) -> None:
        """A batch was processed and its outputs delivered; the next offset of each partition in it.

        Partitions revoked while the batch was assembled are ignored (their records were dropped).
        The offset is taken as given, not as a maximum: a partition whose log was reset (a recreated
        topic, a broker that lost its data) continues from where the consumer now reads.
        """
        with self._lock:
            for tp, offset in next_offsets.items():
                key = _key(tp)
                if key not in self._assigned:
                    continue
                self._positions[key] = int(offset)
                self._restored_unprocessed.pop(key, None)

    def moved(self, tp: TopicPart, offset: int) -> None:
        """The consumer of an assigned partition was moved to ``offset`` (its log was reset)."""
        self.processed({tp: offset})

    def checkpointed(self, covered: Iterable[TopicPart]) -> None:
        """A checkpoint claiming ``covered`` (what ``checkpoint_offsets`` returned) was written."""
        with self._lock:
            self._checkpointed = {_key(tp) for tp in covered}

    # -- what to do -----------------------------------------------------------------------------------

    def commit_offsets(self) -> dict[TopicPart, int]:
        """Next offsets to commit: the processed partitions that are assigned now."""
        with self._lock:
            return {tp: offset for tp, offset in self._positions.items() if tp in self._assigned}

    def checkpoint_offsets(self) -> dict[TopicPart, int]:
        """What a checkpoint written now must claim: processed positions over restored offsets."""
        with self._lock:
            return {**self._restored, **self._restored_unprocessed, **self._positions}

    def needs_checkpoint(self) -> bool:
        """Whether a processed partition is not covered by the newest checkpoint (checkpoint first)."""
        with self._lock:
            return not set(self._positions) <= self._checkpointed

    def position(self, tp: TopicPart) -> int | None:
        """The next offset this worker will process on ``tp`` (None: not read here yet)."""
        with self._lock:
            key = _key(tp)
            return self._positions.get(key, self._restored_unprocessed.get(key))

    @property
    def assigned(self) -> frozenset[TopicPart]:
        with self._lock:
            return frozenset(self._assigned)

    @property
    def has_positions(self) -> bool:
        with self._lock:
            return bool(self._positions)


def _key(tp: TopicPart) -> TopicPart:
    # kafka-python's TopicPartition is a named tuple equal to the plain pair; the ledger stores plain
    # pairs so that what it returns never depends on which kind it was given.
    return (str(tp[0]), int(tp[1]))
