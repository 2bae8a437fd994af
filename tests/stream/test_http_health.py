"""Liveness and readiness of the HTTP API follow the worker: starting, ready, stopping, stopped."""

from __future__ import annotations

import threading
from pathlib import Path

from labelflow.stream.config import load_settings
from labelflow.stream.http_server import worker_access
from labelflow.stream.worker import Worker


def test_health_follows_the_worker_through_its_life(tmp_path: Path) -> None:
    settings = load_settings(None, {"checkpoint.dir": str(tmp_path), "metrics.port": -1})
    worker = Worker(settings, handle_signals=False)
    finished = threading.Event()
    access = worker_access(worker, settings, finished)

    assert access.live().ok and access.runtime() is None
    starting = access.ready()
    assert not starting.ok and starting.status == "starting"

    worker.ready.set()  # what run() does once the model is restored and the group joined
    assert access.ready().ok

    worker.stop()
    stopping = access.ready()
    assert not stopping.ok and stopping.status == "stopping" and access.live().ok

    finished.set()  # the loop has ended
    assert not access.live().ok and access.live().status == "stopped"
