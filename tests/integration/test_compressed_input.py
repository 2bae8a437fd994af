"""Compressed input from an independent client (issue 13, defect 2).

librdkafka producers (confluent-kafka here) commonly compress with lz4, snappy or zstd. Without the
codec libraries kafka-python raised UnsupportedCodecError on the first such record, and `labelflow
run` and `tail` exited: a crash loop on a real cluster. Records in every codec are produced by
confluent-kafka to the embedded broker and read by `labelflow run` (a real worker process) and
`labelflow tail`; the worker's own outputs use the configured producer compression.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from labelflow.stream.cli import main
from labelflow.stream.config import Settings
from labelflow.stream.kafka_io import build_producer
from labelflow.stream.testing import TopicCollector, WorkerProcess, create_topics

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CODECS = ("gzip", "lz4", "snappy", "zstd")
PER_CODEC = 20


def produce_compressed(settings: Settings) -> list[str]:
    """Documents in each codec (one producer per codec, so every record batch is compressed)."""
    ids: list[str] = []
    for codec in CODECS:
        producer = Producer(
            {
                "bootstrap.servers": ",".join(settings.brokers),
                "compression.type": codec,
                # Many records per batch: the codec compresses the whole batch.
                "linger.ms": 50,
                "enable.idempotence": False,
            }
        )
        for i in range(PER_CODEC):
            doc_id = f"{codec}-{i}"
            text = f"a document about topic{i % 4} written in {codec} " * 5
            value = json.dumps({"id": doc_id, "text": text, "labels": [f"topic{i % 4}"]})
            producer.produce(settings.topics.documents, key=doc_id.encode(), value=value.encode())
            ids.append(doc_id)
        assert producer.flush(30) == 0, f"{codec}: records not delivered"
    return ids


def test_records_in_every_codec_are_read_by_run_and_tail(
    settings_for: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(topics__partitions=1, producer__compression="zstd")
    create_topics(settings)
    ids = produce_compressed(settings)

    worker = WorkerProcess(settings, tmp_path, "codec-worker").start()
    try:
        with TopicCollector(settings, settings.topics.predictions) as predictions:
            predictions.wait_until(lambda r: len(r) >= len(ids), 90, "a prediction per compressed document")
        assert worker.alive(), worker.log()[-3_000:]
        assert worker.terminate() == 0, worker.log()[-3_000:]
    finally:
        worker.ensure_stopped()
    assert predictions.keys() == set(ids)
    assert "UnsupportedCodecError" not in worker.log()

    capsys.readouterr()
    args = ["tail", settings.topics.documents, "--brokers", ",".join(settings.brokers), "--idle-timeout", "2"]
    assert main(args) == 0
    tailed = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert sorted(tailed) == sorted(ids)


def test_producer_compression_is_a_validated_setting(settings_for: Callable[..., Settings]) -> None:
    assert producer_compression(settings_for(producer__compression="snappy")) == "snappy"
    assert producer_compression(settings_for()) == "lz4"
    assert producer_compression(settings_for(producer__compression="none")) is None
    with pytest.raises(ValueError, match="compression"):
        settings_for(producer__compression="brotli")


def producer_compression(settings: Settings) -> str | None:
    producer = build_producer(settings)
    try:
        return producer.config["compression_type"]
    finally:
        producer.close()
