"""Runs the HTTP API (``http_api``) for a worker on a background thread (uvicorn).

The port is bound before the worker starts, so a port another process owns is a clear error at start
(``HttpServerError``), not a log line after the model has loaded. Readiness follows the worker: ready
once it has restored its model and subscribed, not ready while it stops; liveness ends with its loop.
"""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn

from labelflow.stream.config import HttpSettings, Settings
from labelflow.stream.http_api import Health, ModelAccess, create_http_app
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.worker import Worker

logger = logging.getLogger(__name__)

_BODY_SLACK = 64 * 1024  # a request body's bytes beyond the one document it carries


class HttpServerError(RuntimeError):
    """The HTTP API cannot listen where it was asked to."""


def worker_access(worker: Worker, settings: Settings, finished: threading.Event) -> ModelAccess:
    """How the HTTP API sees ``worker`` from another thread; ``finished`` is set when its loop has ended."""

    def runtime() -> ModelRuntime | None:
        return worker.runtime if worker.ready.is_set() else None

    def live() -> Health:
        if finished.is_set():
            return Health(ok=False, status="stopped", detail="the worker loop has ended")
        return Health(ok=True, status="live")

    def ready() -> Health:
        if finished.is_set() or worker.stopping:
            return Health(ok=False, status="stopping", detail="the worker is shutting down")
        if not worker.ready.is_set():
            return Health(ok=False, status="starting", detail="restoring the model and joining the group")
        return Health(ok=True, status="ready")

    return ModelAccess(
        runtime=runtime,
        model_version=lambda: worker.progress().learned,
        live=live,
        ready=ready,
        max_message_bytes=settings.max_message_bytes,
        extra_fields=settings.extra_fields,
        max_batch=settings.http.max_batch,
        limits=settings.decode_limits,
        # JSON whitespace and escapes may make a document's body larger than its re-encoded message
        max_body_bytes=max(settings.http.max_body_bytes, settings.max_message_bytes + _BODY_SLACK),
    )


class HttpServer:
    """The HTTP API on ``settings.host:settings.port`` (0 = a free port) until ``stop()``."""

    def __init__(self, access: ModelAccess, settings: HttpSettings) -> None:
        self.access = access
        self.settings = settings
        self.port: int | None = None
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> int:
        """Claim the port now (``HttpServerError`` when taken); the port bound."""
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.host, self.settings.port))
        except OSError as exc:
            sock.close()
            raise HttpServerError(
                f"cannot serve HTTP on {self.settings.host}:{self.settings.port}: {exc.strerror or exc} "
                "(another process owns the port? choose another with --http-port or http.port)"
            ) from None
        sock.listen(128)
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        return self.port

    def start(self) -> int:
        """Serve on a daemon thread; the port."""
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        config = uvicorn.Config(
            create_http_app(self.access), log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        sockets = [self._socket]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": sockets}, name="labelflow-http", daemon=True
        )
        self._thread.start()
        logger.info("event=http_serving url=http://%s:%d/docs", self.settings.host, self.port)
        assert self.port is not None
        return self.port

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
