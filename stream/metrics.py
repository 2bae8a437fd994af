"""Prometheus metrics of a worker: every metric name in one place (documented in docs/metrics.md).

Each worker owns a ``CollectorRegistry`` (never the global one), so several workers in one process
(tests, the demo) keep separate series. Label names of the *model* never become metric label values:
label values here come from small fixed sets (stage, reason, outcome, kind, level, topic).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from labelflow.stream.health import BrokerHealth

PREFIX = "labelflow"

# Counters (exposed with a _total suffix).
DOCUMENTS_IN = f"{PREFIX}_documents_in"
FEEDBACK_IN = f"{PREFIX}_feedback_in"
PREDICTIONS_OUT = f"{PREFIX}_predictions_out"
DEAD_LETTERS = f"{PREFIX}_dead_letters"
ROUTED = f"{PREFIX}_routed_documents"
LEARNED = f"{PREFIX}_learned_documents"
FEEDBACK = f"{PREFIX}_feedback"
DUPLICATE_DOCUMENTS = f"{PREFIX}_duplicate_documents"
EXPIRED_DOCUMENTS = f"{PREFIX}_expired_documents"
DRIFT_EVENTS = f"{PREFIX}_drift_events"
CHECKPOINTS = f"{PREFIX}_checkpoints"
COMMIT_FAILURES = f"{PREFIX}_commit_failures"
REBALANCES = f"{PREFIX}_rebalances"

# Histograms.
BATCH_SIZE = f"{PREFIX}_batch_size"
STAGE_SECONDS = f"{PREFIX}_stage_seconds"
END_TO_END_SECONDS = f"{PREFIX}_end_to_end_latency_seconds"

# Gauges.
CONSUMER_LAG = f"{PREFIX}_consumer_lag"
CHECKPOINT_AGE = f"{PREFIX}_checkpoint_age_seconds"
LAST_BATCH = f"{PREFIX}_last_batch_timestamp_seconds"
MICRO_F1_WINDOW = f"{PREFIX}_micro_f1_windowed"
MICRO_F1_CUMULATIVE = f"{PREFIX}_micro_f1_cumulative"
SUBSET_ACCURACY_WINDOW = f"{PREFIX}_subset_accuracy_windowed"
QUALITY_WINDOW_SIZE = f"{PREFIX}_quality_window_documents"
LABELS = f"{PREFIX}_labels"
CLUSTERS = f"{PREFIX}_clusters"
PARTITION_VERSION = f"{PREFIX}_partition_version"
WAITING = f"{PREFIX}_feedback_store_entries"
WAITING_BYTES = f"{PREFIX}_feedback_store_bytes"
EVICTIONS = f"{PREFIX}_feedback_store_evictions"
ASSIGNED_PARTITIONS = f"{PREFIX}_assigned_partitions"
UP = f"{PREFIX}_worker_up"
READY = f"{PREFIX}_worker_ready"
BROKER_UNREACHABLE = f"{PREFIX}_broker_unreachable_seconds"

STAGES = ("decode", "embed", "predict", "learn", "produce", "commit", "checkpoint")

# Plain counters of the runtime (checkpointed) that map 1:1 onto unlabelled Prometheus counters.
_SIMPLE_COUNTERS = {
    "documents_in": DOCUMENTS_IN,
    "feedback_in": FEEDBACK_IN,
    "predictions_out": PREDICTIONS_OUT,
    "routed": ROUTED,
    "duplicate_documents": DUPLICATE_DOCUMENTS,
    "expired_documents": EXPIRED_DOCUMENTS,
}

# Counters of messages this process produced. A restore does not carry them over: documents replayed
# after a restore are predicted and produced again, and these counters show those duplicates. Every
# other runtime counter is restored from the checkpoint and counts each input record once.
PER_PROCESS = frozenset({"predictions_out", "routed"})

# Appended to the help text of the counters restored from the checkpoint.
_RESTORED = " Restored from the checkpoint: counts since the model's first document, each record once."

# Batch-time buckets: a batch of a few hundred documents takes milliseconds to a few seconds.
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for each value, as one increment per bucket and one of the sum.

    prometheus-client's ``observe`` costs about 2 µs a value (a lock and a scan of the buckets), once per
    document of every batch; this counts a batch's values per bucket in one ``searchsorted`` (a value
    goes to the first bucket whose upper bound is at or above it, as ``observe`` puts it) and adds them
    with one increment each. The exposed counts are the same; the sum is the same up to float rounding
    (added once instead of value by value). A histogram without the attributes this relies on (another
    prometheus-client) gets its values one by one.
    """
    if not values:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(buckets) != len(bounds):
        for value in values:
            histogram.observe(value)
        return
    array = np.asarray(values, dtype=np.float64)
    index = np.searchsorted(np.asarray(bounds, dtype=np.float64), array, side="left")
    counts = np.bincount(index, minlength=len(bounds) + 1)
    for bucket, count in zip(buckets, counts[: len(bounds)].tolist(), strict=True):
        if count:
            bucket.inc(count)
    total.inc(float(sum(values)))


class MetricsServerError(RuntimeError):
    """The metrics endpoint cannot listen where it was told to."""


class WorkerMetrics:
    """The Prometheus series of one worker, in its own registry.

    Counters mirror the checkpointed runtime counters through ``sync``: most continue across a restore
    (they count since the model's first document, each record once); those of ``PER_PROCESS``, the
    messages produced, count in this process only, replays after a restore included. Histograms and
    gauges are process-local.

    Examples
    --------
    >>> from prometheus_client import generate_latest
    >>> m = WorkerMetrics()
    >>> m.sync({"documents_in": 3, "predictions_out": 3, "dead_letters": {"invalid_json": 1}}, restored=True)
    >>> m.sync({"documents_in": 5, "predictions_out": 5})
    >>> m.drift_events.labels(kind="performance", level="global").inc()
    >>> text = generate_latest(m.registry).decode()
    >>> "labelflow_documents_in_total 5.0" in text, "labelflow_predictions_out_total 2.0" in text
    (True, True)
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._simple = {
            key: Counter(name, help, registry=r)
            for key, (name, help) in {
                "documents_in": (DOCUMENTS_IN, "Records read from the documents topic." + _RESTORED),
                "feedback_in": (FEEDBACK_IN, "Records read from the labels (feedback) topic." + _RESTORED),
                "predictions_out": (
                    PREDICTIONS_OUT,
                    "Predictions produced by this process, replays after a restore included (from 0 at "
                    "each start; role embed: documents re-published with their features).",
                ),
                "routed": (
                    ROUTED,
                    "Documents copied to a label routing topic by this process (one per topic), replays "
                    "included.",
                ),
                "duplicate_documents": (
                    DUPLICATE_DOCUMENTS,
                    "Labelled documents whose id was already learned: predicted, not learned again."
                    + _RESTORED,
                ),
                "expired_documents": (
                    EXPIRED_DOCUMENTS,
                    "Unlabelled documents dropped from the feedback store (TTL or size) before feedback came."
                    + _RESTORED,
                ),
            }.items()
        }
        self.dead_letters = Counter(
            DEAD_LETTERS,
            "Bad input records sent to the dead-letter topic, by reason." + _RESTORED,
            ["reason"],
            registry=r,
        )
        self.learned = Counter(
            LEARNED,
            "Labelled documents learned, by where the labels came from." + _RESTORED,
            ["source"],
            registry=r,
        )
        self.feedback = Counter(
            FEEDBACK,
            "Feedback messages by outcome (matched, early, late, duplicate, unmatched)." + _RESTORED,
            ["outcome"],
            registry=r,
        )
        self.drift_events = Counter(
            DRIFT_EVENTS,
            "Drift detections by kind and level (global or cluster)." + _RESTORED,
            ["kind", "level"],
            registry=r,
        )
        self.checkpoints = Counter(CHECKPOINTS, "Checkpoints written by this process.", registry=r)
        self.commit_failures = Counter(
            COMMIT_FAILURES,
            "Offset commits refused (usually a rebalance); records are re-delivered.",
            registry=r,
        )
        self.rebalances = Counter(REBALANCES, "Partition assignments received by this process.", registry=r)
        self.batch_size = Histogram(
            BATCH_SIZE, "Records per micro-batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.stage_seconds = Histogram(
            STAGE_SECONDS,
            "Seconds spent per micro-batch in each stage.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            END_TO_END_SECONDS,
            "Seconds from a document's record timestamp to its prediction.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            CONSUMER_LAG,
            "Records not yet processed, summed over the assigned partitions of a topic (end offsets asked "
            "of the broker every second; NaN while the broker does not answer).",
            ["topic"],
            registry=r,
        )
        self.checkpoint_age = Gauge(
            CHECKPOINT_AGE,
            "Seconds since the newest checkpoint was written (restored ones included).",
            registry=r,
        )
        self.last_batch = Gauge(
            LAST_BATCH, "Unix time of the last processed batch (stalled-worker alerts).", registry=r
        )
        self.micro_f1_window = Gauge(
            MICRO_F1_WINDOW,
            "Prequential micro-F1 over the last quality_window labelled documents.",
            registry=r,
        )
        self.micro_f1_cumulative = Gauge(
            MICRO_F1_CUMULATIVE,
            "Prequential micro-F1 over every labelled document since the model started.",
            registry=r,
        )
        self.subset_accuracy_window = Gauge(
            SUBSET_ACCURACY_WINDOW, "Prequential exact-match rate over the quality window.", registry=r
        )
        self.quality_window_size = Gauge(
            QUALITY_WINDOW_SIZE, "Labelled documents currently in the quality window.", registry=r
        )
        self.labels = Gauge(LABELS, "Labels the model knows.", registry=r)
        self.clusters = Gauge(CLUSTERS, "Clusters of the current label partition.", registry=r)
        self.partition_version = Gauge(
            PARTITION_VERSION, "Version of the current label partition.", registry=r
        )
        self.waiting_bytes = Gauge(
            WAITING_BYTES,
            "Bytes held by the feedback store's waiting entries (bounded by feedback.max_bytes).",
            registry=r,
        )
        self.evictions = Counter(
            EVICTIONS,
            "Feedback store entries evicted by its count or byte bound before their time, by kind "
            "(documents, feedback)." + _RESTORED,
            ["kind"],
            registry=r,
        )
        self.waiting = Gauge(
            WAITING,
            "Entries waiting in the feedback store, by kind (documents, feedback).",
            ["kind"],
            registry=r,
        )
        self.assigned_partitions = Gauge(
            ASSIGNED_PARTITIONS, "Input partitions assigned to this worker.", registry=r
        )
        self.up = Gauge(
            UP,
            "1 while the worker loop runs and the broker answered within health.down_after_s (liveness).",
            registry=r,
        )
        self.ready = Gauge(
            READY,
            "1 while the worker loop runs and the broker answered within health.unready_after_s (readiness).",
            registry=r,
        )
        self.broker_unreachable = Gauge(
            BROKER_UNREACHABLE,
            "Seconds since the broker stopped answering this worker (0 while it answers).",
            registry=r,
        )
        for stage in STAGES:
            self.stage_seconds.labels(stage=stage)
        for kind in ("documents", "feedback"):  # at 0 from the start, like the drift series below
            self.evictions.labels(kind=kind)
        # Every drift series exists from the start at 0: Prometheus' increase() cannot see the first
        # event of a series that appears with value 1, and the drift alert would never fire for it.
        for kind in ("performance", "label_prior", "label_structure", "input"):
            for level in ("global", "cluster"):
                self.drift_events.labels(kind=kind, level=level)
        self._synced: dict[str, float] = {}
        self._server: WSGIServer | None = None
        self._checkpoint_time: float | None = None
        self.checkpoint_age.set_function(
            lambda: 0.0 if self._checkpoint_time is None else max(0.0, time.time() - self._checkpoint_time)
        )

    def bind_health(self, health: BrokerHealth) -> None:
        """Serve liveness, readiness and broker unreachability from ``health``, read at scrape time."""
        self.up.set_function(lambda: float(health.alive))
        self.ready.set_function(lambda: float(health.ready))
        self.broker_unreachable.set_function(lambda: health.unreachable_s)

    def sync(self, counters: Mapping[str, object], *, restored: bool = False) -> None:
        """Advance the Prometheus counters to the runtime counters (they only ever grow).

        ``restored``: the counters come from a checkpoint; the ``PER_PROCESS`` counters take them as
        their starting point instead of counting them (they count what this process produces).
        """
        for key, counter in self._simple.items():
            if restored and key in PER_PROCESS:
                self._synced[key] = float(counters.get(key, 0))  # type: ignore[arg-type]
                continue
            self._advance(key, counter, counters.get(key, 0))
        for group, metric, label in (
            ("dead_letters", self.dead_letters, "reason"),
            ("learned", self.learned, "source"),
            ("feedback", self.feedback, "outcome"),
            ("evictions", self.evictions, "kind"),
        ):
            values = counters.get(group) or {}
            assert isinstance(values, Mapping)
            for name, value in values.items():
                self._advance(f"{group}/{name}", metric.labels(**{label: name}), value)
        drift = counters.get("drift_events") or {}
        assert isinstance(drift, Mapping)
        for key, value in drift.items():
            kind, _, level = str(key).partition("/")
            self._advance(f"drift/{key}", self.drift_events.labels(kind=kind, level=level or "global"), value)

    def _advance(self, key: str, counter: Counter, value: object) -> None:
        target = float(value)  # type: ignore[arg-type]
        delta = target - self._synced.get(key, 0.0)
        if delta > 0:
            counter.inc(delta)
            self._synced[key] = target

    def observe_latencies(self, seconds: Sequence[float]) -> None:
        """Each document's end-to-end latency into its histogram (a batch's worth at once)."""
        observe_many(self.end_to_end, seconds)

    def observe_stages(self, seconds: Mapping[str, float]) -> None:
        for stage, value in seconds.items():
            self.stage_seconds.labels(stage=stage).observe(value)

    def checkpoint_written(self, at: float, count: bool = True) -> None:
        self._checkpoint_time = at
        if count:
            self.checkpoints.inc()

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` over HTTP on a daemon thread; the port actually bound (``port=0`` picks one)."""
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsServerError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc} (set metrics.port, 0 for any free port, -1 for none)"
            ) from None
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
