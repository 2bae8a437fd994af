"""Damaged checkpoints and a real `labelflow run` (issue 13, defect 3).

A truncated or bit-flipped `model/arrays.npz` in the newest checkpoint used to exit with a BadZipFile
traceback on every start; with every checkpoint unreadable the worker silently started a new model
and its new checkpoints deleted the old ones within 40 s. Now: damage falls back to the previous
checkpoint (WARNING), no readable checkpoint means a clear error and a non-zero exit, and
`--start-new-model` starts over while keeping the damaged checkpoints on disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig
from labelflow.stream.checkpoint import CheckpointStore
from labelflow.stream.config import Settings
from labelflow.stream.testing import TopicCollector, WorkerProcess, create_topics, send, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def send_documents(settings: Settings, start: int, n: int) -> None:
    documents = SyntheticStream(SyntheticStreamConfig(seed=3, n_documents=start + n))  # the same prefix
    messages = []
    for i, document in enumerate(documents):
        if i >= start:
            value = json.dumps({"id": f"d{i}", "text": document.text, "labels": list(document.labels)})
            messages.append((settings.topics.documents, f"d{i}".encode(), value.encode()))
    send(settings, messages)


def run_until_predicted(settings: Settings, tmp_path: Path, name: str, total: int) -> WorkerProcess:
    """Run a worker process until documents d0 .. d{total-1} all have predictions, then SIGTERM it."""
    wanted = {f"d{i}" for i in range(total)}
    worker = WorkerProcess(settings, tmp_path, name).start()
    try:
        with TopicCollector(settings, settings.topics.predictions) as predictions:
            predictions.wait_until(
                lambda r: wanted <= {x.key.decode() for x in r} or not worker.alive(),
                90,
                f"{total} predictions",
            )
            assert worker.alive(), worker.log()[-3_000:]
        assert worker.terminate() == 0, worker.log()[-3_000:]
    finally:
        worker.ensure_stopped()
    return worker


def flip_one_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_damaged_checkpoints_fall_back_refuse_or_start_over_on_request(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for(topics__partitions=1, checkpoint__keep=2)
    create_topics(settings)
    store = CheckpointStore(settings.checkpoint.dir)

    # Two runs: two checkpoints (each SIGTERM writes one).
    send_documents(settings, 0, 200)
    run_until_predicted(settings, tmp_path, "first", 200)
    send_documents(settings, 200, 100)
    run_until_predicted(settings, tmp_path, "second", 300)
    older, newest = store.paths()[-2:]
    learned = {p: CheckpointStore.load(p).runtime.meta["counters"]["learned"] for p in (older, newest)}
    assert learned[older] != learned[newest]

    # A truncated arrays.npz in the newest: the worker restores the previous one and runs.
    npz = newest / "model" / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    send_documents(settings, 300, 50)
    fallback = run_until_predicted(settings, tmp_path, "fallback", 350)
    log = fallback.log()
    assert "event=checkpoint_unreadable" in log and "WARNING" in log
    assert f"event=checkpoint_restored path={older}" in log
    assert "BadZipFile" not in log.split("event=checkpoint_unreadable")[0]

    # Every checkpoint bit-flipped: a clear error, exit 1, nothing deleted.
    damaged = store.paths()
    for path in damaged:
        flip_one_bit(path / "model" / "arrays.npz")
    refused = WorkerProcess(settings, tmp_path, "refused").start()
    assert refused.process is not None
    try:
        assert refused.process.wait(timeout=60) == 1
    finally:
        refused.ensure_stopped()
    assert "none of the" in refused.log() and "--start-new-model" in refused.log()
    assert store.paths() == damaged

    # Told to start a new model: it does, and its own checkpoints never prune the damaged ones.
    fresh = WorkerProcess(settings, tmp_path, "fresh", extra_args=["--start-new-model"]).start()
    try:
        for chunk in range(3):  # new input a checkpoint interval apart: a checkpoint each, then pruning
            newest = store.paths()[-1]
            send_documents(settings, 350 + 30 * chunk, 30)
            wait_for(lambda n=newest: store.paths()[-1] != n or not fresh.alive(), 30, "a new checkpoint")
            assert fresh.alive(), fresh.log()[-3_000:]
        assert fresh.terminate() == 0
    finally:
        fresh.ensure_stopped()
    assert "event=new_model_over_unreadable_checkpoints" in fresh.log()
    assert "event=checkpoint_restored" not in fresh.log()
    assert set(damaged) <= set(store.paths())
    assert len(store.paths()) == len(damaged) + settings.checkpoint.keep
