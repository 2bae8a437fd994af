"""The command line as a user meets it: quiet Kafka clients, validated `produce`, clear errors instead of
tracebacks, --version, JSON logs, a broker that notices a taken port, seeded `generate` ids."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from labelflow.stream.cli import main
from labelflow.stream.config import Settings
from labelflow.stream.testing import TopicCollector

pytestmark = pytest.mark.broker


def labelflow(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "labelflow.stream.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def documents_file(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"text number {i}"}) + "\n" for i in range(n)))
    return path


def test_produce_and_tail_do_not_print_the_kafka_clients_info_log(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for()
    brokers = ",".join(settings.brokers)
    data = documents_file(tmp_path / "five.jsonl", 5)
    produced = labelflow("produce", str(data), "--topic", "quiet.in", "--brokers", brokers)
    assert produced.returncode == 0, produced.stderr
    tailed = labelflow("tail", "quiet.in", "--idle-timeout", "0.5", "--brokers", brokers)
    assert tailed.returncode == 0 and len(tailed.stdout.splitlines()) == 5
    for done in (produced, tailed):
        kafka_lines = [line for line in done.stderr.splitlines() if " kafka." in line]
        assert kafka_lines == [], kafka_lines  # was 43 lines of INFO to send 5 messages
        assert len(done.stderr.splitlines()) <= 2  # labelflow's own summary event, if any


def test_produce_reports_invalid_lines_by_number_and_does_not_send_them(
    settings_for: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for()
    lines = [
        '{"id": "a", "text": "fine"}',
        '{"id": "b", "text": ',  # line 2: not JSON
        "",
        '{"id": "c", "text": "fine too", "label": ["x"]}',  # line 4: misspelt field
        '{"id": "d", "text": ""}',  # line 5: empty text
        '{"id": "e", "text": "fine", "split": "train"}',  # an extra field the worker keeps in meta
    ]
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(lines) + "\n")
    topic = settings.topics.documents
    brokers = ",".join(settings.brokers)
    assert main(["produce", str(data), "--set", f"topics.documents={topic}", "--brokers", brokers]) == 1
    captured = capsys.readouterr()
    assert f"{data}:2: invalid_json" in captured.err
    assert f"{data}:4: unknown_field" in captured.err and f"{data}:5: empty_value" in captured.err
    assert "sent 2 messages" in captured.out and "3 invalid lines not sent" in captured.out
    with TopicCollector(settings, topic) as collector:
        assert collector.drain(idle_s=0.5) and collector.keys() == {"a", "e"}


def test_log_format_json_gives_one_object_per_line_with_event_fields(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for()
    data = documents_file(tmp_path / "two.jsonl", 2)
    done = labelflow(
        "--log-format",
        "json",
        "produce",
        str(data),
        "--topic",
        "json.in",
        "--brokers",
        ",".join(settings.brokers),
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    produced = [r for r in records if r.get("event") == "produced"]
    assert produced and produced[0]["messages"] == "2" and produced[0]["level"] == "INFO"


def test_a_bad_log_level_is_a_one_line_error_and_version_is_printed() -> None:
    done = labelflow("--log-level", "foo", "tail", "x")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "unknown log level 'foo'; choose one of DEBUG, INFO" in done.stderr
    version = labelflow("--version")
    assert version.returncode == 0 and version.stdout.startswith("labelflow 0.")


def test_broker_fails_clearly_when_another_process_owns_the_port() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        done = labelflow("broker", "--port", str(port), timeout=60)
    assert done.returncode == 1 and "ready" not in done.stdout  # it printed "ready", then died
    assert f"port {port} on 127.0.0.1 is already in use by another process" in done.stderr


def test_generate_ids_follow_the_seed(tmp_path: Path) -> None:
    def ids(seed: int, name: str) -> list[str]:
        out = tmp_path / name
        assert main(["generate", "--out", str(out), "--documents", "50", "--seed", str(seed)]) == 0
        return [json.loads(line)["id"] for line in out.read_text().splitlines()]

    first, again, other = ids(7, "a.jsonl"), ids(7, "b.jsonl"), ids(8, "c.jsonl")
    assert first == again  # the same seed is the same stream, ids included
    assert not set(first) & set(other)  # was: every id of a second feed run a duplicate
