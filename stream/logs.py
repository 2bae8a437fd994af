"""Process-wide logging for the ``labelflow`` command: text or JSON lines, and quiet Kafka clients.

labelflow's own log messages are ``event=name key=value ...``; the JSON format keeps the message and
adds those pairs as fields, so a log pipeline can filter on ``event`` without parsing text.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# key=value pairs of an event message; values run to the next space (labelflow's messages quote none).
_PAIR = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_.]*)=(\S+)")
_RESERVED = {"time", "level", "logger", "message", "exception"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the message's key=value pairs, and the
    exception text when there is one.

    >>> record = logging.LogRecord("labelflow.x", logging.INFO, "", 0, "event=batch_done records=%d", (5,), None)
    >>> data = json.loads(JsonFormatter().format(record))
    >>> data["event"], data["records"], data["level"], data["message"]
    ('batch_done', '5', 'INFO', 'event=batch_done records=5')
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for key, value in _PAIR.findall(message):
            if key not in _RESERVED:
                data.setdefault(key, value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def log_level(value: str) -> str:
    """An argparse type: a level name in any case, or a clear error naming the choices."""
    level = value.upper()
    if level not in LOG_LEVELS:
        import argparse

        raise argparse.ArgumentTypeError(
            f"unknown log level {value!r}; choose one of {', '.join(LOG_LEVELS)}"
        )
    return level


def configure_logging(level: str, fmt: str = "text") -> None:
    """Root logging to stderr at ``level`` in ``fmt``; kafka-python only from WARNING unless DEBUG.

    kafka-python logs every connection, metadata refresh and group step at INFO (43 lines to send 5
    messages); labelflow's own events are what a user needs at INFO.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
