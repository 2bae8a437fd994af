"""The two things a worker can be, behind one interface: the learn stage and the embed stage.

A ``Stage`` says which topics it reads, turns a batch of records into the messages to publish, and
owns whatever must survive a restart: the learn stage holds the model and the runtime state and
checkpoints them with the offsets; the embed stage is stateless (a restart re-reads from the committed
offsets). The worker loop (``worker``) drives either without asking which one it runs.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from labelflow.stream.checkpoint import (
    Checkpoint,
    CheckpointStore,
    IncompatibleCheckpointError,
    NoReadableCheckpointError,
)
from labelflow.stream.config import Settings
from labelflow.stream.directory_lock import DirectoryInUseError, DirectoryLock
from labelflow.stream.embed_stage import EmbedProcessor
from labelflow.stream.metrics import WorkerMetrics
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.offset_ledger import TopicPart
from labelflow.stream.processor import BatchOutcome, BatchProcessor, InputRecord, dead_letter_message
from labelflow.stream.runtime_state import RuntimeState

logger = logging.getLogger(__name__)
# Characters a client id may hold that a directory name should not (path separators and the like).
_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """What the model looks like, for gauges and progress (zeros for a stage without a model)."""

    labels: int = 0
    clusters: int = 0
    partition_version: int = 0


class Stage(Protocol):
    """One role of a worker: what it reads, how it processes a batch, what it keeps across restarts."""

    @property
    def topics(self) -> tuple[str, ...]:
        """Input topics, documents first."""
        ...

    @property
    def state(self) -> RuntimeState:
        """Counters (and for the learn stage the feedback store and quality tracker)."""
        ...

    def open(self) -> Checkpoint | None:
        """Claim and restore what the stage keeps; the checkpoint restored (None: nothing restored)."""
        ...

    def warm_up(self) -> None:
        """Load what the first batch would otherwise load (compiled code) before reading anything."""
        ...

    def process(self, records: Sequence[InputRecord]) -> BatchOutcome: ...

    def reject(self, record: InputRecord, error: Exception) -> BatchOutcome:
        """Count ``record`` as read and dead-letter it without processing it (a poison record)."""
        ...

    @property
    def inflight_dir(self) -> Path | None:
        """Where the in-flight marker of the poison guard lives (None: no guard)."""
        ...

    def checkpoint_due(self, since_last_s: float) -> bool:
        """Whether a checkpoint is due ``since_last_s`` seconds after the previous one (if it changed)."""
        ...

    def checkpoint(self, offsets: Mapping[TopicPart, int]) -> Checkpoint | None:
        """Write what the stage keeps with ``offsets``; None when it keeps nothing."""
        ...

    def publish(self, metrics: WorkerMetrics) -> None:
        """Set the stage's own gauges after a batch."""
        ...

    def summary(self) -> ModelSummary: ...

    def close(self) -> None:
        """Release what ``open`` claimed."""
        ...


class LearnStage:
    """Predicts, learns and joins feedback (roles ``all`` and ``learn``); checkpoints model and state.

    Parameters
    ----------
    settings
        Topics, limits, checkpoint directory and interval.
    runtime
        The model and embedder; replaced by the checkpoint's model on ``open``.
    worker_id
        Written into dead letters.
    """

    def __init__(self, settings: Settings, runtime: ModelRuntime, worker_id: str) -> None:
        self.settings = settings
        self.runtime = runtime
        self.worker_id = worker_id
        self.checkpoints = CheckpointStore(settings.checkpoint.dir, keep=settings.checkpoint.keep)
        self._state = RuntimeState.new(settings)
        self._processor = self._make_processor()

    def _make_processor(self) -> BatchProcessor:
        s = self._state
        return BatchProcessor(self.settings, self.runtime, s.store, s.counters, s.quality, self.worker_id)

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.settings.input_documents_topic, self.settings.topics.labels)

    @property
    def state(self) -> RuntimeState:
        return self._state

    def open(self) -> Checkpoint | None:
        self.checkpoints.lock()
        checkpoint = self.checkpoints.latest(identity=self.runtime.identity)
        if checkpoint is None and self.checkpoints.unreadable:
            self._no_readable_checkpoint()
        if checkpoint is None:
            logger.info(
                "event=no_checkpoint dir=%s (a new model; reading starts at the group's committed offsets, "
                "or at the beginning for a new group)",
                self.checkpoints.directory,
            )
            return None
        try:
            self.runtime.restore(checkpoint.model)
            self._state = RuntimeState.from_state(checkpoint.runtime, self.settings)
        except (ValueError, KeyError, TypeError) as exc:
            raise IncompatibleCheckpointError(
                f"checkpoint {checkpoint.path} cannot be restored into this worker: {type(exc).__name__}: {exc}"
            ) from exc
        self._processor = self._make_processor()
        logger.info(
            "event=checkpoint_restored path=%s seq=%d learned=%d labels=%d offsets=%s",
            checkpoint.path,
            checkpoint.seq,
            self._state.counters.learned_total,
            len(self.runtime.labels),
            checkpoint.offsets,
        )
        return checkpoint

    def warm_up(self) -> None:
        self.runtime.warm_up(self.settings.model.warm_up_documents)

    def _no_readable_checkpoint(self) -> None:
        """Every checkpoint is damaged: refuse to start, or (when told to) start a new model."""
        unreadable = self.checkpoints.unreadable
        listing = "\n  ".join(f"{path.name}: {why}" for path, why in sorted(unreadable.items()))
        if self.settings.checkpoint.on_unreadable == "refuse":
            raise NoReadableCheckpointError(
                f"none of the {len(unreadable)} checkpoint(s) in {self.checkpoints.directory} can be read:\n  "
                f"{listing}\nThe worker will not start a new model over them (the learned model would be "
                "lost). Restore a checkpoint from a backup, or start a new model with `labelflow run "
                "--start-new-model` (checkpoint.on_unreadable=new_model); the damaged checkpoints are kept."
            )
        logger.warning(
            "event=new_model_over_unreadable_checkpoints dir=%s count=%d (checkpoint.on_unreadable=new_model; "
            "the damaged checkpoints are kept on disk)",
            self.checkpoints.directory,
            len(unreadable),
        )

    def process(self, records: Sequence[InputRecord]) -> BatchOutcome:
        return self._processor.process(records)

    def reject(self, record: InputRecord, error: Exception) -> BatchOutcome:
        return reject_record(self.settings, self._state, record, error, self.worker_id)

    @property
    def inflight_dir(self) -> Path | None:
        return self.checkpoints.directory

    def checkpoint_due(self, since_last_s: float) -> bool:
        return since_last_s >= self.settings.checkpoint.interval_s

    def checkpoint(self, offsets: Mapping[TopicPart, int]) -> Checkpoint:
        by_topic: dict[str, dict[int, int]] = {}
        for (topic, partition), offset in sorted(offsets.items()):
            by_topic.setdefault(topic, {})[partition] = offset
        checkpoint = Checkpoint(
            model=self.runtime.state(),
            runtime=self._state.state(),
            offsets=by_topic,
            identity=self.runtime.identity,
        )
        self.checkpoints.save(checkpoint)
        return checkpoint

    def publish(self, metrics: WorkerMetrics) -> None:
        q, store = self._state.quality, self._state.store
        metrics.micro_f1_window.set(q.micro_f1_window)
        metrics.micro_f1_cumulative.set(q.micro_f1_cumulative)
        metrics.subset_accuracy_window.set(q.subset_accuracy_window)
        metrics.quality_window_size.set(q.size)
        summary = self.summary()
        metrics.labels.set(summary.labels)
        metrics.clusters.set(summary.clusters)
        metrics.partition_version.set(summary.partition_version)
        metrics.waiting.labels(kind="documents").set(store.waiting_documents)
        metrics.waiting.labels(kind="feedback").set(store.waiting_feedback)
        metrics.waiting_bytes.set(store.nbytes)

    def summary(self) -> ModelSummary:
        runtime = self.runtime
        return ModelSummary(runtime.n_labels, runtime.n_clusters, runtime.partition_version)

    def close(self) -> None:
        self.checkpoints.unlock()


class EmbedStage:
    """Embeds documents and re-publishes them with features (role ``embed``); keeps no model state.

    It keeps one thing across restarts: the poison guard's in-flight marker, so that a document that
    crashes the embedder (native code, memory) is dead-lettered after ``poison_after_crashes`` restarts
    instead of stopping the stage for good. The marker lives in
    ``checkpoint.dir/embed-inflight/<client id or host name>``: a name that stays the same when the
    process restarts (a pod's name, a container's host name) and a directory that survives the
    restart (Kubernetes: an ``emptyDir``). Where it cannot be created (a read-only filesystem) or
    another process holds it, the stage runs without the guard and says so in its log.
    """

    def __init__(self, settings: Settings, runtime: ModelRuntime, worker_id: str) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self._state = RuntimeState.new(settings)
        self._processor = EmbedProcessor(settings, runtime, self._state.counters, worker_id)
        self._inflight_lock: DirectoryLock | None = None

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.settings.input_documents_topic,)

    @property
    def state(self) -> RuntimeState:
        return self._state

    def open(self) -> None:
        if self.settings.poison_after_crashes > 0:
            self._inflight_lock = self._claim_inflight_dir()
        return None

    def warm_up(self) -> None:
        return None  # no learner: nothing compiled to load

    def _claim_inflight_dir(self) -> DirectoryLock | None:
        owner = self.settings.client_id or socket.gethostname()
        directory = Path(self.settings.checkpoint.dir) / "embed-inflight" / _UNSAFE_IN_NAMES.sub("_", owner)
        lock = DirectoryLock(directory)
        try:
            lock.acquire()
        except (OSError, DirectoryInUseError) as exc:
            logger.warning("event=poison_guard_off role=embed reason=%r", str(exc))
            return None
        logger.info("event=poison_guard_on role=embed marker_dir=%s", directory)
        return lock

    def process(self, records: Sequence[InputRecord]) -> BatchOutcome:
        return self._processor.process(records)

    def reject(self, record: InputRecord, error: Exception) -> BatchOutcome:
        return reject_record(self.settings, self._state, record, error, self.worker_id)

    @property
    def inflight_dir(self) -> Path | None:
        return None if self._inflight_lock is None else self._inflight_lock.directory

    def checkpoint_due(self, since_last_s: float) -> bool:
        return False

    def checkpoint(self, offsets: Mapping[TopicPart, int]) -> None:
        return None

    def publish(self, metrics: WorkerMetrics) -> None:
        return None

    def summary(self) -> ModelSummary:
        return ModelSummary()

    def close(self) -> None:
        if self._inflight_lock is not None:
            self._inflight_lock.release()
            self._inflight_lock = None


def reject_record(
    settings: Settings, state: RuntimeState, record: InputRecord, error: Exception, worker_id: str
) -> BatchOutcome:
    """A batch outcome that only dead-letters ``record`` (counted as read, like every input record)."""
    state.counters.inc("feedback_in" if record.topic == settings.topics.labels else "documents_in")
    out = BatchOutcome()
    out.messages.append(dead_letter_message(settings, state.counters, record, error, worker_id))
    return out


def make_stage(settings: Settings, runtime: ModelRuntime, worker_id: str) -> Stage:
    """The stage of ``settings.role``: ``embed`` embeds, ``all`` and ``learn`` predict and learn."""
    if settings.role == "embed":
        return EmbedStage(settings, runtime, worker_id)
    return LearnStage(settings, runtime, worker_id)
