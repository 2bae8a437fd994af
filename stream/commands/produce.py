"""``labelflow produce FILE --topic T``: send a JSON-lines file (or stdin) to a topic, key = id."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from labelflow.stream.commands.common import SettingsError, add_settings_arguments, fail, settings_from_args
from labelflow.stream.config import Settings
from labelflow.stream.jsonl import iter_lines, open_lines, produce_lines
from labelflow.stream.kafka_io import BrokerUnavailable, build_producer, ensure_topics
from labelflow.stream.messages import decode_document, decode_feedback, load_json_object

logger = logging.getLogger(__name__)

# Invalid lines printed one by one; the rest are counted (a wrong file should not flood the terminal).
MAX_REPORTED = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("produce", help="send a JSON-lines file to a topic (key = each line's id)")
    parser.add_argument("file", help="JSON-lines file, one message per line; - reads standard input")
    parser.add_argument("--topic", help="target topic (default: the documents topic of the settings)")
    parser.add_argument(
        "--partitions", type=int, default=None, help="partitions if the topic must be created"
    )
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="send every line as it is (to test a worker's dead-letter handling); by default each line is "
        "checked as the worker would (a Document on the documents topic, a LabelFeedback on the labels "
        "topic, a JSON object elsewhere) and invalid lines are reported with their line numbers and not sent",
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
                validate = None if args.no_validate else line_validator(settings, topic)
                report = produce_lines(producer, topic, iter_lines(handle), validate)
        finally:
            producer.close()
    except OSError as exc:
        return fail(f"cannot read {args.file}: {exc.strerror or exc}")
    except BrokerUnavailable as exc:
        return fail(str(exc))
    logger.info(
        "event=produced topic=%s messages=%d unkeyed=%d invalid=%d",
        topic,
        report.sent,
        report.unkeyed,
        len(report.invalid),
    )
    for number, error in report.invalid[:MAX_REPORTED]:
        print(f"{args.file}:{number}: {error.reason.value}: {error.detail}", file=sys.stderr)
    if len(report.invalid) > MAX_REPORTED:
        print(f"... and {len(report.invalid) - MAX_REPORTED} more invalid lines", file=sys.stderr)
    print(
        f"sent {report.sent} messages to {topic}"
        + (f" ({report.unkeyed} without an id, sent unkeyed)" if report.unkeyed else "")
        + (f"; {len(report.invalid)} invalid lines not sent" if report.invalid else "")
    )
    return 1 if report.invalid else 0


def line_validator(settings: Settings, topic: str) -> Callable[[bytes], object]:
    """What a line must be to be sent to ``topic``: what the worker accepts there."""
    limit, extra, limits = settings.max_message_bytes, settings.extra_fields, settings.decode_limits
    if topic == settings.topics.documents:
        return lambda line: decode_document(line, limit, extra, limits=limits)
    if topic == settings.topics.labels:
        return lambda line: decode_feedback(line, limit, extra, limits=limits)
    return lambda line: load_json_object(line, limit, limits=limits)
