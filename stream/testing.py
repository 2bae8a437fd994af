"""Helpers for testing against a real broker: isolated settings, workers in threads or subprocesses,
and collectors that read whole topics. Used by labelflow's own tests and benchmarks; usable by anyone
testing a deployment (nothing here is a mock).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from labelflow.stream.config import Settings, load_settings
from labelflow.stream.kafka_io import build_consumer, build_producer, ensure_topics, worker_topics
from labelflow.stream.topic_reader import assign_all
from labelflow.stream.worker import Worker, WorkerProgress

# Tansu answers a consumer-group join after about half the session timeout; short timeouts keep tests
# fast while heartbeats (every 500 ms) stay well inside them.
TEST_CONSUMER = {"consumer.session_timeout_ms": 4_000, "consumer.heartbeat_interval_ms": 500}


def isolated_settings(bootstrap: str, work_dir: Path, name: str | None = None, **overrides: Any) -> Settings:
    """Settings whose topics, group and checkpoint directory belong to one test only.

    Dotted keyword names are spelt with double underscores: ``batch__size=50``.
    """
    tag = name or uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "brokers": bootstrap,
        "group_id": f"test-{tag}",
        "topics.documents": f"{tag}.documents",
        "topics.labels": f"{tag}.labels",
        "topics.predictions": f"{tag}.predictions",
        "topics.drift": f"{tag}.drift",
        "topics.deadletter": f"{tag}.deadletter",
        "topics.embedded": f"{tag}.embedded",
        "checkpoint.dir": str(work_dir / f"checkpoints-{tag}"),
        "checkpoint.interval_s": 1.0,
        "metrics.port": -1,
        "metrics.host": "127.0.0.1",
        "batch.max_wait_ms": 50,
        **TEST_CONSUMER,
    }
    values.update({key.replace("__", "."): value for key, value in overrides.items()})
    return load_settings(None, values)


def with_overrides(settings: Settings, **overrides: Any) -> Settings:
    """A copy of ``settings`` with some values changed (dotted keys spelt with ``__``)."""
    values = settings.model_dump(mode="json")
    flat = {key.replace("__", "."): value for key, value in overrides.items()}
    for dotted, value in flat.items():
        node = values
        path = dotted.split(".")
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return load_settings(None, values)


def create_topics(settings: Settings) -> None:
    ensure_topics(settings, worker_topics(settings))


def send(settings: Settings, messages: Iterable[tuple[str, bytes | None, bytes | None]]) -> int:
    """Produce ``(topic, key, value)`` triples and flush; the number sent."""
    producer: KafkaProducer = build_producer(
        settings, client_id="labelflow-test-producer", enable_idempotence=False
    )
    count = 0
    try:
        for topic, key, value in messages:
            producer.send(topic, key=key, value=value)
            count += 1
        producer.flush()
    finally:
        producer.close(timeout=5)
    return count


#: The dead-letter reasons of :func:`poison_records`, one per record.
POISON_REASONS = (
    "too_deep",
    "too_deep",
    "invalid_utf8",
    "invalid_utf8",
    "label_too_long",
    "output_too_large",
    "invalid_value",
    "invalid_value",
)


def poison_records(documents_topic: str, labels_topic: str) -> list[tuple[str, bytes, bytes]]:
    """One record of each class that used to stop or corrupt a worker: ``(topic, key, value)``.

    Deep nesting in either input topic, lone surrogate escapes in a label and in an id, a 700 KB label
    name, a 600 KB id (its prediction, with the id as key, exceeds the 1 MB output limit), a feature
    given as a 400-digit integer (float() overflows) and a labelled document whose feature exceeds
    float32's range (it turned the model's weights NaN). Each must become one dead letter with its
    reason in :data:`POISON_REASONS` while the worker goes on.
    """
    deep = b"[" * 5_000 + b"]" * 5_000
    return [
        (documents_topic, b"p-deep", b'{"id": "p-deep", "text": "t", "meta": {"x": ' + deep + b"}}"),
        (labels_topic, b"p-deep-feedback", b'{"id": "p-deep-feedback", "labels": ' + deep + b"}"),
        (documents_topic, b"p-surrogate", b'{"id": "p-surrogate", "text": "t", "labels": ["a\\ud800"]}'),
        (labels_topic, b"p-surrogate-id", b'{"id": "p\\ud800", "labels": ["a"]}'),
        (
            documents_topic,
            b"p-long",
            json.dumps({"id": "p-long", "text": "t", "labels": ["x" * 700_000]}).encode(),
        ),
        (
            documents_topic,
            b"p-id",
            json.dumps({"id": "i" * 600_000, "text": "a document with a huge id"}).encode(),
        ),
        (documents_topic, b"p-big-integer", b'{"id": "p-big-integer", "features": [1' + b"0" * 400 + b"]}"),
        (
            documents_topic,
            b"p-float32",
            b'{"id": "p-float32", "features": {"3": 1e39, "5": 1}, "labels": ["a"]}',
        ),
    ]


def wait_for(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    interval_s: float = 0.1,
    explain: Callable[[], str] | None = None,
) -> None:
    """Poll ``predicate`` until it holds; ``TimeoutError`` naming ``what`` otherwise, with what
    ``explain`` says (e.g. a worker's state and log: a CI failure is read from its output alone)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}{detail}")
        time.sleep(interval_s)


class TopicCollector:
    """Reads a topic from its beginning, incrementally, without joining a group.

    ``records`` grows with every ``poll``; ``values_by_key`` keeps the last JSON value per key.
    """

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.consumer: KafkaConsumer = build_consumer(settings, group_id=None, max_poll_records=5_000)
        assign_all(self.consumer, topic)
        self.records: list[ConsumerRecord] = []

    def poll(self, timeout_ms: int = 200) -> int:
        batch = self.consumer.poll(timeout_ms=timeout_ms)
        new = [record for part in batch.values() for record in part]
        self.records.extend(new)
        return len(new)

    def drain(self, idle_s: float = 1.0) -> list[ConsumerRecord]:
        """Poll until nothing new arrives for ``idle_s``."""
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            if self.poll():
                last = time.monotonic()
        return self.records

    def wait_until(
        self, predicate: Callable[[list[ConsumerRecord]], bool], timeout_s: float, what: str
    ) -> list[ConsumerRecord]:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out after {timeout_s:.0f} s waiting for {what} on {self.topic} ({len(self.records)} records)"
                )
            self.poll()
        return self.records

    def keys(self) -> set[str]:
        return {r.key.decode() for r in self.records if r.key is not None}

    def values(self) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.records]

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> TopicCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WorkerThread:
    """A ``Worker`` running on a background thread of this process (stopped gracefully on exit)."""

    def __init__(self, settings: Settings, **worker_kwargs: Any) -> None:
        self.worker = Worker(settings, handle_signals=False, **worker_kwargs)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="labelflow-test-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised by stop()
            self.error = exc

    def start(self, timeout_s: float = 30.0) -> WorkerThread:
        self._thread.start()
        wait_for(
            lambda: self.worker.ready.is_set() or not self._thread.is_alive(),
            timeout_s,
            "the worker to start",
        )
        if self.error is not None:
            raise self.error
        return self

    def progress(self) -> WorkerProgress:
        return self.worker.progress()

    def wait_for(
        self, predicate: Callable[[WorkerProgress], bool], timeout_s: float, what: str
    ) -> WorkerProgress:
        def check() -> bool:
            if self.error is not None:
                raise self.error
            return predicate(self.worker.progress())

        wait_for(check, timeout_s, what)
        return self.worker.progress()

    def stop(self, timeout_s: float = 30.0) -> WorkerProgress:
        self.worker.stop()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError("the worker did not stop")
        if self.error is not None:
            raise self.error
        return self.worker.progress()

    def __enter__(self) -> WorkerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.stop()


class WorkerProcess:
    """``labelflow run`` as a child process (so it can be SIGTERMed or killed -9), logging to a file."""

    def __init__(
        self,
        settings: Settings,
        work_dir: Path,
        name: str,
        extra_env: dict[str, str] | None = None,
        *,
        extra_args: Sequence[str] = (),
        log_level: str = "INFO",
        command: str = "run",
    ) -> None:
        self.name = name
        self.command = command  # "run", or "serve" for a worker with its HTTP API
        self.extra_args = tuple(extra_args)
        self.log_level = log_level
        self.config = work_dir / f"{name}.yaml"
        self.config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
        self.log_path = work_dir / f"{name}.log"
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("LABELFLOW_") or k == "LABELFLOW_DATASETS"
        }
        env.update(self.extra_env)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labelflow.stream.cli",
                "--log-level",
                self.log_level,
                self.command,
                "--config",
                str(self.config),
                "--set",
                f"client_id={self.name}",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait: the worker finishes its batch, checkpoints, commits and leaves the group."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> int:
        """kill -9: no shutdown code runs."""
        assert self.process is not None
        self.process.kill()
        return self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def diagnosis(self, lines: int = 40) -> str:
        """Whether the worker runs (or its exit status), its labelflow events and the last lines of its log."""
        code = None if self.process is None else self.process.poll()
        state = "not started" if self.process is None else ("running" if code is None else f"exited {code}")
        log = self.log().splitlines()
        events = [line for line in log if " event=" in line][-lines:]
        return "\n".join(
            [f"worker {self.name}: {state}", "its events:", *events, "its log's last lines:", *log[-lines:]]
        )

    def ensure_stopped(self) -> None:
        if self.alive():
            self.kill()
