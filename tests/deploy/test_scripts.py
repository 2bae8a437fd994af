"""The programs the image installs, run for real: the health check against a worker's metrics endpoint,
the standby wrapper as competing processes, the topic initialiser against the embedded broker, and
the build-time model check on the bundled model."""

from __future__ import annotations

import doctest
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labelflow.stream.broker import EmbeddedBroker, free_port
from labelflow.stream.config import Settings
from labelflow.stream.kafka_io import build_admin
from labelflow.stream.metrics import WorkerMetrics

from .support import DEPLOY, DOCKER, K8S, load_script

healthcheck = load_script(DOCKER / "healthcheck.py")
standby = load_script(DOCKER / "standby.py")
create_topics = load_script(DOCKER / "create_topics.py")
bake_model = load_script(DOCKER / "bake_model.py")

SCRIPTS = [
    DOCKER / "healthcheck.py",
    DOCKER / "standby.py",
    DOCKER / "create_topics.py",
    DOCKER / "bake_model.py",
    DEPLOY / "grafana" / "build_dashboard.py",
    K8S / "render_prometheusrule.py",
]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_doctests(path: Path) -> None:
    module = load_script(path)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {path.name}"


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------- health check


@pytest.fixture
def served_metrics() -> Iterator[tuple[WorkerMetrics, int]]:
    metrics = WorkerMetrics()
    port = metrics.serve("127.0.0.1", 0)
    yield metrics, port
    metrics.close()


def test_healthy_while_the_worker_loop_runs(served_metrics: tuple[WorkerMetrics, int]) -> None:
    metrics, port = served_metrics
    metrics.up.set(1)
    assert healthcheck.check("127.0.0.1", port) == healthcheck.Health(True, "worker loop running")
    assert healthcheck.main([], environ={"LABELFLOW_METRICS__PORT": str(port)}) == 0


def test_unhealthy_when_the_loop_stopped(
    served_metrics: tuple[WorkerMetrics, int], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics, port = served_metrics
    metrics.up.set(0)
    assert healthcheck.main(["--port", str(port)], environ={}) == 1
    assert "worker loop not running" in capsys.readouterr().out


def test_unhealthy_without_an_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert healthcheck.main(["--timeout", "1"], environ={"LABELFLOW_METRICS__PORT": str(port)}) == 1
    assert f"no answer from http://127.0.0.1:{port}/metrics" in capsys.readouterr().out
    assert healthcheck.main([], environ={"LABELFLOW_METRICS__PORT": "-1"}) == 1
    assert "disabled" in capsys.readouterr().out
    assert healthcheck.main([], environ={"LABELFLOW_METRICS__PORT": "eighty"}) == 1
    assert "is not a port number" in capsys.readouterr().out


def test_healthy_as_a_waiting_standby() -> None:
    from prometheus_client import start_http_server

    registry, waiting, _since = standby.standby_registry()
    waiting.set(1)
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        health = healthcheck.check("127.0.0.1", server.server_port)
    finally:
        server.shutdown()
        server.server_close()
    assert health.healthy and "standby" in health.reason


def test_a_foreign_endpoint_is_not_healthy() -> None:
    assert not healthcheck.evaluate({"process_cpu_seconds_total": 3.0}).healthy


# ---------------------------------------------------------------------------------------- standby wrapper


def start_wrapper(lock: Path, marker: Path, metrics_port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    """labelflow-standby running a command that records it ran (and which pid held the lock)."""
    # The marker appears atomically (written aside, then renamed), holding the pid that ran the command.
    script = (
        f"import os, pathlib, time; tmp = pathlib.Path({str(marker) + '.tmp'!r}); tmp.write_text(str(os.getpid())); "
        f"os.replace(tmp, {str(marker)!r}); time.sleep(120)"
    )
    command = [sys.executable, "-c", script]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELFLOW_")}
    log = open(tmp_path / f"{marker.name}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [
            sys.executable,
            str(DOCKER / "standby.py"),
            "--lock-file",
            str(lock),
            "--metrics-port",
            str(metrics_port),
            "--poll-s",
            "0.1",
            "--",
            *command,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )


def port_is_free(port: int) -> bool:
    """Whether a worker could serve its metrics on ``port`` now (bound as prometheus_client binds it)."""
    from prometheus_client import CollectorRegistry, start_http_server

    try:
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=CollectorRegistry())
    except OSError:
        return False
    server.shutdown()
    server.server_close()
    return True


def test_one_replica_runs_the_other_waits_and_takes_over(tmp_path: Path) -> None:
    lock = tmp_path / "checkpoints" / standby.LOCK_NAME
    first_marker, second_marker = tmp_path / "first", tmp_path / "second"
    first = start_wrapper(lock, first_marker, -1, tmp_path)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_until(first_marker.exists, 20, "the first replica to run its command")
        # The command replaced the wrapper (same pid) and inherited the lock.
        assert first_marker.read_text() == str(first.pid)
        assert f"pid {first.pid} " in lock.read_text()

        port = free_port()
        second = start_wrapper(lock, second_marker, port, tmp_path)
        wait_until(lambda: healthcheck.check("127.0.0.1", port, 0.5).healthy, 20, "the standby's metrics")
        assert "standby" in healthcheck.check("127.0.0.1", port).reason
        time.sleep(0.5)
        assert not second_marker.exists(), "the standby ran its command while the lock was held"

        first.kill()  # a crash: no clean shutdown, the kernel releases the lock
        first.wait(10)
        wait_until(second_marker.exists, 20, "the standby to take over")
        assert second_marker.read_text() == str(second.pid)
        assert port_is_free(port), "the standby must free the metrics port before the worker binds it"
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)


def test_a_waiting_standby_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    lock = tmp_path / standby.LOCK_NAME
    holder = standby.LeaderLock(lock)
    assert holder.try_acquire()
    marker = tmp_path / "never"
    port = free_port()
    waiting = start_wrapper(lock, marker, port, tmp_path)
    try:
        wait_until(lambda: healthcheck.check("127.0.0.1", port, 0.5).healthy, 20, "the standby's metrics")
        waiting.send_signal(signal.SIGTERM)
        assert waiting.wait(10) == 0
        assert not marker.exists()
    finally:
        holder.release()
        if waiting.poll() is None:
            waiting.kill()


def test_the_wrapper_needs_a_command() -> None:
    with pytest.raises(standby.StandbyError, match="no command"):
        standby.parse_args(["--poll-s", "1", "--"])
    assert standby.parse_args(["--", "labelflow", "run", "--role", "all"]).command == [
        "labelflow",
        "run",
        "--role",
        "all",
    ]


# ---------------------------------------------------------------------------------------- topic initialiser


def topic_args(broker: EmbeddedBroker, tag: str, partitions: int, labels: str | None = None) -> list[str]:
    args = ["--brokers", broker.bootstrap_servers, "--set", f"topics.partitions={partitions}"]
    for name in ("documents", "labels", "predictions", "drift", "deadletter", "embedded"):
        args += ["--set", f"topics.{name}={tag}.{name}"]
    if labels:
        args += ["--set", f"topics.labels={labels}"]
    return args


def partition_counts(broker: EmbeddedBroker, prefix: str) -> dict[str, int]:
    admin = build_admin(Settings(brokers=broker.bootstrap_servers))
    try:
        names = [n for n in admin.list_topics() if n.startswith(prefix)]
        return {info["name"]: len(info["partitions"]) for info in admin.describe_topics(names)}
    finally:
        admin.close()


@pytest.mark.broker
def test_creates_every_topic_of_the_deployment(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = f"deploy-{uuid.uuid4().hex[:8]}"
    args = [
        "--replication-factor",
        "1",
        "--topic-config",
        "retention.ms=86400000",
        *topic_args(broker, tag, 4),
    ]
    assert create_topics.main(args) == 0
    assert partition_counts(broker, tag) == {
        f"{tag}.documents": 4,
        f"{tag}.labels": 4,
        f"{tag}.embedded": 4,
        f"{tag}.predictions": 4,
        f"{tag}.drift": 1,
        f"{tag}.deadletter": 1,
    }
    # Idempotent: a second run finds everything in place.
    assert create_topics.main(args) == 0
    assert "created none" in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.broker
def test_refuses_topics_that_are_not_copartitioned(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = f"deploy-{uuid.uuid4().hex[:8]}"
    admin = build_admin(Settings(brokers=broker.bootstrap_servers))
    try:
        admin.create_topics({f"{tag}.feedback": {"num_partitions": 2, "replication_factor": 1}})
    finally:
        admin.close()
    code = create_topics.main(
        ["--replication-factor", "1", *topic_args(broker, tag, 4, labels=f"{tag}.feedback")]
    )
    assert code == 1
    assert "must have the same partition count" in capsys.readouterr().err


def test_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert create_topics.main(["--replication-factor", "0"]) == 2
    assert create_topics.main(["--replication-factor", "1", "--topic-config", "retention.ms"]) == 2
    assert create_topics.main(["--replication-factor", "1", "--set", "batch.size=0"]) == 2
    assert capsys.readouterr().err.count("labelflow-create-topics: error:") == 3


def test_reports_an_unreachable_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    code = create_topics.main(
        [
            "--replication-factor",
            "1",
            "--brokers",
            f"127.0.0.1:{free_port()}",
            "--set",
            "connect_timeout_s=1",
            "--wait-s",
            "0",
        ]
    )
    assert code == 1
    assert "no Kafka broker answered" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- build-time model check


def test_torch_check_knows_the_installed_build() -> None:
    import torch

    flavour = "cuda" if torch.version.cuda else "cpu"
    version = torch.__version__.split("+")[0]
    assert bake_model.check_torch(version, flavour)["version"] == torch.__version__
    other = "cpu" if flavour == "cuda" else "cuda"
    with pytest.raises(RuntimeError, match="not the"):
        bake_model.check_torch(version, other)


@pytest.mark.model
@pytest.mark.slow
def test_the_bundled_model_loads_offline_and_static_vectors_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # The "input" method over part of the vocabulary takes seconds; the image builds the default once.
    code = bake_model.main(
        [
            "--cache-dir",
            str(tmp_path),
            "--static-kwargs",
            '{"method": "input", "dim": 32, "vocab_limit": 2000}',
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["transformer"]["dim"] == 384
    assert report["static"]["dim"] == 32
    assert (Path(report["static"]["vectors_dir"]) / "meta.json").is_file()
