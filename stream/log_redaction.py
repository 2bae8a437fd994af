"""Secrets never reach a log line, at any level.

The settings printout masks secrets itself, but kafka-python logs its whole configuration at DEBUG
(``Starting KafkaAdminClient with configuration: {... 'sasl_plain_password': ...}``) and every request
it sends, the SASL authentication bytes included. A filter on the log handlers replaces each known
secret value, in any record from any logger, before it is written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "**********"


class SecretRedactor(logging.Filter):
    """Replaces known secret values in a log record's message and traceback with ``MASK``.

    >>> redactor = SecretRedactor(["hunter2"])
    >>> record = logging.LogRecord("kafka", logging.DEBUG, "f", 1, "config: %s", ({"password": "hunter2"},), None)
    >>> redactor.filter(record), record.getMessage()
    (True, "config: {'password': '**********'}")
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Also redact these values (and their escaped forms, as they appear in a ``bytes`` repr)."""
        for secret in secrets:
            if secret:
                self._secrets.add(secret)
                self._secrets.add(repr(secret.encode("utf-8"))[2:-1])

    def _redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: leave it to the formatter to report
            return True
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True


def redact_in_logs(secrets: Iterable[str]) -> None:
    """Redact ``secrets`` in everything the root logger's handlers write (installed once per handler)."""
    values = [secret for secret in secrets if secret]
    if not values:
        return
    handlers = list(logging.getLogger().handlers)
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        redactor = next((f for f in handler.filters if isinstance(f, SecretRedactor)), None)
        if redactor is None:
            redactor = SecretRedactor()
            handler.addFilter(redactor)
        redactor.add(values)
