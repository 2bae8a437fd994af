"""The user-facing commands around the worker: produce, tail, generate, inspect, run's error handling,
and the stateless embed role feeding a learn worker."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from labelflow.stream.cli import main
from labelflow.stream.config import Settings
from labelflow.stream.testing import TopicCollector, WorkerThread, create_topics, send, with_overrides

pytestmark = pytest.mark.broker


def settings_args(settings: Settings) -> list[str]:
    return ["--brokers", ",".join(settings.brokers)]


def test_produce_then_tail(
    settings_for: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for()
    data = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": f"d{i}", "text": f"text {i}"}) for i in range(25)] + ["", "not json at all"]
    data.write_text("\n".join(lines) + "\n")
    # --no-validate: the unparseable line is sent as it is (the worker would dead-letter it).
    assert main(["produce", str(data), "--topic", "cli.in", "--no-validate", *settings_args(settings)]) == 0
    assert "sent 26 messages to cli.in (1 without an id, sent unkeyed)" in capsys.readouterr().out
    with TopicCollector(settings, "cli.in") as topic:
        records = topic.drain(idle_s=0.5)
    assert {r.key for r in records} == {f"d{i}".encode() for i in range(25)} | {None}
    assert sorted(r.value for r in records) == sorted(line.encode() for line in lines if line)

    assert main(["tail", "cli.in", "--idle-timeout", "0.5", *settings_args(settings)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert sorted(printed) == sorted(line for line in lines if line)
    assert main(["tail", "cli.in", "-n", "3", "--with-meta", *settings_args(settings)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and {"partition", "offset", "key", "value"} == set(rows[0])


def test_tail_of_a_missing_topic_and_a_bad_setting_fail_cleanly(
    settings_for: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for()
    assert main(["tail", "no.such.topic", *settings_args(settings)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", "--set", "batch.size=0", *settings_args(settings)]) == 2
    assert "batch.size (LABELFLOW_BATCH__SIZE)" in capsys.readouterr().err


def test_generate_to_a_file_and_to_a_topic(
    settings_for: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "synthetic.jsonl"
    drift = tmp_path / "drift.json"
    assert (
        main(["generate", "--out", str(out), "--documents", "300", "--seed", "3", "--drift-out", str(drift)])
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 300 and {"id", "text", "labels"} == set(rows[0])
    assert [e["kind"] for e in json.loads(drift.read_text())["drift_events"]] == [
        "label_prior",
        "label_correlation",
        "new_label",
        "vocabulary",
    ]
    settings = settings_for()
    assert (
        main(
            ["generate", "--topic", "gen.docs", "--documents", "120", "--no-drift", *settings_args(settings)]
        )
        == 0
    )
    with TopicCollector(settings, "gen.docs") as topic:
        assert len(topic.drain(idle_s=0.5)) == 120
    assert "sent 120 documents to gen.docs" in capsys.readouterr().out


def test_embed_role_feeds_a_learn_worker(settings_for: Callable[..., Settings]) -> None:
    embed = settings_for(role="embed")
    create_topics(embed)
    send(
        embed,
        [
            (
                embed.topics.documents,
                f"e{i}".encode(),
                json.dumps({"id": f"e{i}", "text": f"alpha beta {i % 4}", "labels": [f"l{i % 4}"]}).encode(),
            )
            for i in range(60)
        ]
        + [(embed.topics.documents, None, b"{broken")],
    )
    # The learn stage reads the embed stage's output as its documents topic.
    learn = with_overrides(
        embed,
        role="all",
        topics__documents=embed.topics.embedded,
        topics__embedded="unused.embedded",
        topics__predictions="learn.predictions",
        group_id=embed.group_id + "-learn",
        checkpoint__dir=str(embed.checkpoint.dir) + "-learn",
    )
    with WorkerThread(embed) as embedder, TopicCollector(embed, embed.topics.embedded) as embedded:
        embedded.wait_until(lambda r: len(r) >= 60, 60, "embedded documents")
        embedder.wait_for(lambda p: p.dead_letters == 1, 30, "the broken document's dead letter")
    first = json.loads(embedded.records[0].value)
    assert isinstance(first["features"], dict) and first["labels"] and first["text"]
    with WorkerThread(learn) as learner, TopicCollector(learn, learn.topics.predictions) as predictions:
        predictions.wait_until(lambda r: len(r) >= 60, 60, "predictions of the learn stage")
        progress = learner.wait_for(lambda p: p.learned >= 60, 30, "learning")
    assert progress.learned == 60 and predictions.keys() == {f"e{i}" for i in range(60)}
