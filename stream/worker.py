"""The long-running worker (``labelflow run``): Kafka in, predictions out, learning in between.

Loop: poll a micro-batch (bounded by size and time) from the documents and labels topics → process it
(decode, embed, predict, learn, join feedback; see ``processor``) → produce every output and flush →
checkpoint when due → commit the consumed offsets. Predictions are flushed before offsets are committed
(output at least once); the checkpoint holds the model together with the next offsets of both input
topics, and a restarted worker seeks there, so each labelled document changes the model once.

Batches are assembled in record-timestamp order across partitions and topics (``ordered_batches``),
within a bounded wait for lagging partitions; on one partition per topic a replay after a restore learns
in the same order as the original run, and ends with the same model.

Health: every broker answer or failure goes to ``BrokerHealth`` (liveness and readiness gauges); lag
comes from end offsets asked every second; a stop is bounded by ``health.shutdown_timeout_s``; outputs
are delivered through outages (``delivery``); a record that crashed the worker is dead-lettered after
restarts (``poison``).

Rebalances: partitions revoked mid-poll are dropped from the batch being assembled (their new owner
reads them from the committed offset); restored checkpoint offsets are applied when a partition is
first assigned. A partition that is not yet covered by a checkpoint is checkpointed before its first
commit, so no committed offset ever runs ahead of the learning a checkpoint can restore.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from labelflow.stream.checkpoint import Checkpoint
from labelflow.stream.config import Settings
from labelflow.stream.delivery import OutputDelivery, ProduceError
from labelflow.stream.health import BrokerHealth
from labelflow.stream.kafka_io import (
    build_consumer,
    build_producer,
    default_client_id,
    ensure_topics,
    worker_topics,
)
from labelflow.stream.messages import MessageError, Reason
from labelflow.stream.metrics import WorkerMetrics
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.offset_ledger import OffsetLedger, TopicPart
from labelflow.stream.ordered_batches import OrderedBatcher
from labelflow.stream.outputs import OutputMessage
from labelflow.stream.poison import PoisonGuard, Step, StepKind, crash_trigger_from_env
from labelflow.stream.processor import BatchOutcome, InputRecord, RuntimeCounters
from labelflow.stream.runtime_state import RuntimeState
from labelflow.stream.stages import ModelSummary, Stage, make_stage

logger = logging.getLogger(__name__)

# How long an idle poll waits before the loop looks at its stop flag and housekeeping again.
_IDLE_POLL_MS = 250
# End offsets (lag, and whether the broker answers) are asked for once a second; an answer that takes
# longer than the probe timeout counts as the broker not answering.
_PROBE_INTERVAL_S = 1.0
_PROBE_TIMEOUT_MS = 2_000
# A processed position past the end of its partition's log for this many probes in a row means the log
# was reset (a recreated topic, a broker that lost its data): the consumer then starts it anew.
_RESET_AFTER_PROBES = 3
# A poll or probe that outlasts its own bound by this much is stuck in the client, and health says so
# (``BrokerHealth.waiting``): far past a timer's overrun (a 0.1 s retry backoff, a loaded machine's
# scheduling), far below the health thresholds.
_OVERDUE_GRACE_S = 5.0
# A commit that has not succeeded within this long is given up (the next batch commits again).
_COMMIT_TIMEOUT_S = 10.0
# A producer waits this long for a topic's metadata before send() gives up (and the batch is retried):
# kafka-python's 60 s default would keep a stop request waiting during an outage.
_MAX_BLOCK_MS = 2_000
# ``OutputDelivery.deliver`` hands a whole batch's outputs to the producer, then flushes: a flush sends
# everything at once, so lingering costs no latency, and it keeps the producer's sender thread from
# shipping (and lz4-compressing) a partial batch while the rest is still being handed over. One
# producer batch per partition then holds a micro-batch's outputs (500 predictions of a few hundred
# bytes over a few partitions), well under the broker's 1 MB batch limit: a third less CPU per output
# than kafka-python's defaults (16 KiB batches), measured 34 -> 20-25 µs per message with the worker's
# flush-per-batch pattern on the embedded broker.
_PRODUCER_LINGER_MS = 1_000
_PRODUCER_BATCH_BYTES = 256 * 1024
# After the shutdown timeout, ``labelflow run`` exits (status 1) even if a call into Kafka still hangs.
_FORCE_EXIT_GRACE_S = 5.0

__all__ = ["ProduceError", "Worker", "WorkerProgress"]


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
    """A labelflow worker: one stage (learn or embed), one consumer in ``settings.group_id``.

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
    on_outputs
        Called with a batch's output messages once they are delivered (flushed), before its offsets
        are committed: the hook of ``Application``'s callbacks. An exception in it is logged and the
        worker goes on (a replay after a crash may call it again for the same outputs).

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
        on_outputs: Callable[[Sequence[OutputMessage]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or settings.client_id or default_client_id("labelflow-worker")
        self.handle_signals = handle_signals
        self.on_batch = on_batch
        self.on_outputs = on_outputs
        self._runtime = runtime
        self.metrics = WorkerMetrics()
        self.metrics_port: int | None = None
        self.ledger = OffsetLedger()
        self._stage: Stage | None = None
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once subscribed (tests and the demo wait on it)
        self._consumer: KafkaConsumer | None = None
        self._batcher: OrderedBatcher | None = None
        self._delivery: OutputDelivery | None = None
        self.health = BrokerHealth(settings.health.unready_after_s, settings.health.down_after_s)
        self.metrics.bind_health(self.health)
        self._stop_deadline: float | None = None
        self._last_probe = 0.0
        self._known_partitions: set[TopicPart] = set()
        self._guard = PoisonGuard(None, 0)  # replaced once the stage is open
        self._crash_trigger = crash_trigger_from_env()
        self._beyond_end: dict[TopicPart, int] = {}  # probes in a row with the position past the log end
        self._dirty = False  # processed something since the last checkpoint
        self._checkpoint_requested = False  # a rebalance took partitions the checkpoint still claims
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
    def stage(self) -> Stage:
        if self._stage is None:
            raise RuntimeError("the worker has not started yet")
        return self._stage

    @property
    def state(self) -> RuntimeState:
        """Counters, feedback store and quality tracker (of the restored checkpoint once started)."""
        return self.stage.state

    @property
    def stopping(self) -> bool:
        """Whether ``stop()`` (or a signal) asked the worker to stop."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the worker to finish its batch, checkpoint, commit and leave the group.

        The worker stops within ``health.shutdown_timeout_s``: what needs the broker (delivering the
        last outputs, the commit, leaving the group) is given up when the broker does not answer in
        time; the checkpoint (local) is written regardless and carries undelivered outputs and offsets.
        """
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.settings.health.shutdown_timeout_s
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
            if self._runtime is None:
                self._runtime = ModelRuntime.from_settings(s.model)
            self._stage = make_stage(s, self._runtime, self.worker_id)
            restored = self._stage.open()
            if restored is not None:
                self._restored(restored)
            self._stage.warm_up()
            self._guard = PoisonGuard(self._stage.inflight_dir, s.poison_after_crashes)
            self._guard.recover()
            if s.create_topics:
                ensure_topics(s, worker_topics(s))
            if s.metrics.port >= 0:
                self.metrics_port = self.metrics.serve(s.metrics.host, s.metrics.port)
                logger.info(
                    "event=metrics_serving url=http://%s:%d/metrics", s.metrics.host, self.metrics_port
                )
            self._delivery = OutputDelivery(
                lambda: build_producer(
                    s,
                    client_id=self.worker_id,
                    max_block_ms=_MAX_BLOCK_MS,
                    linger_ms=_PRODUCER_LINGER_MS,
                    batch_size=_PRODUCER_BATCH_BYTES,
                ),
                self.health,
                self._stop,
            )
            self._consumer = build_consumer(s, client_id=self.worker_id)
            self.health.contact()  # both clients reached the broker
            self._deliver_outbox()
            topics = list(self._stage.topics)
            self._check_copartitioned(topics)
            self._batcher = OrderedBatcher(
                self._consumer,
                # Feedback far ahead of its documents waits here in a backlog; 20 batches (at least
                # 10,000 records, tens of MB) is room for that, and a bound against a runaway topic.
                max_buffered=max(10_000, 20 * s.batch.size),
                max_idle_s=s.batch.order_wait_ms / 1000.0,
            )
            self._consumer.subscribe(topics, listener=_Rebalance(self))
            self.health.running = True
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

    def _restored(self, checkpoint: Checkpoint) -> None:
        self.ledger.restore(
            {
                (topic, partition): offset
                for topic, parts in checkpoint.offsets.items()
                for partition, offset in parts.items()
            }
        )
        self.metrics.checkpoint_written(checkpoint.created_at, count=False)
        self.metrics.sync(self.state.counters.as_dict(), restored=True)

    def _check_copartitioned(self, topics: list[str]) -> None:
        """Warn when documents and feedback topics differ in partitions (feedback would miss documents)."""
        assert self._consumer is not None
        partitions = {topic: self._consumer.partitions_for_topic(topic) or set() for topic in topics}
        self._known_partitions = {(topic, p) for topic, parts in partitions.items() for p in parts}
        counts = [len(partitions[topic]) for topic in topics]
        if len(set(c for c in counts if c)) > 1:
            logger.warning(
                "event=topics_not_copartitioned partitions=%s (feedback may reach a worker that never saw "
                "its document and be counted unmatched; give both topics the same partition count)",
                ",".join(f"{t}:{c}" for t, c in zip(topics, counts, strict=True)),
            )

    # -- signals --------------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return {}

        def _handler(signum: int, frame: FrameType | None) -> None:
            if self._stop.is_set():
                logger.warning("event=stop_already_requested signal=%s", signal.Signals(signum).name)
                return
            logger.info(
                "event=stop_requested signal=%s timeout_s=%g",
                signal.Signals(signum).name,
                self.settings.health.shutdown_timeout_s,
            )
            self.stop()
            # The last resort against a call into Kafka that ignores its timeout: the process ends.
            watchdog = threading.Timer(
                self.settings.health.shutdown_timeout_s + _FORCE_EXIT_GRACE_S, _force_exit
            )
            watchdog.daemon = True
            watchdog.start()

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
            self._probe_broker()

    def _poll_batch(self) -> list[Any]:
        assert self._batcher is not None
        batch = self.settings.batch
        # A batch closes max_wait after its first record, a blocked partition waits order_wait at most.
        bound_s = (batch.max_wait_ms + batch.order_wait_ms + _IDLE_POLL_MS) / 1000.0 + _OVERDUE_GRACE_S
        with self.health.waiting(bound_s):
            return self._batcher.next_batch(
                batch.size, batch.max_wait_ms / 1000.0, self._stop, idle_poll_ms=_IDLE_POLL_MS
            )

    def _deliver_outputs(self, outcome: BatchOutcome) -> None:
        if self.on_outputs is None or not outcome.messages:
            return
        try:
            self.on_outputs(outcome.messages)
        except Exception:  # noqa: BLE001 - user code must not stop the stream
            logger.exception("event=output_callback_failed messages=%d", len(outcome.messages))

    def _handle(self, records: list[Any]) -> None:
        inputs = [InputRecord(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp) for r in records]
        total = BatchOutcome()
        for step in self._guard.plan(inputs):
            undelivered = self._run_step(step, total)
            if undelivered:
                # Stopping while the broker does not take the outputs: the shutdown checkpoint carries
                # them; the records after this step were not processed and are read again next time.
                self.state.outbox.extend(undelivered)
                logger.warning(
                    "event=outputs_undelivered messages=%d (kept for the checkpoint)", len(undelivered)
                )
                self._after_batch(len(records), total)
                return
        if self._checkpoint_due():
            self._checkpoint("interval")
        elif self.ledger.needs_checkpoint():
            self._checkpoint("new_partition")
        self._commit(wait=False)
        self._batches += 1
        self._after_batch(len(records), total)

    def _run_step(self, step: Step, total: BatchOutcome) -> list[OutputMessage]:
        """Process (or dead-letter) one step of a batch under the in-flight marker; what is undelivered."""
        self._guard.begin(step)
        if step.kind is StepKind.POISON:
            (record,) = step.records
            logger.error(
                "event=poison_record topic=%s partition=%d offset=%d crashes=%d (dead-lettered)",
                record.topic,
                record.partition,
                record.offset,
                step.crashes,
            )
            error = MessageError(
                Reason.POISON,
                f"the worker died {step.crashes} time(s) while processing this record alone",
            )
            outcome = self.stage.reject(record, error)
        else:
            self._crash_if_triggered(step)
            outcome = self.stage.process(step.records)
        undelivered = self._produce(outcome)
        if not undelivered:
            self._deliver_outputs(outcome)
        self._guard.done(step)
        self.ledger.processed({(r.topic, r.partition): r.offset + 1 for r in step.records})
        self._dirty = True
        _accumulate(total, outcome)
        return undelivered

    def _crash_if_triggered(self, step: Step) -> None:
        """The fault-injection hook of tests (``LABELFLOW_TESTING_CRASH_ON_BYTES``): die like a crash."""
        trigger = self._crash_trigger
        if trigger is not None and any(trigger in (r.value or b"") for r in step.records):
            logger.error("event=test_crash_triggered records=%d", len(step.records))
            logging.shutdown()
            os._exit(70)

    def _produce(self, outcome: BatchOutcome) -> list[OutputMessage]:
        """Deliver a batch's outputs (waiting out an outage); what is undelivered when told to stop."""
        assert self._delivery is not None
        started = time.perf_counter()
        undelivered = self._delivery.deliver(outcome.messages)
        outcome.stage_seconds["produce"] += time.perf_counter() - started
        return undelivered

    def _deliver_outbox(self) -> None:
        """Deliver the outputs a checkpoint carried (a stop during an outage) before reading anything."""
        assert self._delivery is not None
        outbox = self.state.outbox
        if not outbox:
            return
        undelivered = self._delivery.deliver(outbox)
        logger.info(
            "event=outbox_delivered messages=%d undelivered=%d",
            len(outbox) - len(undelivered),
            len(undelivered),
        )
        self.state.outbox[:] = undelivered
        self._dirty = True

    def _time_left_s(self, default_s: float) -> float:
        """``default_s``, or less when stopping: what is left of the shutdown timeout."""
        if self._stop_deadline is None:
            return default_s
        return max(0.0, min(default_s, self._stop_deadline - time.monotonic()))

    def _commit(self, wait: bool = True) -> None:
        """Commit the processed offsets of the assigned partitions.

        After a batch the commit is sent without waiting for its answer (``wait=False``): the next
        batch is processed meanwhile, instead of the loop standing still for a round trip to the group
        coordinator after every batch (1-6 ms, 7 us per document of the throughput benchmark). Its
        outputs were delivered before it was sent, so output stays at least once, and commits travel
        in order on the coordinator's connection, ahead of any later rebalance request. The answer is
        looked at on a later poll or commit (kafka-python runs the callback there): a failure counts
        and logs as a failed synchronous commit does, and the next batch's commit covers it. At
        shutdown the commit waits (``wait=True``), bounded by what is left of the shutdown timeout.
        """
        consumer = self._consumer
        if consumer is None:
            return
        offsets = {
            TopicPartition(*tp): OffsetAndMetadata(offset, "", -1)
            for tp, offset in self.ledger.commit_offsets().items()
        }
        timeout_ms = int(self._time_left_s(_COMMIT_TIMEOUT_S) * 1000)
        if not offsets or timeout_ms <= 0:
            return
        started = time.perf_counter()
        try:
            if wait:
                consumer.commit(offsets, timeout_ms=timeout_ms)
                self.health.contact()
            else:
                consumer.commit_async(offsets, callback=self._committed)
        except (
            KafkaError
        ) as exc:  # CommitFailedError, RebalanceInProgressError, timeouts: at least once holds
            self._commit_failed(exc)
        self.metrics.stage_seconds.labels(stage="commit").observe(time.perf_counter() - started)

    def _committed(self, offsets: Any, response: Any) -> None:
        """The answer to an asynchronous commit (called by kafka-python on this thread)."""
        if isinstance(response, BaseException):
            self._commit_failed(response)
        else:
            self.health.contact()

    def _commit_failed(self, exc: BaseException) -> None:
        self.metrics.commit_failures.inc()
        if isinstance(exc, KafkaTimeoutError):
            self.health.failed()
        logger.warning(
            "event=commit_failed error=%r (records after the last commit will be re-delivered; a "
            "checkpoint's offsets win over the commit when the worker restarts)",
            exc,
        )

    # -- checkpoints ----------------------------------------------------------------------------------

    def _checkpoint_due(self) -> bool:
        return self._dirty and self.stage.checkpoint_due(time.monotonic() - self._last_checkpoint)

    def _checkpoint(self, reason: str) -> bool:
        """Write a checkpoint of the stage with the ledger's offsets; False when the stage keeps nothing."""
        started = time.perf_counter()
        offsets = self.ledger.checkpoint_offsets()
        checkpoint = self.stage.checkpoint(offsets)
        if checkpoint is None:
            return False
        self.ledger.checkpointed(offsets)
        self._dirty = False
        self._last_checkpoint = time.monotonic()
        self._checkpoint_count += 1
        seconds = time.perf_counter() - started
        self.metrics.checkpoint_written(checkpoint.created_at)
        self.metrics.stage_seconds.labels(stage="checkpoint").observe(seconds)
        logger.info(
            "event=checkpoint_written reason=%s path=%s seq=%d learned=%d seconds=%.3f",
            reason,
            checkpoint.path,
            checkpoint.seq,
            self.state.counters.learned_total,
            seconds,
        )
        return True

    # -- rebalances -----------------------------------------------------------------------------------

    # kafka-python runs these callbacks on its IO thread while the main thread is blocked in poll() or
    # close(); they must not block (no commits, no checkpoint writes), so they only update the ledger
    # and leave the checkpoint to the main loop.

    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        logger.info("event=partitions_revoked partitions=%s", _tps(revoked))
        if self._batcher is not None:
            # Records of partitions we lost were not processed; their new owner reads them.
            self._batcher.drop(revoked)
        self.ledger.revoke(revoked)
        if self._dirty:
            self._checkpoint_requested = True
        self.metrics.assigned_partitions.set(len(self.ledger.assigned))

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        for seek in self.ledger.assign(assigned):
            consumer.seek(TopicPartition(*seek.partition), seek.offset)
            # Where a partition resumes: a restored checkpoint's offset, or (revoked and assigned straight
            # back) where this worker's model left it; kafka-python does not log either at INFO.
            logger.info(
                "event=seek_to_%s topic=%s partition=%d offset=%d",
                seek.reason.value,
                seek.partition[0],
                seek.partition[1],
                seek.offset,
            )
        self.metrics.rebalances.inc()
        self.metrics.assigned_partitions.set(len(self.ledger.assigned))
        logger.info("event=partitions_assigned partitions=%s", _tps(assigned))

    # -- metrics and progress -------------------------------------------------------------------------

    def _after_batch(self, size: int, outcome: BatchOutcome) -> None:
        m = self.metrics
        counters = self.state.counters
        m.batch_size.observe(size)
        m.observe_stages(outcome.stage_seconds)
        m.observe_latencies(outcome.latencies_s)
        m.sync(counters.as_dict())
        m.last_batch.set(time.time())
        self.stage.publish(m)
        if logger.isEnabledFor(logging.DEBUG) or self._batches % 50 == 1:
            logger.info(
                "event=batch_done batch=%d records=%d predictions=%d learned=%d dead_letters=%d seconds=%s",
                self._batches,
                size,
                outcome.predictions,
                outcome.learned,
                sum(counters.group("dead_letters").values()),
                ",".join(f"{k}:{v:.4f}" for k, v in sorted(outcome.stage_seconds.items())),
            )
        self._publish_progress()

    def _probe_broker(self) -> None:
        """Once a second: ask the broker for the end offsets; lag from them, health from the answer.

        Lag comes from fresh end offsets, not from the last fetch's high-water mark (which stops moving
        when fetches stop); while the broker does not answer, lag is unknown (NaN), never a stale 0.
        """
        consumer = self._consumer
        now = time.monotonic()
        if consumer is None or now - self._last_probe < _PROBE_INTERVAL_S:
            return
        self._last_probe = now
        assigned = self.ledger.assigned
        partitions = assigned | self._known_partitions
        if not partitions:
            return
        was_reachable = self.health.reachable
        try:
            with self.health.waiting(_PROBE_TIMEOUT_MS / 1000.0 + _OVERDUE_GRACE_S):
                ends = consumer.end_offsets(
                    [TopicPartition(*tp) for tp in sorted(partitions)], timeout_ms=_PROBE_TIMEOUT_MS
                )
        except KafkaError as exc:
            self.health.failed()
            for topic in self.stage.topics:
                self.metrics.consumer_lag.labels(topic=topic).set(math.nan)
            if was_reachable:
                logger.warning("event=broker_unreachable error=%r (lag unknown until it answers)", exc)
            return
        if not was_reachable:
            logger.info("event=broker_reachable unreachable_s=%.1f", self.health.unreachable_s)
        self.health.contact()
        lag = {topic: 0 for topic in self.stage.topics}
        beyond: set[TopicPart] = set()
        for tp in assigned:
            kafka_tp = TopicPartition(*tp)
            highwater = _highwater(consumer, kafka_tp)
            end = max(ends.get(kafka_tp) or 0, highwater or 0)
            position = self.ledger.position(tp)
            if position is None:
                continue
            if position <= end:
                lag[tp[0]] = lag.get(tp[0], 0) + end - position
                continue
            # Past the end: the log was reset, and all of it is unread. Only a high-water mark from a
            # fetch is trusted for this (some brokers answer end-offset requests a batch short).
            lag[tp[0]] = lag.get(tp[0], 0) + end
            if highwater is not None:
                beyond.add(tp)
        for topic, value in lag.items():
            self.metrics.consumer_lag.labels(topic=topic).set(value)
        self._beyond_end = {tp: self._beyond_end.get(tp, 0) + 1 for tp in beyond}
        for tp, probes in list(self._beyond_end.items()):
            if probes >= _RESET_AFTER_PROBES:
                self._restart_reset_log(tp)

    def _restart_reset_log(self, tp: TopicPart) -> None:
        """Read a partition whose log was reset from where ``consumer.auto_offset_reset`` says.

        Kafka answers a fetch past the end with OFFSET_OUT_OF_RANGE and the consumer resets by itself;
        a broker that answers with an empty fetch instead (the embedded one, after losing its data)
        would keep the worker waiting at its old offset for ever.
        """
        consumer = self._consumer
        assert consumer is not None
        kafka_tp = TopicPartition(*tp)
        try:
            if self.settings.consumer.auto_offset_reset == "earliest":
                offset = consumer.beginning_offsets([kafka_tp], timeout_ms=_PROBE_TIMEOUT_MS)[kafka_tp]
            else:
                offset = _highwater(consumer, kafka_tp) or 0
            consumer.seek(kafka_tp, offset)
        except KafkaError as exc:  # revoked meanwhile, or the broker went away again: next probe
            logger.warning("event=log_reset_seek_failed topic=%s partition=%d error=%r", tp[0], tp[1], exc)
            return
        old = self.ledger.position(tp)
        self.ledger.moved(tp, offset)
        self._beyond_end.pop(tp, None)
        logger.warning(
            "event=log_reset topic=%s partition=%d position=%s log_end=%d restart_at=%d (the partition's log "
            "was reset: a recreated topic or a broker that lost its data)",
            tp[0],
            tp[1],
            old,
            _highwater(consumer, kafka_tp),
            offset,
        )

    def _snapshot(self) -> WorkerProgress:
        stage = self._stage
        state = stage.state if stage is not None else None
        counters = state.counters.as_dict() if state is not None else RuntimeCounters().as_dict()
        summary = stage.summary() if stage is not None else ModelSummary()
        return WorkerProgress(
            started_at=self._started_at,
            batches=self._batches,
            documents_in=counters["documents_in"],
            feedback_in=counters["feedback_in"],
            predictions_out=counters["predictions_out"],
            learned=sum(counters["learned"].values()),
            dead_letters=sum(counters["dead_letters"].values()),
            micro_f1_window=state.quality.micro_f1_window if state is not None else 1.0,
            micro_f1_cumulative=state.quality.micro_f1_cumulative if state is not None else 1.0,
            labels=summary.labels,
            clusters=summary.clusters,
            partition_version=summary.partition_version,
            drift_events=sum(counters["drift_events"].values()),
            waiting_documents=state.store.waiting_documents if state is not None else 0,
            checkpoints=self._checkpoint_count,
            assigned=tuple(sorted(self.ledger.assigned)),
            counters=counters,
        )

    def _publish_progress(self) -> None:
        self._progress = self._snapshot()
        if self.on_batch is not None:
            self.on_batch(self._progress)

    # -- shutdown -------------------------------------------------------------------------------------

    def _shutdown(self, ok: bool) -> None:
        self.health.running = False
        if self._stop_deadline is None:  # a fatal error: the same bound on the way out
            self._stop_deadline = time.monotonic() + self.settings.health.shutdown_timeout_s
        try:
            if ok:
                # The loop only stops between batches: everything consumed has been processed, and its
                # outputs delivered or kept in the outbox. The checkpoint needs no broker: written first.
                checkpointed = self._checkpoint_count > 0 and not self._dirty
                if self._dirty or (self._checkpoint_count == 0 and self.ledger.has_positions):
                    checkpointed = self._checkpoint("shutdown")
                # Undelivered outputs without a checkpoint to carry them (the stateless embed stage):
                # commit nothing, so the batch is read again.
                if checkpointed or not self.state.outbox:
                    self._commit()
        except (KafkaError, OSError) as exc:
            logger.error("event=shutdown_incomplete error=%r", exc)
        finally:
            if self._consumer is not None:
                try:
                    # Leaves the group: partitions move at once (when the broker answers in time).
                    self._consumer.close(autocommit=False, timeout_ms=int(self._time_left_s(30.0) * 1000))
                except KafkaError as exc:
                    logger.warning("event=consumer_close_failed error=%r", exc)
            if self._delivery is not None:
                self._delivery.close(self._time_left_s(5.0))
            self.metrics.close()
            if self._stage is not None:
                self._stage.close()
            self._publish_progress()
            counters = self._progress.counters if self._progress is not None else {}
            logger.info(
                "event=worker_stopped worker=%s clean=%s documents=%d predictions=%d learned=%d",
                self.worker_id,
                ok,
                counters.get("documents_in", 0),
                counters.get("predictions_out", 0),
                sum((counters.get("learned") or {}).values()),
            )


def _highwater(consumer: KafkaConsumer, tp: TopicPartition) -> int | None:
    """The high-water mark of the last fetch of ``tp`` (None: no fetch yet, or no longer assigned)."""
    try:
        highwater = consumer.highwater(tp)
    except KafkaError:  # IllegalStateError: revoked since the ledger was read
        return None
    return None if highwater is None else int(highwater)


def _accumulate(total: BatchOutcome, step: BatchOutcome) -> None:
    """Add a step's timings and counts to its batch's (the messages are delivered per step)."""
    for stage, seconds in step.stage_seconds.items():
        total.stage_seconds[stage] += seconds
    total.latencies_s.extend(step.latencies_s)
    total.predictions += step.predictions
    total.learned += step.learned
    total.drift_alerts += step.drift_alerts


def _force_exit() -> None:
    logger.error("event=shutdown_timeout (a call into Kafka did not return in time; exiting without it)")
    logging.shutdown()
    os._exit(1)


def _tps(tps: set[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps))
