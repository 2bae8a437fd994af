"""``labelflow demo``: the whole product on one machine in under three minutes.

Starts the embedded broker, creates the topics, streams the synthetic drifting stream (or a JSON-lines
file) into the documents topic — labels inline on some documents, delayed feedback for others, a few
malformed messages to show the dead-letter path — runs a worker in this process, shows live progress,
and ends with a summary of where to look.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from prometheus_client import generate_latest

from labelflow.operators.optional import import_optional
from labelflow.stream.broker import EmbeddedBroker
from labelflow.stream.config import Settings, load_settings
from labelflow.stream.feed import FeedPlan, encode, feed
from labelflow.stream.kafka_io import build_producer, ensure_topics, worker_topics
from labelflow.stream.topic_reader import read_topic, topic_size
from labelflow.stream.worker import Worker, WorkerProgress

logger = logging.getLogger(__name__)

# Malformed inputs the demo mixes into the stream, one of each kind the worker dead-letters.
BAD_MESSAGES: tuple[bytes, ...] = (
    b'{"id": "bad-json", "text": ',  # invalid JSON
    b'{"id": "bad-field", "text": "hello", "lables": ["x"]}',  # unknown field (typo)
    b'{"text": "a document without an id"}',  # missing id
    b'{"id": "bad-text", "text": ""}',  # empty text
    b'{"id": "bad-labels", "text": "hello", "labels": "sport"}',  # labels not a list
    b'{"id": "bad-utf8", "text": "caf\xe9"}',  # invalid UTF-8 (latin-1 byte)
)


@dataclass
class DemoOptions:
    """What the demo streams and where it writes."""

    # 10,000 documents carry all four scheduled drifts and finish well inside the 3-minute budget.
    n_documents: int = 10_000
    data: Path | None = None
    seed: int = 7
    plan: FeedPlan = field(
        default_factory=lambda: FeedPlan(labelled_fraction=0.5, feedback_fraction=0.3, feedback_delay=200)
    )
    work_dir: Path = Path(".labelflow/demo")
    metrics_port: int = 0
    # Documents per second sent by the producer; 0 sends as fast as the broker takes them.
    rate: float = 0.0
    timeout_s: float = 170.0
    # The feeder waits while it is this many documents ahead of the worker (0: never waits).
    max_ahead: int = 600
    bad_messages: bool = True
    settings_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoSummary:
    """The demo's outcome (also what tests assert on)."""

    documents_sent: int
    feedback_sent: int
    bad_sent: int
    progress: WorkerProgress
    seconds: float
    topics: dict[str, int]
    dead_letter_reasons: dict[str, int]
    drift_alerts: list[dict[str, Any]]
    stream_drifts: list[dict[str, Any]]
    checkpoint_dir: Path
    metrics_url: str
    metrics_file: Path
    plot: Path | None
    completed: bool


def _synthetic_documents(
    n_documents: int, seed: int
) -> tuple[Iterable[dict[str, Any]], list[dict[str, Any]]]:
    from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig

    stream = SyntheticStream(SyntheticStreamConfig(seed=seed, n_documents=n_documents))
    drifts = [event.to_dict() for event in stream.drift_events]
    return (document.to_dict() for document in stream), drifts


def _file_documents(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                raise ValueError(f"{path}:{number} is not a JSON line") from None
            if not isinstance(value, dict) or "id" not in value:
                raise ValueError(f"{path}:{number} is not a JSON object with an id")
            yield value


def demo_settings(broker: EmbeddedBroker, options: DemoOptions) -> Settings:
    overrides: dict[str, Any] = {
        "brokers": broker.bootstrap_servers,
        "group_id": "labelflow-demo",
        "checkpoint.dir": str(options.work_dir / "checkpoints"),
        "checkpoint.interval_s": 5.0,
        "metrics.port": options.metrics_port,
        "metrics.host": "127.0.0.1",
        "metrics.quality_window": 500,
        # Tansu answers a group join after about half the session timeout: keep it short locally.
        "consumer.session_timeout_ms": 6_000,
        "consumer.heartbeat_interval_ms": 1_000,
        "routing": [{"label": "label_00", "topic": "labelflow.routed.label_00"}],
        # One partition keeps the worker's view in stream order even when the feeder runs far ahead
        # (Kafka orders records within a partition only): drifts then show where they were scheduled.
        "topics.partitions": 1,
    }
    overrides.update(options.settings_overrides)
    return load_settings(None, overrides)


class _Feeder(threading.Thread):
    """Sends the planned messages (and a few bad ones) on a background thread."""

    def __init__(
        self,
        settings: Settings,
        messages: Iterable[tuple[str, dict[str, Any]]],
        options: DemoOptions,
        consumed: Callable[[], int] = lambda: 0,
    ) -> None:
        super().__init__(name="labelflow-demo-feeder", daemon=True)
        self.settings = settings
        self.messages = messages
        self.options = options
        self.consumed = consumed
        self.documents = 0
        self.feedback = 0
        self.bad = 0
        self.done = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        producer = build_producer(self.settings, client_id="labelflow-demo-feeder", enable_idempotence=False)
        topics = self.settings.topics
        bad = list(BAD_MESSAGES) if self.options.bad_messages else []
        started = time.monotonic()
        try:
            for kind, message in self.messages:
                if self.stop.is_set():
                    break
                key, value = encode(message)
                if kind == "document":
                    producer.send(topics.documents, key=key, value=value)
                    self.documents += 1
                    if bad and self.documents % 997 == 0:
                        producer.send(topics.documents, value=bad.pop())
                        self.bad += 1
                    if self.options.rate > 0:
                        ahead = self.documents / self.options.rate - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
                    if self.options.max_ahead > 0 and self.documents % 100 == 0:
                        producer.flush()
                        # Stay close to the worker, as a live source does: feedback then really
                        # arrives after its document was predicted, not before it was read.
                        while (
                            self.documents - self.consumed() > self.options.max_ahead
                            and not self.stop.is_set()
                        ):
                            time.sleep(0.02)
                else:
                    producer.send(topics.labels, key=key, value=value)
                    self.feedback += 1
            for value in bad:  # a short stream still shows every kind
                producer.send(topics.documents, value=value)
                self.bad += 1
            producer.flush()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
        finally:
            producer.close(timeout=5)
            self.done.set()


class _Display:
    """One status line, rewritten in place on a terminal, printed every few seconds otherwise."""

    def __init__(self, out: TextIO, total: int | None) -> None:
        self.out = out
        self.total = total
        self.tty = out.isatty()
        self._last_print = 0.0
        self._samples: deque[tuple[float, int]] = deque()
        self.rate = 0.0

    def update(self, p: WorkerProgress, force: bool = False) -> None:
        now = time.monotonic()
        # Documents per second over the last five seconds (batches complete in bursts).
        self._samples.append((now, p.predictions_out))
        while len(self._samples) > 2 and now - self._samples[1][0] >= 5.0:
            self._samples.popleft()
        t0, n0 = self._samples[0]
        if now - t0 > 0.5:
            self.rate = (p.predictions_out - n0) / (now - t0)
        if not force and now - self._last_print < (1.0 if self.tty else 5.0):
            return
        self._last_print = now
        total = f"/{self.total:,}" if self.total else ""
        # Before the first labelled document the window's F1 is the empty convention's 1.0: not a score.
        quality = f"{p.micro_f1_window:.3f}" if p.learned else "-"
        line = (
            f"documents {p.predictions_out:,}{total} | {self.rate:,.0f} docs/s | micro-F1 (window) "
            f"{quality} | labels {p.labels} | clusters {p.clusters} | drift events {p.drift_events} "
            f"| learned {p.learned:,} | dead letters {p.dead_letters}"
        )
        if self.tty:
            self.out.write("\r\033[K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def _plot(
    curve: list[tuple[int, float]],
    drifts: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    window: int,
    path: Path,
) -> Path | None:
    if not curve:
        return None
    matplotlib = import_optional("matplotlib", extra="plots")
    matplotlib.use("Agg")
    plt = import_optional("matplotlib.pyplot", extra="plots")

    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(
        [c[0] for c in curve],
        [c[1] for c in curve],
        label=f"micro-F1 of predictions (last {window} documents)",
    )
    for i, drift in enumerate(drifts):
        ax.axvline(
            drift["position"],
            color="red",
            linestyle="--",
            alpha=0.7,
            label="scheduled drift" if i == 0 else None,
        )
        ax.text(
            drift["position"], 0.03, " " + drift["kind"], rotation=90, fontsize=8, color="red", va="bottom"
        )
    positions = sorted({a["position"] for a in alerts if a.get("position") is not None})
    if positions:
        ax.plot(
            positions, [0.99] * len(positions), "|", color="gray", markersize=12, label="model drift alerts"
        )
    ax.set_xlabel("stream position (documents)")
    ax.set_ylabel("micro-F1")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8, frameon=False)
    ax.set_title("labelflow demo: prediction quality along the stream")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def quality_curve(
    predictions: Iterable[dict[str, Any]], truth: dict[str, tuple[int, list[str]]], window: int = 500
) -> list[tuple[int, float]]:
    """Windowed micro-F1 of every document's first prediction against its true labels, by stream position.

    The first prediction of a document is the prequential one (made before its labels were learned);
    documents whose labels the worker never saw are scored too, which is what a user of the
    predictions experiences.

    >>> truth = {"a": (0, ["x"]), "b": (1, ["y"])}
    >>> quality_curve([{"id": "a", "labels": ["x"]}, {"id": "b", "labels": []}], truth, window=2)
    [(0, 1.0), (1, 0.6666666666666666)]
    """
    first: dict[str, list[str]] = {}
    for p in predictions:
        first.setdefault(p["id"], p["labels"])
    scored = sorted((truth[i][0], set(labels), set(truth[i][1])) for i, labels in first.items() if i in truth)
    rows: deque[tuple[int, int, int]] = deque()
    tp = fp = fn = 0
    curve = []
    for position, predicted, actual in scored:
        row = (len(predicted & actual), len(predicted - actual), len(actual - predicted))
        rows.append(row)
        tp, fp, fn = tp + row[0], fp + row[1], fn + row[2]
        if len(rows) > window:
            old = rows.popleft()
            tp, fp, fn = tp - old[0], fp - old[1], fn - old[2]
        curve.append((position, 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0))
    return curve


def run_demo(
    options: DemoOptions, out: TextIO | None = None, stop: threading.Event | None = None
) -> DemoSummary:
    """Run the demo end to end; ``stop`` (e.g. set by Ctrl-C) ends it early, still with a summary."""
    out = out if out is not None else sys.stdout
    stop = stop or threading.Event()
    started = time.monotonic()
    work_dir = options.work_dir
    # The broker is in-memory and new: checkpoints of an earlier demo point at offsets that no longer exist.
    shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    if options.data is not None:
        documents: Iterable[dict[str, Any]] = _file_documents(options.data)
        drifts: list[dict[str, Any]] = []
        source = str(options.data)
        total = None
    else:
        documents, drifts = _synthetic_documents(options.n_documents, options.seed)
        source = f"synthetic stream (seed {options.seed}, {options.n_documents:,} documents, {len(drifts)} scheduled drifts)"
        total = options.n_documents
    print(f"labelflow demo: {source}", file=out)
    print(
        f"  {options.plan.labelled_fraction:.0%} labelled inline, {options.plan.feedback_fraction:.0%} labelled by "
        f"feedback {options.plan.feedback_delay} documents later, the rest never labelled",
        file=out,
    )
    with EmbeddedBroker(log_file=work_dir / "broker.log") as broker:
        settings = demo_settings(broker, options)
        ensure_topics(settings, worker_topics(settings))
        print(f"  broker {broker.bootstrap_servers} (Tansu, in memory; log {broker.log_path})", file=out)
        worker = Worker(settings, handle_signals=False, worker_id="labelflow-demo-worker")
        worker_error: list[BaseException] = []

        def run_worker() -> None:
            try:
                worker.run()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                worker_error.append(exc)

        worker_thread = threading.Thread(target=run_worker, name="labelflow-demo-worker", daemon=True)
        worker_thread.start()
        while not worker.ready.wait(0.2):
            if worker_error or not worker_thread.is_alive():
                raise RuntimeError(
                    f"the demo worker failed to start: {worker_error[0] if worker_error else 'exited'}"
                )
        metrics_url = (
            f"http://127.0.0.1:{worker.metrics_port}/metrics" if worker.metrics_port else "(disabled)"
        )
        print(f"  worker running; metrics at {metrics_url}", file=out)

        truth: dict[str, tuple[int, list[str]]] = {}  # id -> (stream position, true labels), for the plot

        def remember(source: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for position, document in enumerate(source, 1):
                if isinstance(document.get("labels"), list):
                    truth[str(document["id"])] = (position, document["labels"])
                yield document

        feeder = _Feeder(
            settings, feed(remember(documents), options.plan), options, lambda: worker.progress().documents_in
        )
        feeder.start()
        display = _Display(out, total)
        deadline = started + options.timeout_s
        completed = False
        while not stop.is_set() and time.monotonic() < deadline:
            if worker_error:
                break
            p = worker.progress()
            display.update(p)
            if feeder.done.is_set():
                if feeder.error is not None:
                    break
                expected_docs = feeder.documents + feeder.bad
                if (
                    p.documents_in >= expected_docs
                    and p.feedback_in >= feeder.feedback
                    and p.predictions_out >= feeder.documents
                ):
                    completed = True
                    break
            time.sleep(0.1)
        feeder.stop.set()
        display.update(worker.progress(), force=True)
        display.finish()
        worker.stop()
        worker_thread.join(timeout=30)
        feeder.join(timeout=10)
        if worker_error:
            raise RuntimeError(f"the demo worker failed: {worker_error[0]!r}") from worker_error[0]
        if feeder.error is not None:
            raise RuntimeError(f"the demo producer failed: {feeder.error!r}") from feeder.error

        progress = worker.progress()
        metrics_file = work_dir / "metrics.txt"
        metrics_file.write_bytes(generate_latest(worker.metrics.registry))
        t = settings.topics
        topics = {
            name: topic_size(settings, name)
            for name in (
                t.documents,
                t.labels,
                t.predictions,
                t.deadletter,
                t.drift,
                *[r.topic for r in settings.routing],
            )
        }
        letters = [
            json.loads(r.value)
            for r in read_topic(settings, t.deadletter, idle_timeout_s=0.5, max_messages=topics[t.deadletter])
        ]
        reasons: dict[str, int] = {}
        for letter in letters:
            reasons[letter["reason"]] = reasons.get(letter["reason"], 0) + 1
        alerts = [
            json.loads(r.value)
            for r in read_topic(settings, t.drift, idle_timeout_s=0.5, max_messages=topics[t.drift])
        ]
        predictions = (
            json.loads(r.value)
            for r in read_topic(
                settings, t.predictions, idle_timeout_s=0.5, max_messages=topics[t.predictions]
            )
        )
        curve = quality_curve(predictions, truth, window=500)
    plot = _plot(curve, drifts, alerts, 500, work_dir / "quality.png")
    summary = DemoSummary(
        documents_sent=feeder.documents,
        feedback_sent=feeder.feedback,
        bad_sent=feeder.bad,
        progress=progress,
        seconds=time.monotonic() - started,
        topics=topics,
        dead_letter_reasons=reasons,
        drift_alerts=alerts,
        stream_drifts=drifts,
        checkpoint_dir=Path(settings.checkpoint.dir),
        metrics_url=metrics_url,
        metrics_file=metrics_file,
        plot=plot,
        completed=completed,
    )
    print_summary(summary, settings, out)
    return summary


def print_summary(s: DemoSummary, settings: Settings, out: TextIO) -> None:
    p = s.progress
    counters = p.counters
    print("", file=out)
    print(f"demo {'finished' if s.completed else 'STOPPED EARLY'} in {s.seconds:.1f} s", file=out)
    print(
        f"  documents   sent {s.documents_sent:,} (+{s.bad_sent} malformed), predicted {p.predictions_out:,}",
        file=out,
    )
    print(
        f"  learning    learned {p.learned:,} {dict(counters['learned'])}; feedback {dict(counters['feedback'])}",
        file=out,
    )
    print(
        f"  quality     prequential micro-F1: cumulative {p.micro_f1_cumulative:.3f}, last window {p.micro_f1_window:.3f}",
        file=out,
    )
    print(
        f"  model       {p.labels} labels in {p.clusters} clusters (partition version {p.partition_version})",
        file=out,
    )
    scheduled = ", ".join(f"{d['kind']}@{d['position']}" for d in s.stream_drifts) or "none"
    kinds: dict[str, int] = {}
    for alert in s.drift_alerts:
        kinds[alert["kind"]] = kinds.get(alert["kind"], 0) + 1
    by_kind = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    print(f"  drift       scheduled in the stream: {scheduled}", file=out)
    print(
        f"              alerts raised by the model: {len(s.drift_alerts)}"
        + (f" ({by_kind})" if by_kind else ""),
        file=out,
    )
    print(f"  dead letter {sum(s.dead_letter_reasons.values())} messages {s.dead_letter_reasons}", file=out)
    print("where to look:", file=out)
    for topic, count in s.topics.items():
        print(f"  topic {topic:<28} {count:>7,} messages", file=out)
    print(f"  metrics     {s.metrics_url} while it ran; final scrape saved in {s.metrics_file}", file=out)
    print(f"  checkpoint  {s.checkpoint_dir} (try: labelflow inspect {s.checkpoint_dir})", file=out)
    if s.plot is not None:
        print(f"  plot        {s.plot}", file=out)
    print(f"  broker log  {s.checkpoint_dir.parent / 'broker.log'}", file=out)


def install_interrupt(stop: threading.Event) -> Callable[[], None]:
    """Ctrl-C / SIGTERM set ``stop`` (the demo then winds down and still prints its summary)."""

    def _handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
