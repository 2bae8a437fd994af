"""kill -9 of a worker in the middle of a stream, then a restart: nothing lost, nothing learned twice."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig
from labelflow.stream.broker import free_port
from labelflow.stream.checkpoint import CheckpointStore
from labelflow.stream.config import Settings
from labelflow.stream.feed import FeedPlan, encode, feed
from labelflow.stream.quality import QualityTracker
from labelflow.stream.testing import (
    TopicCollector,
    WorkerProcess,
    WorkerThread,
    create_topics,
    send,
    wait_for,
    with_overrides,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

N_DOCUMENTS = 5_000
PLAN = FeedPlan(labelled_fraction=0.5, feedback_fraction=0.3, feedback_delay=100, seed=21)


def stream_messages() -> tuple[list[tuple[str, dict[str, Any]]], dict[str, int]]:
    documents = (
        d.to_dict() for d in SyntheticStream(SyntheticStreamConfig(seed=21, n_documents=N_DOCUMENTS))
    )
    messages = list(feed(documents, PLAN))
    counts = {
        "documents": sum(kind == "document" for kind, _ in messages),
        "inline": sum(kind == "document" and "labels" in m for kind, m in messages),
        "feedback": sum(kind == "feedback" for kind, _ in messages),
    }
    return messages, counts


def send_all(settings: Settings, messages: list[tuple[str, dict[str, Any]]]) -> None:
    topics = {"document": settings.topics.documents, "feedback": settings.topics.labels}
    send(settings, ((topics[kind], *encode(message)) for kind, message in messages))


def counter(port: int, name: str) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return -1.0
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def final_quality(settings: Settings) -> tuple[dict[str, Any], float, dict[str, Any]]:
    checkpoint = CheckpointStore(settings.checkpoint.dir).latest()
    assert checkpoint is not None
    quality_state = checkpoint.runtime.detach("quality")
    quality = QualityTracker.from_state(quality_state, int(quality_state.meta["window"]))
    return checkpoint.runtime.meta["counters"], quality.micro_f1_cumulative, checkpoint.model.meta


def test_kill_9_mid_stream_then_restart(settings_for: Callable[..., Settings], tmp_path: Path) -> None:
    messages, counts = stream_messages()
    labelled = counts["inline"] + counts["feedback"]
    all_ids = {m["id"] for kind, m in messages if kind == "document"}

    # Checkpoints less often than batches: the kill then loses work that the restart must redo.
    # One partition per input topic: Kafka orders records within a partition only.
    settings = settings_for("crash", checkpoint__interval_s=2.0, topics__partitions=1, batch__size=100)
    create_topics(settings)
    send_all(settings, messages)

    # The reference: the same records (same topics, so the same timestamps and hence the same order
    # across the documents and labels topics), uninterrupted, with a group, checkpoint dir and outputs
    # of its own.
    reference = with_overrides(
        settings,
        group_id=f"{settings.group_id}-reference",
        checkpoint__dir=str(tmp_path / "reference-checkpoints"),
        checkpoint__interval_s=60.0,
        topics__predictions=f"{settings.topics.predictions}-reference",
        topics__drift=f"{settings.topics.drift}-reference",
        topics__deadletter=f"{settings.topics.deadletter}-reference",
    )
    with WorkerThread(reference) as worker:
        worker.wait_for(
            lambda p: p.documents_in >= counts["documents"] and p.feedback_in >= counts["feedback"],
            240,
            "the reference run",
        )
    ref_counters, ref_f1, _ = final_quality(reference)
    assert ref_counters["learned"] == {"inline": counts["inline"], "feedback": counts["feedback"]}

    first = WorkerProcess(with_overrides(settings, metrics__port=free_port()), tmp_path, "crash-first")
    second_settings = with_overrides(settings, metrics__port=free_port())
    second = WorkerProcess(second_settings, tmp_path, "crash-second")
    with TopicCollector(settings, settings.topics.predictions) as predictions:
        try:
            first.start()
            predictions.wait_until(
                lambda r: len(r) >= N_DOCUMENTS * 2 // 5, 180, "the first 40% of predictions"
            )
            wait_for(
                lambda: len(CheckpointStore(settings.checkpoint.dir).paths()) > 0, 30, "a first checkpoint"
            )
            first.kill()  # SIGKILL: no batch finished, no checkpoint, no commit, no group leave
            before_restart = len(predictions.records)
            assert before_restart < N_DOCUMENTS, "the worker finished before it could be killed"

            second.start()
            port = second_settings.metrics.port
            wait_for(
                lambda: (
                    counter(port, "labelflow_documents_in_total") >= counts["documents"]
                    and counter(port, "labelflow_feedback_in_total") >= counts["feedback"]
                ),
                240,
                "the restarted worker to read the whole stream",
            )
            predictions.wait_until(
                lambda r: {rec.key.decode() for rec in r} >= all_ids, 60, "every prediction"
            )
            assert second.terminate() == 0, second.log()[-3000:]
        finally:
            first.ensure_stopped()
            second.ensure_stopped()
        predictions.drain(idle_s=0.5)

    # No document without a prediction (replays after the restore may repeat some, with the same key).
    assert predictions.keys() == all_ids
    replayed = len(predictions.records) - N_DOCUMENTS
    assert replayed >= 0
    assert "event=checkpoint_restored" in second.log() and "event=seek_to_checkpoint" in second.log()

    # Every labelled document learned exactly once: the runtime's counters and the model's own count.
    crash_counters, crash_f1, model_meta = final_quality(settings)
    assert crash_counters["learned"] == {"inline": counts["inline"], "feedback": counts["feedback"]}, (
        second.log()[-3000:]
    )
    if "n_learned" in model_meta:
        assert model_meta["n_learned"] == labelled
    assert crash_counters["documents_in"] == counts["documents"]
    assert crash_counters["feedback_in"] == counts["feedback"]
    print(
        f"crash test: killed after {before_restart} predictions, {replayed} replayed, micro-F1 {crash_f1:.4f} vs {ref_f1:.4f}"
    )
    assert abs(crash_f1 - ref_f1) <= 0.01, (crash_f1, ref_f1)

    # One partition per input topic: the run restored after the kill ends with exactly the model of the
    # uninterrupted run, every array bit for bit (docs/operations.md, Delivery guarantees).
    reference_checkpoint = CheckpointStore(reference.checkpoint.dir).latest()
    crash_checkpoint = CheckpointStore(settings.checkpoint.dir).latest()
    assert reference_checkpoint is not None and crash_checkpoint is not None
    expected, restored = reference_checkpoint.model.arrays, crash_checkpoint.model.arrays
    assert sorted(restored) == sorted(expected)
    differing = [
        name
        for name, value in expected.items()
        if restored[name].shape != value.shape
        or not np.array_equal(restored[name], value, equal_nan=value.dtype.kind == "f")
    ]
    assert differing == [], f"{len(differing)} of {len(expected)} model arrays differ: {differing[:10]}"
