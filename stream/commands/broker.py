"""``labelflow broker``: run the embedded Kafka-protocol broker in the foreground for local development."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from labelflow.stream.broker import BrokerError, EmbeddedBroker
from labelflow.stream.commands.common import fail


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "broker", help="run a local in-memory Kafka-protocol broker (Tansu) until Ctrl-C"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on and advertise (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=9092, help="TCP port (default 9092, Kafka's; 0 picks a free one)"
    )
    parser.add_argument(
        "--log-file", default=None, help="broker log file (default: a new temporary directory)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    broker = EmbeddedBroker(host=args.host, port=args.port or None, log_file=args.log_file)
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        broker.start()
    except BrokerError as exc:
        return fail(str(exc), code=1)
    try:
        print(
            f"broker ready: bootstrap servers {broker.bootstrap_servers} (in-memory; log {broker.log_path})",
            flush=True,
        )
        print("stop with Ctrl-C", flush=True)
        while not stopping.wait(0.5):
            if not broker.running():
                return fail(
                    f"the broker exited unexpectedly; log {broker.log_path}:\n{broker.log_tail()}", code=1
                )
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
