"""The `labelflow` command: one sub-command per module in `labelflow.stream.commands`."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import sys
from collections.abc import Sequence

from labelflow.stream.logs import LOG_FORMATS, configure_logging, log_level

# The learners multiply small matrices per instance or micro-batch; BLAS worker threads cost more than
# they give there (measured on 2 shared cores: 17 ms with default OpenBLAS threading against 0.8 ms
# with one thread for a 256x384 by 384x32 product). Must be set before numpy is first imported; an
# explicit setting in the environment wins. Only OpenBLAS (numpy) is limited: torch keeps its own
# threads for the transformer embedder.
for _variable in ("OPENBLAS_NUM_THREADS",):
    os.environ.setdefault(_variable, "1")

# Each module defines `register(subparsers)`, which adds its sub-command and sets `func(args) -> int`.
COMMAND_MODULES: tuple[str, ...] = (
    "run",
    "serve",
    "broker",
    "produce",
    "tail",
    "inspect",
    "evaluate",
    "demo",
    "generate",
    "schemas",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelflow",
        description="Streaming multi-label document classification on Kafka.",
    )
    parser.add_argument(
        "--log-level", type=log_level, default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)"
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text (default) or json: one JSON object per line, event fields included",
    )
    parser.add_argument("--version", action="version", version=f"labelflow {package_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"labelflow.stream.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(args.log_level, args.log_format)
    return int(args.func(args) or 0)


def package_version() -> str:
    try:
        return importlib.metadata.version("labelflow")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree without an install
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
