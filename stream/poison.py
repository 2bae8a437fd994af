"""The last line of defence against a poison record: one whose processing crashes the worker.

Bad input is normally caught where it is decoded and dead-lettered. A record that gets past every
check and still kills the process (an exception nothing catches, a crash in native code, memory
exhaustion) would otherwise be read again after every restart: the partition is stuck. So before a
batch is processed the worker writes an *in-flight marker* (a small JSON file in the checkpoint
directory) naming the batch's records, and removes it once the batch's outputs are delivered. A marker
found at start means the previous process died with those records in flight:

1. the records it names are processed one at a time when they come again (the restart restores the
   checkpoint and reads them again), each under a marker of its own;
2. a record that was in flight alone when the worker died has crashed it: after ``max_crashes`` such
   crashes it is dead-lettered with reason ``poison`` instead of being processed.

A crash that had nothing to do with the records (an operator's kill -9, a node failure) costs one
batch processed record by record; a healthy record is dead-lettered only if the worker dies
``max_crashes`` times while it is being processed alone.

The marker is replaced atomically (write, then rename) and not fsync'ed: it must survive the death of
the process, which the page cache guarantees, not the loss of the machine (after which the checkpoint
is restored and the batch simply comes again).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from labelflow.stream.processor import InputRecord

logger = logging.getLogger(__name__)

MARKER_NAME = "inflight.json"
MARKER_VERSION = 1
# Names a byte string; a record whose value contains it makes the worker die while processing it.
# For fault-injection tests only (a genuinely crashing input cannot be relied upon to stay unfixed).
TEST_CRASH_ENV = "LABELFLOW_TESTING_CRASH_ON_BYTES"

RecordId = tuple[str, int, int]  # topic, partition, offset


class StepKind(StrEnum):
    BATCH = "batch"  # records not under suspicion, processed together
    ALONE = "alone"  # a record that was in flight when the worker died: processed by itself
    POISON = "poison"  # a record that crashed the worker when processed alone: dead-lettered


@dataclass(frozen=True, slots=True)
class Step:
    """Records to process (or dead-letter) together, and how often they crashed the worker before."""

    kind: StepKind
    records: tuple[InputRecord, ...]
    crashes: int = 0


def record_id(record: InputRecord) -> RecordId:
    return (record.topic, record.partition, record.offset)


class PoisonGuard:
    """Writes and reads the in-flight marker; splits batches around suspected and poison records.

    Parameters
    ----------
    directory
        Where the marker lives (the checkpoint directory); None turns the guard off (a stage that has
        no directory of its own, such as the stateless embed stage).
    max_crashes
        Crashes while processing a record alone before it is dead-lettered as poison; 0 turns the
        guard off.

    Examples
    --------
    >>> import tempfile
    >>> from labelflow.stream.processor import InputRecord
    >>> records = [InputRecord("docs", 0, offset, None, b"{}") for offset in range(3)]
    >>> directory = Path(tempfile.mkdtemp())
    >>> guard = PoisonGuard(directory, max_crashes=1)
    >>> guard.begin(Step(StepKind.BATCH, tuple(records)))   # ... and the process dies here
    >>> after_crash = PoisonGuard(directory, max_crashes=1)
    >>> after_crash.recover()
    >>> [(s.kind.value, [r.offset for r in s.records]) for s in after_crash.plan(records)]
    [('alone', [0]), ('alone', [1]), ('alone', [2])]
    >>> after_crash.begin(Step(StepKind.ALONE, (records[1],)))   # ... and it dies again on offset 1
    >>> third = PoisonGuard(directory, max_crashes=1)
    >>> third.recover()
    >>> [(s.kind.value, [r.offset for r in s.records]) for s in third.plan(records)]
    [('batch', [0]), ('poison', [1]), ('batch', [2])]
    """

    def __init__(self, directory: Path | None, max_crashes: int) -> None:
        self.enabled = directory is not None and max_crashes > 0
        self.path = (directory / MARKER_NAME) if directory is not None else None
        self.max_crashes = max_crashes
        self._suspects: dict[RecordId, int] = {}  # record -> crashes while it was in flight alone
        self._poison: dict[RecordId, int] = {}
        self._ranges: list[tuple[str, int, int, int]] = []  # suspected batches: topic, partition, first, last
        self._written = False

    # -- start ----------------------------------------------------------------------------------------

    def recover(self) -> None:
        """Read the marker the previous process left, if any: what it names becomes suspect or poison."""
        if not self.enabled or self.path is None or not self.path.exists():
            return
        try:
            marker = json.loads(self.path.read_text())
            if marker.get("version") != MARKER_VERSION:
                raise ValueError(f"marker version {marker.get('version')!r}")
            kind = StepKind(marker["kind"])
            crashes = int(marker["crashes"])
            records = [(str(t), int(p), int(o)) for t, p, o in marker["records"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Unreadable: nothing to learn from it, and it must not stop the worker.
            logger.warning("event=inflight_marker_unreadable path=%s error=%r", self.path, exc)
            return
        if kind is StepKind.ALONE:
            (rid,) = records
            if crashes + 1 >= self.max_crashes:
                self._poison[rid] = crashes + 1
            else:
                self._suspects[rid] = crashes + 1
            logger.warning(
                "event=crash_on_record topic=%s partition=%d offset=%d crashes=%d max_crashes=%d",
                *rid,
                crashes + 1,
                self.max_crashes,
            )
        else:
            for topic, partition, first, last in _ranges(records):
                self._ranges.append((topic, partition, first, last))
            logger.warning(
                "event=crash_in_batch records=%d (they are processed one by one when they come again)",
                len(records),
            )

    # -- per batch ------------------------------------------------------------------------------------

    def _kind(self, record: InputRecord) -> tuple[StepKind, int]:
        rid = record_id(record)
        if rid in self._poison:
            return StepKind.POISON, self._poison[rid]
        if rid in self._suspects:
            return StepKind.ALONE, self._suspects[rid]
        for topic, partition, first, last in self._ranges:
            if record.topic == topic and record.partition == partition and first <= record.offset <= last:
                return StepKind.ALONE, 0
        return StepKind.BATCH, 0

    def plan(self, records: Sequence[InputRecord]) -> Iterator[Step]:
        """The batch as steps, in record order: suspect records alone, poison ones to dead-letter."""
        if not self.enabled or not (self._poison or self._suspects or self._ranges):
            if records:
                yield Step(StepKind.BATCH, tuple(records))
            return
        run: list[InputRecord] = []
        for record in records:
            kind, crashes = self._kind(record)
            if kind is StepKind.BATCH:
                run.append(record)
                continue
            if run:
                yield Step(StepKind.BATCH, tuple(run))
                run = []
            yield Step(kind, (record,), crashes)
        if run:
            yield Step(StepKind.BATCH, tuple(run))

    def begin(self, step: Step) -> None:
        """Mark ``step``'s records in flight (before processing them)."""
        if not self.enabled or self.path is None or step.kind is StepKind.POISON:
            return
        marker = {
            "version": MARKER_VERSION,
            "kind": step.kind.value,
            "crashes": step.crashes,
            "records": [list(record_id(r)) for r in step.records]
            if step.kind is StepKind.ALONE
            else [
                [t, p, o]
                for t, p, first, last in _ranges(map(record_id, step.records))
                for o in (first, last)
            ],
            "pid": os.getpid(),
        }
        tmp = self.path.with_name(MARKER_NAME + ".tmp")
        tmp.write_text(json.dumps(marker))
        os.replace(tmp, self.path)
        self._written = True

    def done(self, step: Step) -> None:
        """``step``'s outputs are delivered: nothing is in flight any more."""
        for record in step.records:
            rid = record_id(record)
            self._suspects.pop(rid, None)
            self._poison.pop(rid, None)
        if self._written and self.path is not None:
            self.path.unlink(missing_ok=True)
            self._written = False


def _ranges(records: Iterator[RecordId] | Sequence[RecordId]) -> list[tuple[str, int, int, int]]:
    """First and last offset per partition (a batch holds a contiguous stretch of each)."""
    bounds: dict[tuple[str, int], tuple[int, int]] = {}
    for topic, partition, offset in records:
        first, last = bounds.get((topic, partition), (offset, offset))
        bounds[(topic, partition)] = (min(first, offset), max(last, offset))
    return [(t, p, first, last) for (t, p), (first, last) in sorted(bounds.items())]


def crash_trigger_from_env() -> bytes | None:
    """The crash trigger of fault-injection tests (``LABELFLOW_TESTING_CRASH_ON_BYTES``), if set."""
    value = os.environ.get(TEST_CRASH_ENV)
    return value.encode() if value else None
