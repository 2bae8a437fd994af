#!/usr/bin/env python3
"""Hot-standby wrapper for learners (installed in the image as ``labelflow-standby``).

    labelflow-standby [--lock-file PATH] [--metrics-port N] -- labelflow run --role all

Several learner replicas share one checkpoint directory (a ReadWriteMany volume). Each starts through
this wrapper, which takes an exclusive ``flock`` on ``<checkpoint.dir>/.leader.lock``: the first to get it
replaces itself (``exec``) by the command, which keeps the lock for its whole life (the open lock file
is inherited), so the lock is released exactly when the active learner's process ends, however it ends
(SIGTERM, crash, kill -9). The others wait without joining the consumer group (a second member would
take half the partitions and learn half a model), serving ``labelflow_learner_standby 1`` on the metrics
port so that Prometheus and the health check see a healthy standby, and take over within ``--poll-s``
of the lock being released: restore the newest checkpoint, join the same consumer group, seek to the
checkpointed offsets.

The lock is only as good as the filesystem's ``flock``: local disks, NFSv4 (emulated with POSIX locks),
CephFS and most CSI drivers for shared volumes honour it across machines; check yours before relying
on it. The runtime's own ``.lock`` in the same directory still guards against two writers.

Defaults come from the same ``LABELFLOW_*`` environment as the worker (``checkpoint.dir``,
``metrics.port``, ``metrics.host``); pass the wrapped command's settings through the environment, not its
flags, or give ``--lock-file`` and ``--metrics-port`` explicitly.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from labelflow.stream.config import SettingsError, load_settings

logger = logging.getLogger("labelflow.standby")

LOCK_NAME = ".leader.lock"
STANDBY_METRIC = "labelflow_learner_standby"
STANDBY_SINCE_METRIC = "labelflow_learner_standby_since_seconds"


class StandbyError(RuntimeError):
    """The wrapper cannot do its job (bad arguments, unusable lock file, command not found)."""


def standby_registry() -> tuple[CollectorRegistry, Gauge, Gauge]:
    """The metrics a waiting standby serves (its own registry: nothing else is exposed).

    >>> from prometheus_client import generate_latest
    >>> registry, waiting, since = standby_registry()
    >>> waiting.set(1)
    >>> "labelflow_learner_standby 1.0" in generate_latest(registry).decode()
    True
    """
    registry = CollectorRegistry(auto_describe=True)
    waiting = Gauge(
        STANDBY_METRIC,
        "1 while this learner replica waits as a hot standby for the checkpoint lock.",
        registry=registry,
    )
    since = Gauge(STANDBY_SINCE_METRIC, "Unix time at which this standby started waiting.", registry=registry)
    return registry, waiting, since


class LeaderLock:
    """An exclusive ``flock`` on a file, kept across ``exec`` by the process that wins it.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / ".leader.lock"
    >>> first, second = LeaderLock(path), LeaderLock(path)
    >>> first.try_acquire(), second.try_acquire()
    (True, False)
    >>> first.release(); second.try_acquire()
    True
    >>> second.release()
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._handle: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never blocks."""
        if self._handle is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the process lifetime
        except OSError as exc:
            raise StandbyError(f"cannot open the lock file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        except OSError as exc:
            handle.close()
            raise StandbyError(
                f"the filesystem of {self.path} does not support flock: {exc.strerror or exc}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} host {socket.gethostname()} since {time.time():.0f}\n")
        handle.flush()
        self._handle = handle
        return True

    def holder(self) -> str:
        """Who holds the lock, as the holder wrote it (for log lines)."""
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def keep_across_exec(self) -> None:
        """Let the command that replaces this process inherit the locked file (and so the lock)."""
        if self._handle is None:
            raise StandbyError("the lock is not held")
        os.set_inheritable(self._handle.fileno(), True)

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _settings_defaults() -> tuple[Path, int, str]:
    # The worker's own settings model, so the wrapper and the worker agree on every default.
    settings = load_settings()
    return settings.checkpoint.dir, settings.metrics.port, settings.metrics.host


class _StopRequested(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def wait_for_lock(lock: LeaderLock, *, poll_s: float, metrics_host: str, metrics_port: int) -> None:
    """Block until ``lock`` is ours, serving the standby metrics meanwhile (not when it is free at once)."""
    if lock.try_acquire():
        return
    registry, waiting, since = standby_registry()
    server: Any = None
    if metrics_port > 0:
        server, _thread = start_http_server(metrics_port, addr=metrics_host, registry=registry)
    waiting.set(1)
    since.set(time.time())
    started = time.monotonic()
    last_log = 0.0
    logger.info("event=standby_waiting lock=%s holder=%r", lock.path, lock.holder())
    try:
        while not lock.try_acquire():
            if time.monotonic() - last_log >= 300:
                last_log = time.monotonic()
                logger.info(
                    "event=standby_still_waiting lock=%s holder=%r waited_s=%.0f",
                    lock.path,
                    lock.holder(),
                    last_log - started,
                )
            time.sleep(poll_s)
    finally:
        if server is not None:
            # The port must be free before the worker binds it.
            server.shutdown()
            server.server_close()
    logger.info("event=standby_takeover lock=%s waited_s=%.1f", lock.path, time.monotonic() - started)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelflow-standby",
        description="Run COMMAND once this replica holds the learner's checkpoint lock; wait as a hot standby until then.",
    )
    parser.add_argument(
        "--lock-file",
        type=Path,
        default=None,
        help=f"default: <checkpoint.dir>/{LOCK_NAME} from LABELFLOW_CHECKPOINT__DIR",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="port for the standby metric while waiting (default: metrics.port; -1 = none)",
    )
    parser.add_argument(
        "--poll-s", type=float, default=0.5, help="seconds between attempts at the lock (default 0.5)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise StandbyError("no command given: labelflow-standby [options] -- labelflow run ...")
    if args.poll_s <= 0:
        raise StandbyError(f"--poll-s must be positive, got {args.poll_s}")
    args.command = command
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        checkpoint_dir, port, host = _settings_defaults()
        lock = LeaderLock(args.lock_file or Path(checkpoint_dir) / LOCK_NAME)
        previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            wait_for_lock(
                lock,
                poll_s=args.poll_s,
                metrics_host=host,
                metrics_port=port if args.metrics_port is None else args.metrics_port,
            )
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        lock.keep_across_exec()
        logger.info("event=standby_exec command=%r", args.command)
        try:
            os.execvp(args.command[0], args.command)
        except OSError as exc:
            raise StandbyError(f"cannot run {args.command[0]!r}: {exc.strerror or exc}") from None
    except _StopRequested as stop:
        logger.info("event=standby_stopped signal=%s (never became active)", stop)
        return 0
    except (StandbyError, SettingsError) as exc:
        print(f"labelflow-standby: error: {exc}", file=sys.stderr)
        return 2
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    sys.exit(main())
