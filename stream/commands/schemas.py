"""``labelflow schemas``: write (or check) the JSON Schemas of every message."""

from __future__ import annotations

import argparse
from pathlib import Path

from labelflow.stream.commands.common import fail
from labelflow.stream.schemas import stale_schemas, write_schemas


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("schemas", help="write the messages' JSON Schemas (docs/schemas)")
    parser.add_argument(
        "--out", type=Path, default=Path("docs/schemas"), help="directory (default docs/schemas)"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when the files differ from the models"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check:
        stale = stale_schemas(args.out)
        if stale:
            return fail(f"schemas out of date in {args.out}: {', '.join(stale)} (run `make schemas`)", code=1)
        print(f"schemas in {args.out} are up to date")
        return 0
    try:
        paths = write_schemas(args.out)
    except OSError as exc:
        return fail(f"cannot write schemas to {args.out}: {exc.strerror or exc}")
    for path in paths:
        print(f"wrote {path}")
    return 0
