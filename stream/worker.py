"""The long-running worker (``labelflow run``): Kafka in, predictions out, learning in between.

Loop: poll a micro-batch (bounded by size and time) from the documents and labels topics → process it
(decode, embed, predict, learn, join feedback; see ``processor``) → produce every output and flush →
checkpoint when due → commit the consumed offsets. Predictions are flushed before offsets are committed
(output at least once); the checkpoint holds the model together with the next offsets of both input
topics, and a restarted worker seeks there, so each labelled document changes the model once.

Batches are assembled in record-timestamp order across partitions and topics (``ordered_batches``), so
the model sees documents and feedback in the order they were produced, whatever the fetch timing: a
replay after a restore learns in the same order as the original run.

Rebalances: partitions revoked mid-poll are dropped from the batch being assembled (their new owner
reads them from the committed offset); restored checkpoint offsets are applied when a partition is
first assigned. A partition that is not yet covered by a checkpoint is checkpointed before its first
commit, so no committed offset ever runs ahead of the learning a checkpoint can restore.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from labelflow.operators.state import State
from labelflow.stream.checkpoint import Checkpoint, CheckpointStore, IncompatibleCheckpointError
from labelflow.stream.config import Settings
from labelflow.stream.embed_stage import EmbedProcessor
from labelflow.stream.feedback_store import FeedbackStore
from labelflow.stream.kafka_io import (
    build_consumer,
    build_producer,
    default_client_id,
    ensure_topics,
    worker_topics,
)
from labelflow.stream.metrics import WorkerMetrics
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.ordered_batches import OrderedBatcher
from labelflow.stream.processor import BatchOutcome, BatchProcessor, InputRecord, RuntimeCounters
from labelflow.stream.quality import QualityTracker

logger = logging.getLogger(__name__)

RUNTIME_STATE_KIND = "labelflow.worker_runtime"
RUNTIME_STATE_VERSION = 1

# How long an idle poll waits before the loop looks at its stop flag and housekeeping again.
_IDLE_POLL_MS = 250


class ProduceError(RuntimeError):
    """Outputs of a batch could not be delivered; its offsets are not committed."""


@dataclass(frozen=True)
class WorkerProgress:
    """A snapshot of a worker's progress (for the demo's live display and for tests)."""

    started_at: float
    batches: int
    documents_in: int
    feedback_in: int
    predictions_out: int
    learned: int
    dead_letters: int
    micro_f1_window: float
    micro_f1_cumulative: float
    labels: int
    clusters: int
    partition_version: int
    drift_events: int
    waiting_documents: int
    checkpoints: int
    assigned: tuple[tuple[str, int], ...]
    counters: dict[str, Any]


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.worker._on_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.worker._on_assigned(set(assigned))


class Worker:
    """A labelflow worker: one model, one consumer in ``settings.group_id``, one checkpoint directory.

    Parameters
    ----------
    settings
        Validated settings (``load_settings``).
    runtime
        The model and embedder to run; default: built from ``settings.model`` by the registries.
    worker_id
        Names the worker in logs and dead letters; default ``settings.client_id`` or host-pid.
    handle_signals
        Install SIGTERM/SIGINT handlers that stop the worker gracefully (main thread only).
    on_batch
        Called with a ``WorkerProgress`` after every batch (the demo's live display).

    Examples
    --------
    >>> from labelflow.stream.config import Settings
    >>> worker = Worker(Settings(brokers="127.0.0.1:9092"), handle_signals=False)  # doctest: +SKIP
    >>> threading.Thread(target=worker.run).start(); ...; worker.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: ModelRuntime | None = None,
        worker_id: str | None = None,
        handle_signals: bool = True,
        on_batch: Callable[[WorkerProgress], None] | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or settings.client_id or default_client_id("labelflow-worker")
        self.handle_signals = handle_signals
        self.on_batch = on_batch
        self._runtime = runtime
        self.metrics = WorkerMetrics()
        self.metrics_port: int | None = None
        self.counters = RuntimeCounters()
        self.quality = QualityTracker(settings.metrics.quality_window)
        self.store = FeedbackStore(
            settings.feedback.max_entries, settings.feedback.ttl_s, settings.feedback.remember_ids
        )
        self.checkpoints = CheckpointStore(settings.checkpoint.dir, keep=settings.checkpoint.keep)
        self._stop = threading.Event()
        # Rebalance callbacks run on kafka-python's IO thread; they and the main loop share the
        # partition bookkeeping below under this lock (never held across a blocking Kafka call).
        self._lock = threading.RLock()
        self.ready = threading.Event()  # set once subscribed (tests and the demo wait on it)
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._processor: BatchProcessor | EmbedProcessor | None = None
        self._batcher: OrderedBatcher | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._restore_offsets: dict[TopicPartition, int] = {}
        self._restored_unprocessed: dict[TopicPartition, int] = {}
        self._checkpointed: set[TopicPartition] = set()
        self._just_revoked: dict[TopicPartition, int] = {}
        self._assigned: set[TopicPartition] = set()
        self._dirty = False
        self._checkpoint_requested = False
        self._last_checkpoint = time.monotonic()
        self._checkpoint_count = 0
        self._batches = 0
        self._started_at = time.time()
        self._progress: WorkerProgress | None = None

    # -- public ---------------------------------------------------------------------------------------

    @property
    def runtime(self) -> ModelRuntime:
        if self._runtime is None:
            raise RuntimeError("the worker has not built its model yet")
        return self._runtime

    @property
    def learns(self) -> bool:
        return self.settings.role in ("all", "learn")

    def stop(self) -> None:
        """Ask the worker to finish its batch, flush, checkpoint, commit and leave the group."""
        self._stop.set()

    def progress(self) -> WorkerProgress:
        return self._progress or self._snapshot()

    def run(self) -> None:
        """Run until ``stop()`` or SIGTERM/SIGINT; raises on fatal errors (after closing the clients)."""
        previous = self._install_signal_handlers()
        s = self.settings
        s.log_summary(logger)
        ok = False
        try:
            if self.learns:
                self.checkpoints.lock()
            if s.create_topics:
                ensure_topics(s, worker_topics(s))
            if self._runtime is None:
                self._runtime = ModelRuntime.from_settings(s.model)
            if self.learns:
                self._restore()
                self._processor = BatchProcessor(
                    s, self._runtime, self.store, self.counters, self.quality, self.worker_id
                )
            else:
                self._processor = EmbedProcessor(s, self._runtime, self.counters, self.worker_id)
            if s.metrics.port >= 0:
                self.metrics_port = self.metrics.serve(s.metrics.host, s.metrics.port)
                logger.info(
                    "event=metrics_serving url=http://%s:%d/metrics", s.metrics.host, self.metrics_port
                )
            self._producer = build_producer(s, client_id=self.worker_id)
            self._consumer = build_consumer(s, client_id=self.worker_id)
            topics = [s.input_documents_topic, s.topics.labels] if self.learns else [s.input_documents_topic]
            self._check_copartitioned()
            self._batcher = OrderedBatcher(
                self._consumer,
                # Feedback far ahead of its documents waits here in a backlog; 20 batches (at least
                # 10,000 records, tens of MB) is room for that, and a bound against a runaway topic.
                max_buffered=max(10_000, 20 * s.batch.size),
                max_idle_s=s.batch.order_wait_ms / 1000.0,
            )
            self._consumer.subscribe(topics, listener=_Rebalance(self))
            self.metrics.up.set(1)
            self._publish_progress()
            self.ready.set()
            logger.info(
                "event=worker_started worker=%s group=%s topics=%s role=%s",
                self.worker_id,
                s.group_id,
                ",".join(topics),
                s.role,
            )
            self._loop()
            ok = True
        finally:
            self._shutdown(ok)
            self._restore_signal_handlers(previous)

    # -- startup --------------------------------------------------------------------------------------

    def _restore(self) -> None:
        runtime = self.runtime
        checkpoint = self.checkpoints.latest(identity=runtime.identity)
        if checkpoint is None:
            logger.info(
                "event=no_checkpoint dir=%s (a new model; reading starts at the group's committed offsets, "
                "or at the beginning for a new group)",
                self.checkpoints.directory,
            )
            return
        try:
            runtime.restore(checkpoint.model)
            self._load_runtime_state(checkpoint.runtime)
        except (ValueError, KeyError, TypeError) as exc:
            raise IncompatibleCheckpointError(
                f"checkpoint {checkpoint.path} cannot be restored into this worker: {type(exc).__name__}: {exc}"
            ) from exc
        self._restore_offsets = {
            TopicPartition(topic, partition): offset
            for topic, parts in checkpoint.offsets.items()
            for partition, offset in parts.items()
        }
        self._checkpointed = set(self._restore_offsets)
        self.metrics.checkpoint_written(checkpoint.created_at, count=False)
        self.metrics.sync(self.counters.as_dict())
        logger.info(
            "event=checkpoint_restored path=%s seq=%d learned=%d labels=%d offsets=%s",
            checkpoint.path,
            checkpoint.seq,
            self.counters.learned_total,
            len(runtime.labels),
            checkpoint.offsets,
        )

    def _runtime_state(self) -> State:
        state = State(
            meta={
                "kind": RUNTIME_STATE_KIND,
                "version": RUNTIME_STATE_VERSION,
                "counters": self.counters.as_dict(),
            }
        )
        state.attach("feedback", self.store.state())
        state.attach("quality", self.quality.state())
        return state

    def _load_runtime_state(self, state: State) -> None:
        if state.meta.get("kind") != RUNTIME_STATE_KIND or state.meta.get("version") != RUNTIME_STATE_VERSION:
            raise IncompatibleCheckpointError(
                f"runtime state {state.meta.get('kind')!r} version {state.meta.get('version')!r} is not "
                f"{RUNTIME_STATE_KIND!r} version {RUNTIME_STATE_VERSION}"
            )
        f = self.settings.feedback
        self.counters = RuntimeCounters.from_dict(state.meta["counters"])
        self.store = FeedbackStore.from_state(
            state.detach("feedback"), max_entries=f.max_entries, ttl_s=f.ttl_s, remember_ids=f.remember_ids
        )
        self.quality = QualityTracker.from_state(
            state.detach("quality"), self.settings.metrics.quality_window
        )

    def _check_copartitioned(self) -> None:
        if not self.learns:
            return
        assert self._consumer is not None
        docs = self._consumer.partitions_for_topic(self.settings.input_documents_topic) or set()
        labels = self._consumer.partitions_for_topic(self.settings.topics.labels) or set()
        if docs and labels and len(docs) != len(labels):
            logger.warning(
                "event=topics_not_copartitioned documents=%d labels=%d (feedback may reach a worker that never "
                "saw its document and be counted unmatched; give both topics the same partition count)",
                len(docs),
                len(labels),
            )

    # -- signals --------------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return {}

        def _handler(signum: int, frame: FrameType | None) -> None:
            if self._stop.is_set():
                logger.warning("event=stop_already_requested signal=%s", signal.Signals(signum).name)
            else:
                logger.info("event=stop_requested signal=%s", signal.Signals(signum).name)
            self._stop.set()

        return {sig: signal.signal(sig, _handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    # -- the loop -------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            records = self._poll_batch()
            if self._checkpoint_requested:
                # After a rebalance: the checkpoint no longer claims the partitions we gave away.
                self._checkpoint_requested = False
                self._checkpoint("rebalance")
            if records:
                self._handle(records)
            elif self._checkpoint_due():
                self._checkpoint("interval")
            self._update_gauges()

    def _poll_batch(self) -> list[Any]:
        assert self._batcher is not None
        batch = self.settings.batch
        return self._batcher.next_batch(
            batch.size, batch.max_wait_ms / 1000.0, self._stop, idle_poll_ms=_IDLE_POLL_MS
        )

    def _handle(self, records: list[Any]) -> None:
        assert self._processor is not None and self._producer is not None
        inputs = [InputRecord(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp) for r in records]
        outcome = self._processor.process(inputs)
        self._produce(outcome)
        with self._lock:
            for record in records:
                tp = TopicPartition(record.topic, record.partition)
                self._positions[tp] = max(self._positions.get(tp, 0), record.offset + 1)
                self._restored_unprocessed.pop(tp, None)
        self._dirty = True
        if self.learns and (self._checkpoint_due() or not set(self._positions) <= self._checkpointed):
            self._checkpoint("interval" if self._checkpoint_due() else "new_partition")
        self._commit()
        self._batches += 1
        self._after_batch(len(records), outcome)

    def _produce(self, outcome: BatchOutcome) -> None:
        producer = self._producer
        assert producer is not None
        started = time.perf_counter()
        futures = [
            producer.send(m.topic, key=m.key, value=m.value, headers=list(m.headers) or None)
            for m in outcome.messages
        ]
        producer.flush()
        failed = [f for f in futures if f.failed()]
        if failed:
            raise ProduceError(
                f"{len(failed)} of {len(futures)} output messages were not delivered: {failed[0].exception!r}"
            )
        outcome.stage_seconds["produce"] += time.perf_counter() - started

    def _commit(self) -> None:
        consumer = self._consumer
        if consumer is None or not self._positions:
            return
        started = time.perf_counter()
        with self._lock:
            offsets = {
                tp: OffsetAndMetadata(offset, "", -1)
                for tp, offset in self._positions.items()
                if tp in self._assigned
            }
        if not offsets:
            return
        try:
            consumer.commit(offsets)
        except KafkaError as exc:  # CommitFailedError, RebalanceInProgressError, ...: at least once holds
            self.metrics.commit_failures.inc()
            logger.warning(
                "event=commit_failed error=%r (a rebalance is under way; records will be re-delivered)", exc
            )
        self.metrics.stage_seconds.labels(stage="commit").observe(time.perf_counter() - started)

    # -- checkpoints ----------------------------------------------------------------------------------

    def _checkpoint_due(self) -> bool:
        return (
            self.learns
            and self._dirty
            and time.monotonic() - self._last_checkpoint >= self.settings.checkpoint.interval_s
        )

    def _checkpoint(self, reason: str) -> None:
        if not self.learns or self._runtime is None:
            return
        started = time.perf_counter()
        offsets: dict[str, dict[int, int]] = {}
        with self._lock:
            merged = {**self._restore_offsets, **self._restored_unprocessed, **self._positions}
            covered = set(merged)
        for tp, offset in merged.items():
            offsets.setdefault(tp.topic, {})[tp.partition] = offset
        checkpoint = Checkpoint(
            model=self.runtime.state(),
            runtime=self._runtime_state(),
            offsets=offsets,
            identity=self.runtime.identity,
        )
        path = self.checkpoints.save(checkpoint)
        self._checkpointed = covered
        self._dirty = False
        self._last_checkpoint = time.monotonic()
        self._checkpoint_count += 1
        seconds = time.perf_counter() - started
        self.metrics.checkpoint_written(checkpoint.created_at)
        self.metrics.stage_seconds.labels(stage="checkpoint").observe(seconds)
        logger.info(
            "event=checkpoint_written reason=%s path=%s seq=%d learned=%d seconds=%.3f",
            reason,
            path,
            checkpoint.seq,
            self.counters.learned_total,
            seconds,
        )

    # -- rebalances -----------------------------------------------------------------------------------

    # kafka-python runs these callbacks on its IO thread while the main thread is blocked in poll() or
    # close(); they must not block (no commits, no checkpoint writes), so they only update bookkeeping
    # and leave the checkpoint to the main loop.

    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        with self._lock:
            self._revoke(revoked)

    def _revoke(self, revoked: set[TopicPartition]) -> None:
        logger.info("event=partitions_revoked partitions=%s", _tps(revoked))
        if self._batcher is not None:
            # Records of partitions we lost were not processed; their new owner reads them.
            self._batcher.drop(revoked)
        for tp in revoked:
            position = self._positions.pop(tp, None)
            if position is not None:
                self._just_revoked[tp] = position
            offset = self._restored_unprocessed.pop(tp, None)
            if offset is not None:
                # Restored but never read here: keep it for when the partition comes back.
                self._restore_offsets[tp] = offset
        self._assigned -= revoked
        if self._dirty:
            self._checkpoint_requested = True
        self.metrics.assigned_partitions.set(len(self._assigned))

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        with self._lock:
            self._assign(assigned)

    def _assign(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        self._assigned |= assigned
        # Partitions that come straight back (an eager rebalance revokes everything first) resume where
        # this worker's model left them: a commit refused during the rebalance must not make the model
        # learn those records twice.
        returning, self._just_revoked = self._just_revoked, {}
        for tp in assigned:
            position = returning.get(tp)
            if position is not None:
                consumer.seek(tp, position)
                self._positions[tp] = position
                continue
            offset = self._restore_offsets.pop(tp, None)
            if offset is not None:
                consumer.seek(tp, offset)
                self._restored_unprocessed[tp] = offset
                logger.info(
                    "event=seek_to_checkpoint topic=%s partition=%d offset=%d", tp.topic, tp.partition, offset
                )
        self.metrics.rebalances.inc()
        self.metrics.assigned_partitions.set(len(self._assigned))
        logger.info("event=partitions_assigned partitions=%s", _tps(assigned))

    # -- metrics and progress -------------------------------------------------------------------------

    def _after_batch(self, size: int, outcome: BatchOutcome) -> None:
        m = self.metrics
        m.batch_size.observe(size)
        m.observe_stages(outcome.stage_seconds)
        for latency in outcome.latencies_s:
            m.end_to_end.observe(latency)
        m.sync(self.counters.as_dict())
        m.last_batch.set(time.time())
        if self.learns:
            q = self.quality
            m.micro_f1_window.set(q.micro_f1_window)
            m.micro_f1_cumulative.set(q.micro_f1_cumulative)
            m.subset_accuracy_window.set(q.subset_accuracy_window)
            m.quality_window_size.set(q.size)
            runtime = self.runtime
            m.labels.set(len(runtime.labels))
            m.clusters.set(runtime.n_clusters)
            m.partition_version.set(runtime.partition_version)
            m.waiting.labels(kind="documents").set(self.store.waiting_documents)
            m.waiting.labels(kind="feedback").set(self.store.waiting_feedback)
        if logger.isEnabledFor(logging.DEBUG) or self._batches % 50 == 1:
            logger.info(
                "event=batch_done batch=%d records=%d predictions=%d learned=%d dead_letters=%d seconds=%s",
                self._batches,
                size,
                outcome.predictions,
                outcome.learned,
                sum(self.counters.group("dead_letters").values()),
                ",".join(f"{k}:{v:.4f}" for k, v in sorted(outcome.stage_seconds.items())),
            )
        self._publish_progress()

    def _update_gauges(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        lag: dict[str, int] = {}
        for tp in self._assigned_copy():
            highwater = consumer.highwater(tp)
            position = self._positions.get(tp)
            if highwater is not None and position is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - position)
        for topic, value in lag.items():
            self.metrics.consumer_lag.labels(topic=topic).set(value)

    def _snapshot(self) -> WorkerProgress:
        counters = self.counters.as_dict()
        runtime = self._runtime
        learns = self.learns and runtime is not None
        return WorkerProgress(
            started_at=self._started_at,
            batches=self._batches,
            documents_in=counters["documents_in"],
            feedback_in=counters["feedback_in"],
            predictions_out=counters["predictions_out"],
            learned=self.counters.learned_total,
            dead_letters=sum(counters["dead_letters"].values()),
            micro_f1_window=self.quality.micro_f1_window,
            micro_f1_cumulative=self.quality.micro_f1_cumulative,
            labels=len(runtime.labels) if learns else 0,
            clusters=runtime.n_clusters if learns else 0,
            partition_version=runtime.partition_version if learns else 0,
            drift_events=sum(counters["drift_events"].values()),
            waiting_documents=self.store.waiting_documents,
            checkpoints=self._checkpoint_count,
            assigned=tuple(sorted((tp.topic, tp.partition) for tp in self._assigned_copy())),
            counters=counters,
        )

    def _assigned_copy(self) -> set[TopicPartition]:
        with self._lock:
            return set(self._assigned)

    def _publish_progress(self) -> None:
        self._progress = self._snapshot()
        if self.on_batch is not None:
            self.on_batch(self._progress)

    # -- shutdown -------------------------------------------------------------------------------------

    def _shutdown(self, ok: bool) -> None:
        try:
            if ok:
                # The loop only stops between batches: everything consumed has been processed and flushed.
                if self._producer is not None:
                    self._producer.flush()
                if (
                    self.learns
                    and self._runtime is not None
                    and (self._dirty or self._checkpoint_count == 0 and self._positions)
                ):
                    self._checkpoint("shutdown")
                self._commit()
        except (KafkaError, OSError) as exc:
            logger.error("event=shutdown_incomplete error=%r", exc)
        finally:
            if self._consumer is not None:
                try:
                    self._consumer.close(autocommit=False)  # leaves the group: partitions move at once
                except KafkaError as exc:
                    logger.warning("event=consumer_close_failed error=%r", exc)
            if self._producer is not None:
                self._producer.close(timeout=5)
            self.metrics.up.set(0)
            self.metrics.close()
            self.checkpoints.unlock()
            self._publish_progress()
            logger.info(
                "event=worker_stopped worker=%s clean=%s documents=%d predictions=%d learned=%d",
                self.worker_id,
                ok,
                self.counters.get("documents_in"),
                self.counters.get("predictions_out"),
                self.counters.learned_total,
            )


def _tps(tps: set[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps))
