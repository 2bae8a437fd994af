"""The learner's hot standby, end to end: two `labelflow run` learners behind `labelflow-standby` on one
checkpoint directory and the real broker. Only one runs; when it is killed, the other restores its
checkpoint, joins the same consumer group and predicts every later document."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from labelflow.stream.broker import EmbeddedBroker, free_port
from labelflow.stream.config import Settings
from labelflow.stream.testing import TopicCollector, isolated_settings, send

from .support import DOCKER, load_script

pytestmark = [pytest.mark.broker, pytest.mark.slow]

healthcheck = load_script(DOCKER / "healthcheck.py")
create_topics = load_script(DOCKER / "create_topics.py")


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                for log in logs
                if log.exists()
            )
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{tails}")
        time.sleep(0.1)


class Replica:
    """One learner replica as the StatefulSet runs it: labelflow-standby -- labelflow run."""

    def __init__(self, name: str, settings: Settings, work_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.config = work_dir / f"{name}.yaml"
        self.config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
        self.log = work_dir / f"{name}.log"
        self.lock = Path(settings.checkpoint.dir) / ".leader.lock"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Replica:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABELFLOW_")}
        command = [
            sys.executable,
            str(DOCKER / "standby.py"),
            "--lock-file",
            str(self.lock),
            "--metrics-port",
            str(self.port),
            "--",
            sys.executable,
            "-m",
            "labelflow.stream.cli",
            "run",
            "--role",
            "all",
            "--config",
            str(self.config),
            "--metrics-port",
            str(self.port),
            "--set",
            f"client_id={self.name}",
            "--set",
            "metrics.host=127.0.0.1",
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        return self

    def health(self) -> str:
        return healthcheck.check("127.0.0.1", self.port, 0.5).reason

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def documents(start: int, count: int) -> list[tuple[str, bytes, bytes]]:
    return [
        (
            "",
            f"d{i}".encode(),
            json.dumps(
                {"id": f"d{i}", "text": f"wheat corn harvest {i % 7} report", "labels": [f"l{i % 3}"]}
            ).encode(),
        )
        for i in range(start, start + count)
    ]


def test_the_standby_takes_over_from_a_killed_learner(broker: EmbeddedBroker, tmp_path: Path) -> None:
    tag = f"failover-{uuid.uuid4().hex[:6]}"
    settings = isolated_settings(
        broker.bootstrap_servers,
        tmp_path,
        tag,
        model__embedder_kwargs={"n_features": 2**12},
        create_topics=False,
    )
    create_topics.ensure_deployment_topics(settings, replication_factor=1)
    first, second = Replica("learner-0", settings, tmp_path), Replica("learner-1", settings, tmp_path)
    logs = [first.log, second.log]
    try:
        first.start()
        wait_until(lambda: first.health() == "worker loop running", 90, "the first replica's worker", logs)
        second.start()
        wait_until(lambda: "standby" in second.health(), 60, "the second replica to wait as a standby", logs)

        with TopicCollector(settings, settings.topics.predictions) as predictions:
            send(settings, [(settings.topics.documents, key, value) for _, key, value in documents(0, 200)])
            predictions.wait_until(
                lambda r: len({x.key for x in r}) >= 200, 60, "predictions of the active learner"
            )
            # A checkpoint covering those documents (written every second here).
            wait_until(
                lambda: "event=checkpoint_written" in first.log.read_text(errors="replace"),
                30,
                "a checkpoint",
                logs,
            )
            assert "standby" in second.health(), "the standby must not join while the active learner runs"

            first.process.kill()  # a crash: no shutdown, no leaving the group
            first.process.wait(10)
            wait_until(lambda: second.health() == "worker loop running", 90, "the standby to take over", logs)
            log = second.log.read_text(errors="replace")
            assert "event=standby_takeover" in log and "event=checkpoint_restored" in log

            send(settings, [(settings.topics.documents, key, value) for _, key, value in documents(200, 200)])
            predictions.wait_until(
                lambda r: {f"d{i}".encode() for i in range(400)} <= {x.key for x in r},
                90,
                "predictions of every document after the takeover",
            )
    finally:
        first.stop()
        second.stop()
