"""Arguments every command that talks to Kafka shares: a settings file, brokers, and ``--set`` overrides."""

from __future__ import annotations

import argparse
import sys
import unicodedata
from typing import Any

from labelflow.stream.config import Settings, SettingsError, load_settings, parse_override


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="YAML settings file (environment LABELFLOW_* and flags override it)"
    )
    parser.add_argument("--brokers", metavar="HOST:PORT[,...]", help="Kafka bootstrap servers")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any setting, e.g. --set batch.size=200 --set topics.documents=my.docs (repeatable)",
    )


def settings_from_args(args: argparse.Namespace, **flags: Any) -> Settings:
    """Settings from ``--config``, the environment, ``--set`` and the command's own flags (dotted keys).

    Flags given as None are left out, so an unset flag never hides an environment variable.
    """
    overrides: dict[str, Any] = {}
    for assignment in getattr(args, "overrides", []) or []:
        path, value = parse_override(assignment)
        overrides[".".join(path)] = value
    if getattr(args, "brokers", None):
        overrides["brokers"] = args.brokers
    overrides.update({key: value for key, value in flags.items() if value is not None})
    return load_settings(getattr(args, "config", None), overrides)


def printable(text: str) -> str:
    r"""``text`` safe for a terminal: control and format characters (escape sequences, newlines,
    bidirectional overrides) shown as escapes, everything else, non-ASCII letters included, as is.

    >>> printable("sport\x1b[2J\nnews \u202e é")
    'sport\\x1b[2J\\nnews \\u202e é'
    """
    return "".join(
        ch if unicodedata.category(ch) not in _UNPRINTABLE else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


# Unicode categories that change what a terminal shows instead of showing a character.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def fail(message: str, code: int = 2) -> int:
    """Print a one-paragraph error for the user (no traceback) and return the exit status."""
    print(f"labelflow: error: {message}", file=sys.stderr)
    return code


__all__ = ["add_settings_arguments", "settings_from_args", "fail", "printable", "SettingsError"]
