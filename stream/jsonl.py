"""JSON-lines files to Kafka records: each non-blank line is one message, keyed by its ``id``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kafka import KafkaProducer

from labelflow.stream.messages import MessageError


@dataclass
class ProduceReport:
    """What ``produce_lines`` did: lines sent, how many of them had no usable ``id`` (sent unkeyed), and
    the lines refused by validation (line number, error), which were not sent."""

    sent: int = 0
    unkeyed: int = 0
    invalid: list[tuple[int, MessageError]] = field(default_factory=list)


def record_key(line: bytes) -> bytes | None:
    """The UTF-8 ``id`` of a JSON-object line, or None when the line has none (the worker dead-letters it).

    >>> record_key(b'{"id": "doc-1", "text": "x"}')
    b'doc-1'
    >>> record_key(b'not json') is None
    True
    """
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]:
        return data["id"].encode("utf-8")
    return None


@contextmanager
def open_lines(path: str | Path) -> Iterator[IO[bytes]]:
    """Open a file for reading bytes, or standard input for ``-``."""
    if str(path) == "-":
        yield sys.stdin.buffer
    else:
        with open(path, "rb") as handle:
            yield handle


def iter_lines(handle: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line) for non-blank lines without their line ending, bytes kept exactly."""
    for number, line in enumerate(handle, start=1):
        stripped = line.rstrip(b"\r\n")
        if stripped.strip():
            yield number, stripped


def produce_lines(
    producer: KafkaProducer,
    topic: str,
    lines: Iterable[tuple[int, bytes]],
    validate: Callable[[bytes], object] | None = None,
) -> ProduceReport:
    """Send each line that ``validate`` accepts (raises ``MessageError`` otherwise) to ``topic`` keyed by
    its id, then flush; refused lines are reported, not sent."""
    report = ProduceReport()
    for number, line in lines:
        if validate is not None:
            try:
                validate(line)
            except MessageError as exc:
                report.invalid.append((number, exc))
                continue
        key = record_key(line)
        producer.send(topic, key=key, value=line)
        report.sent += 1
        report.unkeyed += key is None
    producer.flush()
    return report
