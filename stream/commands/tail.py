"""``labelflow tail TOPIC``: print a topic's messages from the beginning (no consumer group joined)."""

from __future__ import annotations

import argparse
import json
import sys

from labelflow.stream.commands.common import SettingsError, add_settings_arguments, fail, settings_from_args
from labelflow.stream.kafka_io import BrokerUnavailable, CodecUnavailable
from labelflow.stream.topic_reader import TopicNotFound, read_topic


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tail", help="print a topic's messages from its beginning")
    parser.add_argument("topic", help="topic name, e.g. labelflow.predictions")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep waiting for new messages (Ctrl-C stops)"
    )
    parser.add_argument("-n", "--max", type=int, default=None, help="stop after this many messages")
    parser.add_argument(
        "--idle-timeout", type=float, default=2.0, help="without --follow, stop after this many idle seconds"
    )
    parser.add_argument(
        "--with-meta", action="store_true", help="print partition, offset and key with each value (JSON)"
    )
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        return fail(str(exc))
    out = sys.stdout
    try:
        for record in read_topic(
            settings, args.topic, idle_timeout_s=args.idle_timeout, follow=args.follow, max_messages=args.max
        ):
            value = (record.value or b"").decode("utf-8", errors="replace")
            if args.with_meta:
                key = None if record.key is None else record.key.decode("utf-8", errors="replace")
                line = json.dumps(
                    {"partition": record.partition, "offset": record.offset, "key": key, "value": value}
                )
            else:
                line = value
            out.write(line + "\n")
            out.flush()
    except (BrokerUnavailable, CodecUnavailable, TopicNotFound) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `labelflow tail T | head` closed the pipe: not an error
        return 0
    return 0
