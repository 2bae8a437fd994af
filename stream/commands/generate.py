"""``labelflow generate``: write the seeded synthetic stream to a JSON-lines file or a topic."""

from __future__ import annotations

import argparse
from pathlib import Path

from labelflow.stream.commands.common import SettingsError, add_settings_arguments, fail, settings_from_args
from labelflow.stream.feed import encode
from labelflow.stream.kafka_io import BrokerUnavailable, build_producer, ensure_topics


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate", help="write the synthetic drifting stream to a file or a topic"
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="JSON-lines file to write (id, text, labels per line)")
    target.add_argument("--topic", help="topic to send the documents to (key = id)")
    parser.add_argument("--documents", type=int, default=5_000, help="number of documents (default 5,000)")
    parser.add_argument(
        "--seed",
        type=int,
        default=7,
        help="seed: the same seed always gives the same stream; ids carry it (syn-s7-0000000)",
    )
    parser.add_argument("--no-drift", action="store_true", help="a stationary stream (no scheduled drifts)")
    parser.add_argument("--drift-out", type=Path, help="also write the drift positions (JSON) here")
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig

    try:
        config = SyntheticStreamConfig(
            seed=args.seed,
            n_documents=args.documents,
            drift_events=[] if args.no_drift else None,
            # Ids carry the seed: a second run with another seed is new documents, not duplicates of
            # the first run's ids (which a worker predicts again but never learns again).
            id_prefix=f"syn-s{args.seed}-",
        )
    except ValueError as exc:
        return fail(str(exc))
    stream = SyntheticStream(config)
    if args.drift_out:
        stream.drift_events_to_json(args.drift_out)
    if args.out:
        count = stream.to_jsonl(args.out)
        print(f"wrote {count} documents to {args.out}")
    else:
        try:
            settings = settings_from_args(args)
            if settings.create_topics:
                ensure_topics(settings, {args.topic: settings.topics.partitions})
            producer = build_producer(settings)
            count = 0
            try:
                for document in stream:
                    key, value = encode(document.to_dict())
                    producer.send(args.topic, key=key, value=value)
                    count += 1
                producer.flush()
            finally:
                producer.close()
        except (SettingsError, BrokerUnavailable) as exc:
            return fail(str(exc))
        print(f"sent {count} documents to {args.topic}")
    for event in stream.drift_events:
        print(f"  drift {event.kind} at document {event.position}")
    return 0
