"""What an operator sees and exposes (issue 13, defect 7), checked on real workers.

* the metrics endpoint binds 127.0.0.1 unless configured (it bound 0.0.0.0);
* secrets never reach a log line at any level (at DEBUG kafka-python logged the SASL password);
* `labelflow inspect` escapes control characters of label names (it printed them raw);
* `labelflow_predictions_out_total` counts what the process produced, replays after a restore
  included, as its help text says (it was restored from the checkpoint, so replays never showed).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from labelflow.stream.broker import free_port
from labelflow.stream.checkpoint import CheckpointStore
from labelflow.stream.cli import main
from labelflow.stream.config import Settings
from labelflow.stream.testing import (
    TopicCollector,
    WorkerProcess,
    WorkerThread,
    create_topics,
    send,
    wait_for,
    with_overrides,
)

pytestmark = [pytest.mark.broker]


def documents(settings: Settings, start: int, n: int, labels: list[str] | None = None) -> list:
    return [
        (
            settings.topics.documents,
            f"d{i}".encode(),
            json.dumps(
                {"id": f"d{i}", "text": f"text about topic{i % 3}", "labels": labels or [f"t{i % 3}"]}
            ).encode(),
        )
        for i in range(start, start + n)
    ]


def scrape(port: int) -> dict[str, tuple[float, str]]:
    """Each sample's value and its metric family's help text (-1 when the endpoint does not answer)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    return {
        s.name: (s.value, f.documentation) for f in text_string_to_metric_families(text) for s in f.samples
    }


def test_the_metrics_endpoint_binds_loopback_by_default(settings_for: Callable[..., Settings]) -> None:
    default_host = Settings().metrics.host
    settings = settings_for(metrics__port=0, metrics__host=default_host)
    create_topics(settings)
    with WorkerThread(settings) as worker:
        server = worker.worker.metrics._server
        assert server is not None
        assert server.server_address[0] == "127.0.0.1"


def test_the_sasl_password_never_reaches_the_log_even_at_debug(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for(
        security__protocol="SASL_PLAINTEXT",
        security__sasl_mechanism="PLAIN",
        security__sasl_username="svc",
        security__sasl_password="placeholder",
        connect_timeout_s=3,
    )
    password = "hunter2-not-in-logs"
    # The settings file masks secrets, so the password comes from the environment, as in a deployment.
    worker = WorkerProcess(
        settings,
        tmp_path,
        "sasl",
        extra_env={"LABELFLOW_SECURITY__SASL_PASSWORD": password},
        log_level="DEBUG",
    ).start()
    try:
        assert worker.process is not None
        worker.process.wait(timeout=90)  # the embedded broker speaks no SASL: the worker gives up
    finally:
        worker.ensure_stopped()
    log = worker.log()
    # kafka-python logged its configuration, password included, at DEBUG: now masked.
    assert "Starting KafkaAdminClient with configuration" in log
    assert "'sasl_plain_password': '**********'" in log
    assert password not in log


def test_inspect_escapes_control_characters_in_label_names(
    settings_for: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(topics__partitions=1)
    create_topics(settings)
    evil = "evil\x1b[2J\x07\nlabel"
    send(settings, documents(settings, 0, 20, labels=[evil, "plain"]))
    with WorkerThread(settings) as worker:
        worker.wait_for(lambda p: p.learned >= 20, 60, "20 documents learned")
    capsys.readouterr()
    assert main(["inspect", str(settings.checkpoint.dir)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b[2J\\x07\\nlabel" in out


@pytest.mark.slow
def test_predictions_out_counts_what_this_process_produced_replays_included(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    # Checkpoints only when a partition is first seen and at shutdown: a kill -9 after that leaves
    # predictions the next process replays.
    settings = settings_for(topics__partitions=1, checkpoint__interval_s=600.0)
    create_topics(settings)
    first = WorkerProcess(with_overrides(settings, metrics__port=free_port()), tmp_path, "first")
    second_settings = with_overrides(settings, metrics__port=free_port())
    second = WorkerProcess(second_settings, tmp_path, "second")
    with TopicCollector(settings, settings.topics.predictions) as predictions:
        try:
            first.start()
            send(settings, documents(settings, 0, 50))
            predictions.wait_until(lambda r: len(r) >= 50, 60, "50 predictions")
            wait_for(lambda: len(CheckpointStore(settings.checkpoint.dir).paths()) > 0, 30, "a checkpoint")
            send(settings, documents(settings, 50, 50))
            predictions.wait_until(lambda r: len(r) >= 100, 60, "100 predictions")
            first.kill()
            before = len(predictions.drain(idle_s=0.5))

            second.start()
            port = second_settings.metrics.port
            wait_for(
                lambda: scrape(port).get("labelflow_documents_in_total", (0.0, ""))[0] >= 100,
                60,
                "the replay",
            )
            predictions.drain(idle_s=1.0)
            metrics = scrape(port)
            assert second.terminate() == 0, second.log()[-3_000:]
        finally:
            first.ensure_stopped()
            second.ensure_stopped()
    produced_by_second = len(predictions.records) - before
    assert produced_by_second > 0, "nothing was replayed: the test needs a kill after the checkpoint"
    value, help_text = metrics["labelflow_predictions_out_total"]
    assert value == produced_by_second
    assert "replays after a restore included" in help_text
    # Counters restored from the checkpoint count each record once, and say so.
    value, help_text = metrics["labelflow_documents_in_total"]
    assert value == 100 and "Restored from the checkpoint" in help_text
