"""Fixtures of the fault-injection tests: a broker of each test's own (so it can be stopped and started
again without disturbing other tests; tests/conftest.py's ``settings_for`` then configures workers on it),
a small model, and small document streams.

The embedded broker keeps everything in memory: after ``broker.stop(); broker.start()`` it listens on
the same port with no topics, records or committed offsets. A Kafka cluster keeps its logs through an
outage; the tests model that by recreating the topics and producing the same input records again, so
every record has the offset it had before (``restart_with_log``). What a worker must do then is what
it must do on Kafka: continue from its own position, deliver what it could not, and report honestly.

Kafka's log comes back whole; the replayed one fills up record by record, so the worker is frozen
(SIGSTOP) until the replay is done. A worker that reached the broker meanwhile would see what Kafka never
shows after an outage: a log shorter than its position, which is what a log that lost its data looks
like. It then reads the partition again from the beginning (``event=log_reset``: every document read and
counted twice), as it must on a real reset; or, reaching the broker before the topics are created
again, it finds them auto-created with the broker's default partition count (4 partitions, not 1).
"""

from __future__ import annotations

import importlib.util
import json
import signal
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from labelflow.stream.broker import EmbeddedBroker
from labelflow.stream.config import Settings
from labelflow.stream.testing import WorkerProcess, create_topics, send

HEALTHCHECK_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "healthcheck.py"


def healthcheck() -> ModuleType:
    """The container health check script (deploy/docker/healthcheck.py), imported as a module."""
    name = "deploy_healthcheck"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HEALTHCHECK_SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def model_settings() -> dict[str, Any]:
    """A smaller model than the other broker tests' (``settings_for`` of tests/conftest.py uses it)."""
    return {"model.embedder_kwargs": {"n_features": 2**10}}


def documents(start: int, count: int, labelled_every: int = 2) -> list[dict[str, Any]]:
    """Documents ``d<start>``... with a few words each; every ``labelled_every``-th carries labels."""
    out = []
    for i in range(start, start + count):
        doc: dict[str, Any] = {"id": f"d{i}", "text": f"word{i % 7} word{i % 11} common text {i % 3}"}
        if i % labelled_every == 0:
            doc["labels"] = [f"l{i % 3}"] + ([f"m{i % 5}"] if i % 5 == 0 else [])
        out.append(doc)
    return out


def send_documents(settings: Settings, docs: list[dict[str, Any]]) -> None:
    send(settings, ((settings.topics.documents, d["id"].encode(), json.dumps(d).encode()) for d in docs))


def restart_with_log(
    broker: EmbeddedBroker, settings: Settings, docs: list[dict[str, Any]], worker: WorkerProcess
) -> None:
    """Start the stopped broker again with the topics and input records it held, the worker frozen
    meanwhile so that it sees the log only once it is whole (see the module docstring)."""
    assert worker.process is not None
    worker.process.send_signal(signal.SIGSTOP)
    try:
        broker.start()
        create_topics(settings)
        send_documents(settings, docs)
    finally:
        worker.process.send_signal(signal.SIGCONT)


def scrape(port: int) -> dict[str, float]:
    """Sample values by name (label sets summed; NaN kept); empty when the endpoint does not answer."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values
