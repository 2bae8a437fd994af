"""``labelflow demo``: broker, topics, a drifting synthetic stream, a worker, live progress, a summary."""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

from labelflow.stream.commands.common import fail
from labelflow.stream.demo import DemoOptions, install_interrupt, run_demo
from labelflow.stream.feed import FeedPlan


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the whole pipeline locally on a drifting synthetic stream (< 3 min)"
    )
    parser.add_argument(
        "--documents", type=int, default=10_000, help="synthetic documents to stream (default 10,000)"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="stream this JSON-lines file (id, text, labels) instead"
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="seed of the synthetic stream and of the label plan"
    )
    parser.add_argument(
        "--labelled", type=float, default=0.5, help="share of documents with inline labels (default 0.5)"
    )
    parser.add_argument(
        "--feedback", type=float, default=0.3, help="share labelled later by feedback (default 0.3)"
    )
    parser.add_argument(
        "--feedback-delay", type=int, default=200, help="documents between a document and its feedback"
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="documents per second to send (default: as fast as possible)"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path(".labelflow/demo"), help="checkpoints, logs, plot, metrics"
    )
    parser.add_argument("--metrics-port", type=int, default=0, help="Prometheus port (default: a free one)")
    parser.add_argument(
        "--timeout", type=float, default=170.0, help="stop after this many seconds (default 170)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if logging.getLogger().getEffectiveLevel() <= logging.INFO and args.log_level.upper() == "INFO":
        # The live status line is the demo's output; per-batch logs would scroll it away.
        logging.getLogger().setLevel(logging.WARNING)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # kafka-python reports every closed connection at ERROR when the demo tears its clients down.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        plan = FeedPlan(args.labelled, args.feedback, args.feedback_delay, seed=args.seed)
    except ValueError as exc:
        return fail(str(exc))
    options = DemoOptions(
        n_documents=args.documents,
        data=args.data,
        seed=args.seed,
        plan=plan,
        work_dir=args.work_dir,
        metrics_port=args.metrics_port,
        rate=args.rate,
        timeout_s=args.timeout,
    )
    stop = threading.Event()
    restore = install_interrupt(stop)
    try:
        summary = run_demo(options, stop=stop)
    except (RuntimeError, ValueError, OSError) as exc:
        return fail(str(exc), code=1)
    finally:
        restore()
    return 0 if summary.completed or stop.is_set() else 1
