"""Whether a worker is healthy, from what its broker calls report: liveness and readiness.

The worker reports every broker call that answered (``contact``) or failed (``failed``). The broker
counts as unreachable from the first failure after the last answer; readiness turns false after
``unready_after_s`` of that, liveness after ``down_after_s``. Both are also false while the worker
loop is not running. Nothing here talks to Kafka: the gauges read these properties at scrape time,
so they cannot freeze at a stale value while the loop waits on the broker.

A call that never returns reports neither answer nor failure, so the worker also wraps its bounded
calls in ``waiting(bound_s)``: once such a call is ``bound_s`` overdue, the broker counts as unreachable
from that moment, and a client stuck in a call turns readiness and then liveness false (an
orchestrator restarts the worker) instead of leaving them true for ever. A long batch of model work
waits on no broker call and leaves health alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class BrokerHealth:
    """Liveness and readiness of one worker.

    Examples
    --------
    >>> now = [0.0]
    >>> health = BrokerHealth(unready_after_s=15, down_after_s=60, clock=lambda: now[0])
    >>> health.running = True
    >>> health.contact(); health.ready, health.alive
    (True, True)
    >>> health.failed(); now[0] = 20.0
    >>> health.unreachable_s, health.ready, health.alive
    (20.0, False, True)
    >>> now[0] = 61.0; health.alive
    False
    >>> health.contact(); health.ready, health.alive
    (True, True)
    >>> with health.waiting(bound_s=5):  # a call stuck for 25 s: unreachable from its 5th second
    ...     now[0] += 25; health.unreachable_s, health.ready
    (20.0, False)
    >>> health.unreachable_s, health.ready  # it returned
    (0.0, True)
    """

    def __init__(
        self, unready_after_s: float, down_after_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.unready_after_s = unready_after_s
        self.down_after_s = down_after_s
        self.clock = clock
        self.running = False  # the worker loop runs (set by the worker)
        self._lock = threading.Lock()
        self._failing_since: float | None = None
        self._last_contact: float | None = None
        self._overdue_at: float | None = None  # when the call in progress (if any) outlasts its bound

    def contact(self) -> None:
        """A broker call answered."""
        with self._lock:
            self._failing_since = None
            self._last_contact = self.clock()

    def failed(self) -> None:
        """A broker call failed (timed out, connection refused, ...)."""
        with self._lock:
            if self._failing_since is None:
                self._failing_since = self.clock()

    @contextmanager
    def waiting(self, bound_s: float) -> Iterator[None]:
        """A broker call that returns within ``bound_s`` unless the client is stuck (see the module)."""
        with self._lock:
            self._overdue_at = self.clock() + bound_s
        try:
            yield
        finally:
            with self._lock:
                self._overdue_at = None

    def _unreachable_since(self) -> float | None:
        with self._lock:
            since, overdue_at = self._failing_since, self._overdue_at
        if overdue_at is not None and self.clock() >= overdue_at:
            return overdue_at if since is None else min(since, overdue_at)
        return since

    @property
    def reachable(self) -> bool:
        return self._unreachable_since() is None

    @property
    def unreachable_s(self) -> float:
        """Seconds since the first failure after the last answer, or since a call became overdue (0 while
        the broker answers)."""
        since = self._unreachable_since()
        return 0.0 if since is None else max(0.0, self.clock() - since)

    @property
    def ready(self) -> bool:
        return self.running and self.unreachable_s < self.unready_after_s

    @property
    def alive(self) -> bool:
        return self.running and self.unreachable_s < self.down_after_s
