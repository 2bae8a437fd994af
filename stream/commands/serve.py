"""``labelflow serve``: a worker with its HTTP API on (predictions from the live model, health, OpenAPI)."""

from __future__ import annotations

import argparse

from labelflow.stream.commands.run import add_worker_arguments, run

DEFAULT_HTTP_PORT = 8080


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run a worker with an HTTP API: POST /predict, /predict/batch, GET /health/live, /health/ready",
        description="Run a labelflow worker (as `labelflow run`) that also answers HTTP: predictions for one "
        "or a batch of documents from the live model, liveness and readiness, and OpenAPI docs at /docs "
        f"(port {DEFAULT_HTTP_PORT} unless --http-port says otherwise).",
    )
    add_worker_arguments(parser, http_port_default=DEFAULT_HTTP_PORT)
    parser.set_defaults(func=run)
