"""`labelflow serve` as a real process on the real broker, asked with curl: predictions from the live
model (one document and a batch), validation errors, an oversized body, liveness, readiness, the OpenAPI
document."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig
from labelflow.stream.config import Settings
from labelflow.stream.feed import encode
from labelflow.stream.testing import WorkerProcess, create_topics, send, wait_for

pytestmark = pytest.mark.broker


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """(status, JSON answer) with curl, the client most services' operators reach for first."""
    curl = shutil.which("curl")
    data = None if body is None else json.dumps(body)
    if curl is not None:
        command = [curl, "-sS", "-X", method, "-w", "\n%{http_code}", url]
        if data is not None:  # from standard input: an argument holds at most 128 KiB
            command += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        done = subprocess.run(command, input=data, capture_output=True, text=True, timeout=30, check=True)
        text, _, status = done.stdout.rpartition("\n")
        return int(status), json.loads(text)
    request = urllib.request.Request(url, data=None if data is None else data.encode(), method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def serving_port(worker: WorkerProcess) -> int:
    found: list[int] = []

    def listening() -> bool:
        assert worker.alive(), worker.log()
        found.extend(int(p) for p in re.findall(r"event=http_serving url=http://[^:]+:(\d+)/", worker.log()))
        return bool(found)

    wait_for(listening, 60, "the HTTP API to listen")
    return found[0]


def test_serve_answers_predictions_and_health_from_the_live_model(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for(topics__partitions=1)
    create_topics(settings)
    stream = SyntheticStream(SyntheticStreamConfig(seed=4, n_documents=400, drift_events=[]))
    documents = [document.to_dict() for document in stream]
    worker = WorkerProcess(settings, tmp_path, "server", command="serve", extra_args=["--http-port", "0"])
    worker.start()
    try:
        base = f"http://127.0.0.1:{serving_port(worker)}"
        assert http("GET", f"{base}/health/live") == (200, {"ok": True, "status": "live"})
        wait_for(lambda: http("GET", f"{base}/health/ready")[0] == 200, 60, "readiness")
        send(settings, [(settings.topics.documents, *encode(d)) for d in documents])

        labelled = sum(1 for d in documents if "labels" in d)

        def learned() -> bool:
            status, answer = http("POST", f"{base}/predict", {"id": "probe", "text": documents[0]["text"]})
            return status == 200 and answer["model_version"] >= labelled

        wait_for(learned, 90, "the live model to learn the stream")
        status, one = http("POST", f"{base}/predict", {"id": "q1", "text": documents[-1]["text"]})
        assert (
            status == 200 and one["id"] == "q1" and one["scores"] and set(one["labels"]) <= set(one["scores"])
        )

        batch = [{"id": f"b{i}", "text": d["text"]} for i, d in enumerate(documents[:3])]
        status, answer = http("POST", f"{base}/predict/batch", {"documents": batch})
        assert status == 200 and [p["id"] for p in answer["predictions"]] == ["b0", "b1", "b2"]
        # A batch is predicted by one model state (the worker learns only between requests).
        assert all(p["model_version"] == one["model_version"] for p in answer["predictions"])

        status, problem = http("POST", f"{base}/predict", {"id": "bad", "text": ""})
        assert status == 422 and problem["reason"] == "empty_value" and problem["field"] == "text"
        status, problem = http("POST", f"{base}/predict/batch", {"documents": [{"id": "x"}] * 300})
        assert status == 413 and problem["reason"] == "batch_too_large"
        # A body over http.max_body_bytes (16 MiB) is refused before it is read or parsed (parsing a
        # 200 MB body cost the worker's process ~950 MB), and the server goes on answering.
        status, problem = http("POST", f"{base}/predict", {"id": "huge", "text": "word " * 4_000_000})
        assert (
            status == 413 and problem["reason"] == "oversize" and "http.max_body_bytes" in problem["detail"]
        )
        assert http("POST", f"{base}/predict", {"id": "q2", "text": "after"})[0] == 200

        status, spec = http("GET", f"{base}/openapi.json")
        assert status == 200 and {"/predict", "/predict/batch", "/health/live", "/health/ready"} <= set(
            spec["paths"]
        )
        body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"] == ["id"] and "text" in body["properties"]  # the published Document schema
        assert worker.terminate() == 0
    finally:
        worker.ensure_stopped()


def test_a_taken_http_port_fails_at_start_with_a_clear_error(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        worker = WorkerProcess(
            settings_for(), tmp_path, "clash", command="serve", extra_args=["--http-port", str(port)]
        )
        worker.start()
        assert worker.process is not None and worker.process.wait(timeout=60) == 1
    log = worker.log()
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in log and "Traceback" not in log
