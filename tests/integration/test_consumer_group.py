"""Two workers in one consumer group share the partitions; when one stops (SIGTERM, or kill -9), the
other takes its partitions over and no document is left without a prediction."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig
from labelflow.stream.broker import free_port
from labelflow.stream.config import Settings
from labelflow.stream.feed import FeedPlan, encode, feed
from labelflow.stream.kafka_io import build_producer
from labelflow.stream.testing import TopicCollector, WorkerProcess, create_topics, wait_for, with_overrides

pytestmark = [pytest.mark.broker, pytest.mark.slow]

N_DOCUMENTS = 2_400
PARTITIONS = 4


def gauge(port: int, name: str) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return -1.0
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


class SlowFeeder(threading.Thread):
    """Sends the stream at a steady rate, so that a worker stops in the middle of it."""

    def __init__(self, settings: Settings, rate: float) -> None:
        super().__init__(daemon=True)
        documents = (
            d.to_dict()
            for d in SyntheticStream(SyntheticStreamConfig(seed=5, n_documents=N_DOCUMENTS, drift_events=[]))
        )
        self.messages = list(
            feed(documents, FeedPlan(labelled_fraction=0.5, feedback_fraction=0.3, feedback_delay=50, seed=5))
        )
        self.ids = {m["id"] for kind, m in self.messages if kind == "document"}
        self.settings = settings
        self.rate = rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        producer = build_producer(self.settings, enable_idempotence=False)
        topics = {"document": self.settings.topics.documents, "feedback": self.settings.topics.labels}
        started = time.monotonic()
        try:
            for kind, message in self.messages:
                key, value = encode(message)
                producer.send(topics[kind], key=key, value=value)
                if kind == "document":
                    self.sent += 1
                    if self.sent % 50 == 0:
                        producer.flush()
                        ahead = self.sent / self.rate - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
            producer.flush()
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            self.error = exc
        finally:
            producer.close()


def two_workers(
    settings: Settings, tmp_path: Path, tag: str
) -> tuple[WorkerProcess, int, WorkerProcess, int]:
    port_a, port_b = free_port(), free_port()
    a = WorkerProcess(
        with_overrides(settings, metrics__port=port_a, checkpoint__dir=str(tmp_path / f"{tag}-a")),
        tmp_path,
        f"{tag}-a",
    )
    b = WorkerProcess(
        with_overrides(settings, metrics__port=port_b, checkpoint__dir=str(tmp_path / f"{tag}-b")),
        tmp_path,
        f"{tag}-b",
    )
    return a, port_a, b, port_b


@pytest.mark.parametrize("stop", ["sigterm", "kill -9"])
def test_partitions_are_shared_and_handed_over(
    stop: str, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for(
        f"group-{stop.replace(' ', '').replace('-', '')}", topics__partitions=PARTITIONS, batch__size=100
    )
    create_topics(settings)
    a, port_a, b, port_b = two_workers(settings, tmp_path, "w")
    total_partitions = 2 * PARTITIONS  # documents and labels topics
    feeder = SlowFeeder(settings, rate=300.0)
    with TopicCollector(settings, settings.topics.predictions) as predictions:
        try:
            a.start()
            b.start()
            wait_for(
                lambda: (
                    gauge(port_a, "labelflow_assigned_partitions") > 0
                    and gauge(port_b, "labelflow_assigned_partitions") > 0
                    and gauge(port_a, "labelflow_assigned_partitions")
                    + gauge(port_b, "labelflow_assigned_partitions")
                    == total_partitions
                ),
                60,
                "both workers to hold partitions",
            )
            # The range assignor gives each worker the same partition numbers of both topics.
            assert (
                gauge(port_a, "labelflow_assigned_partitions")
                == gauge(port_b, "labelflow_assigned_partitions")
                == PARTITIONS
            )
            feeder.start()
            wait_for(
                lambda: (
                    gauge(port_a, "labelflow_predictions_out_total") > 0
                    and gauge(port_b, "labelflow_predictions_out_total") > 0
                ),
                60,
                "both workers to predict",
            )
            wait_for(lambda: feeder.sent >= N_DOCUMENTS // 3, 60, "a third of the stream to be sent")
            if stop == "sigterm":
                assert a.terminate() == 0, a.log()[-3000:]
                assert "clean=True" in a.log()  # finished its batch, flushed, checkpointed, committed, left
            else:
                a.kill()
            wait_for(
                lambda: gauge(port_b, "labelflow_assigned_partitions") == total_partitions,
                60,
                "the survivor to take every partition",
            )
            feeder.join(60)
            assert feeder.error is None
            predictions.wait_until(
                lambda r: {rec.key.decode() for rec in r} >= feeder.ids, 120, "every document's prediction"
            )
            assert b.terminate() == 0, b.log()[-3000:]
        finally:
            a.ensure_stopped()
            b.ensure_stopped()
    assert predictions.keys() == feeder.ids
    duplicates = len(predictions.records) - len(feeder.ids)
    if stop == "sigterm":
        # A graceful hand-over commits everything it produced: the survivor repeats nothing.
        assert duplicates == 0
    assert "event=partitions_assigned" in b.log()
