"""``labelflow produce FILE --topic T``: send a JSON-lines file (or stdin) to a topic, key = id."""

from __future__ import annotations

import argparse
import logging

from labelflow.stream.commands.common import SettingsError, add_settings_arguments, fail, settings_from_args
from labelflow.stream.jsonl import iter_lines, open_lines, produce_lines
from labelflow.stream.kafka_io import BrokerUnavailable, build_producer, ensure_topics

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("produce", help="send a JSON-lines file to a topic (key = each line's id)")
    parser.add_argument("file", help="JSON-lines file, one message per line; - reads standard input")
    parser.add_argument("--topic", help="target topic (default: the documents topic of the settings)")
    parser.add_argument(
        "--partitions", type=int, default=None, help="partitions if the topic must be created"
    )
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        return fail(str(exc))
    topic = args.topic or settings.topics.documents
    try:
        if settings.create_topics:
            ensure_topics(settings, {topic: args.partitions or settings.topics.partitions})
        producer = build_producer(settings)
        try:
            with open_lines(args.file) as handle:
                report = produce_lines(producer, topic, iter_lines(handle))
        finally:
            producer.close()
    except OSError as exc:
        return fail(f"cannot read {args.file}: {exc.strerror or exc}")
    except BrokerUnavailable as exc:
        return fail(str(exc))
    logger.info("event=produced topic=%s messages=%d unkeyed=%d", topic, report.sent, report.unkeyed)
    print(
        f"sent {report.sent} messages to {topic}"
        + (f" ({report.unkeyed} without an id, sent unkeyed)" if report.unkeyed else "")
    )
    return 0
