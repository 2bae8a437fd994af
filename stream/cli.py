"""The `labelflow` command: one sub-command per module in `labelflow.stream.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

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
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
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
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
