"""The test helpers' failure messages: a wait that times out in CI says what the worker was doing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labelflow.stream.testing import WorkerProcess, isolated_settings, wait_for


def test_a_timed_out_wait_names_what_it_waited_for_and_what_explain_says() -> None:
    with pytest.raises(TimeoutError, match=r"waiting for the thing\nstate: stuck"):
        wait_for(lambda: False, 0.05, "the thing", interval_s=0.01, explain=lambda: "state: stuck")


def test_a_worker_diagnosis_has_its_exit_status_events_and_log_tail(tmp_path: Path) -> None:
    worker = WorkerProcess(isolated_settings("127.0.0.1:9", tmp_path), tmp_path, "w")
    assert worker.diagnosis().startswith("worker w: not started")
    worker.log_path.write_text("a INFO x event=worker_started\nnoise\nb WARNING x event=broker_unreachable\n")

    worker.process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    worker.process.wait()
    lines = worker.diagnosis(lines=2).splitlines()
    assert lines[0] == "worker w: exited 3"
    assert lines[1:4] == [
        "its events:",
        "a INFO x event=worker_started",
        "b WARNING x event=broker_unreachable",
    ]
    assert lines[4:] == ["its log's last lines:", "noise", "b WARNING x event=broker_unreachable"]
