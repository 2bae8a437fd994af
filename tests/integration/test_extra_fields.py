"""Reuters' JSON lines, as `labelflow evaluate` reads them, through a real worker: their extra `split` and
`date` fields follow the extra-fields policy instead of dead-lettering every document."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from labelflow.stream.config import Settings
from labelflow.stream.testing import TopicCollector, WorkerThread, create_topics, send

pytestmark = pytest.mark.broker

N_LINES = 2_000


def reuters_lines(datasets_dir: Path, n: int) -> list[bytes]:
    path = datasets_dir / "reuters21578_modapte" / "reuters21578_modapte.jsonl"
    with path.open("rb") as handle:
        return [line.rstrip(b"\n") for line in itertools.islice(handle, n)]


def test_reuters_lines_are_predicted_and_learned_not_dead_lettered(
    settings_for: Callable[..., Settings], datasets_dir: Path
) -> None:
    lines = reuters_lines(datasets_dir, N_LINES)
    assert all({"split", "date"} <= json.loads(line).keys() for line in lines)  # the extra fields are there
    settings = settings_for(topics__partitions=1, batch__size=500)
    create_topics(settings)
    send(settings, [(settings.topics.documents, json.loads(line)["id"].encode(), line) for line in lines])
    with (
        WorkerThread(settings) as worker,
        TopicCollector(settings, settings.topics.predictions) as predictions,
    ):
        predictions.wait_until(lambda r: len(r) >= N_LINES, 120, "a prediction per Reuters line")
        progress = worker.wait_for(lambda p: p.documents_in >= N_LINES, 30, "every line read")
    assert progress.dead_letters == 0
    assert predictions.keys() == {json.loads(line)["id"] for line in lines}
    labelled = sum(1 for line in lines if json.loads(line).get("labels") is not None)
    assert progress.learned == labelled > 1_000


def test_the_reject_policy_still_dead_letters_extra_fields(
    settings_for: Callable[..., Settings], datasets_dir: Path
) -> None:
    lines = reuters_lines(datasets_dir, 20)
    settings = settings_for(topics__partitions=1, extra_fields="reject")
    create_topics(settings)
    send(settings, [(settings.topics.documents, None, line) for line in lines])
    with WorkerThread(settings), TopicCollector(settings, settings.topics.deadletter) as letters:
        letters.wait_until(lambda r: len(r) >= len(lines), 60, "a dead letter per line")
    assert {letter["reason"] for letter in letters.values()} == {"unknown_field"}
