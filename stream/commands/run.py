"""``labelflow run``: the long-running worker."""

from __future__ import annotations

import argparse
import logging

from labelflow.stream.app import Application
from labelflow.stream.checkpoint import CheckpointError
from labelflow.stream.commands.common import SettingsError, add_settings_arguments, fail, settings_from_args
from labelflow.stream.heap import tune_garbage_collection
from labelflow.stream.http_server import HttpServerError
from labelflow.stream.kafka_io import BrokerUnavailable, CodecUnavailable
from labelflow.stream.metrics import MetricsServerError
from labelflow.stream.model_runtime import ModelSetupError
from labelflow.stream.worker import ProduceError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a worker: documents in, predictions out, learning online (stops on SIGTERM/Ctrl-C)",
        description="Run a labelflow worker. Settings come from --config (YAML), LABELFLOW_* environment "
        "variables, --set KEY=VALUE and the flags below (later wins).",
    )
    add_worker_arguments(parser, http_port_default=None)
    parser.set_defaults(func=run)


def add_worker_arguments(parser: argparse.ArgumentParser, http_port_default: int | None) -> None:
    """The flags of a worker (``run`` and ``serve``); ``serve`` turns the HTTP API on by default."""
    add_settings_arguments(parser)
    parser.add_argument(
        "--http-port",
        type=int,
        default=http_port_default,
        help="HTTP API port: predictions, health, OpenAPI at /docs (0 = any free port, -1 = off; "
        f"default {'off' if http_port_default is None else http_port_default})",
    )
    parser.add_argument("--http-host", help="HTTP API address (default 127.0.0.1; 0.0.0.0 in containers)")
    parser.add_argument("--group-id", help="consumer group (one group per model)")
    parser.add_argument("--checkpoint-dir", help="checkpoint directory (one per worker)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (0 = any free port, -1 = off)")
    parser.add_argument(
        "--role",
        choices=("all", "embed", "learn"),
        help="all (default: embed, predict and learn), embed (stateless embed stage) or learn (reads the embed stage's topic)",
    )
    parser.add_argument("--learner", help="learner name from the registry (default partitioned)")
    parser.add_argument("--embedder", help="embedder name from the registry (default hashing)")
    parser.add_argument("--batch-size", type=int, help="records per micro-batch")
    parser.add_argument(
        "--start-new-model",
        action="store_const",
        const="new_model",
        dest="on_unreadable",
        help="when checkpoints exist but none can be read, start a new model instead of refusing to start "
        "(checkpoint.on_unreadable=new_model; the damaged checkpoints are kept)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(
            args,
            group_id=args.group_id,
            **{
                "checkpoint.dir": args.checkpoint_dir,
                "metrics.port": args.metrics_port,
                "role": args.role,
                "model.learner": args.learner,
                "model.embedder": args.embedder,
                "batch.size": args.batch_size,
                "checkpoint.on_unreadable": args.on_unreadable,
                "http.port": args.http_port,
                "http.host": args.http_host,
            },
        )
    except SettingsError as exc:
        return fail(str(exc))
    app = Application(settings)
    try:
        app.worker  # noqa: B018 - builds the model before the start-up heap is frozen
        tune_garbage_collection()
        app.run()
    except (
        HttpServerError,
        CheckpointError,
        BrokerUnavailable,
        CodecUnavailable,
        ModelSetupError,
        ProduceError,
        MetricsServerError,
    ) as exc:
        return fail(str(exc), code=1)
    return 0
