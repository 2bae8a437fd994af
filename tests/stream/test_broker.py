"""The embedded broker: starts on a free port, serves Kafka clients, stops, and never outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from labelflow.stream.broker import EmbeddedBroker, tansu_binary

pytestmark = pytest.mark.broker


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_binary_is_found() -> None:
    assert tansu_binary().name == "tansu"


def test_start_serve_and_stop(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    with EmbeddedBroker(log_file=log) as broker:
        pid = broker.pid
        assert broker.running() and broker.bootstrap_servers.startswith("127.0.0.1:")
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        admin.create_topics([NewTopic("smoke", 2, 1)])
        assert "smoke" in admin.list_topics()
        admin.close()
    assert pid is not None and wait_gone(pid)
    assert not broker.running()
    assert log.read_text().strip(), "the broker's output goes to its log file"
    broker.stop()  # a second stop is harmless


def test_two_brokers_get_different_ports() -> None:
    with EmbeddedBroker() as a, EmbeddedBroker() as b:
        assert a.port != b.port


def test_the_broker_dies_with_its_parent(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from labelflow.stream.broker import EmbeddedBroker\n"
        "b = EmbeddedBroker().start()\n"
        "print(b.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        broker_pid = int(parent.stdout.readline())
        assert pid_alive(broker_pid)
        parent.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the kernel can stop the broker
        parent.wait(10)
        assert wait_gone(broker_pid), "the broker outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_broker_command_runs_in_the_foreground_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "labelflow.stream.cli", "broker", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("broker ready: bootstrap servers 127.0.0.1:"), line
        bootstrap = line.split()[4]
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        assert admin.list_topics() == []
        admin.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
