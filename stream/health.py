"""Whether a worker is healthy, from what its broker calls report: liveness and readiness.

The worker reports every broker call that answered (``contact``) or failed (``failed``). The broker
counts as unreachable from the first failure after the last answer; readiness turns false after
``unready_after_s`` of that, liveness after ``down_after_s``. Both are also false while the worker
loop is not running. Nothing here talks to Kafka: the gauges read these properties at scrape time,
so they cannot freeze at a stale value while the loop waits on the broker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


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

    @property
    def reachable(self) -> bool:
        with self._lock:
            return self._failing_since is None

    @property
    def unreachable_s(self) -> float:
        """Seconds since the first failure after the last answer (0 while the broker answers)."""
        with self._lock:
            since = self._failing_since
        return 0.0 if since is None else max(0.0, self.clock() - since)

    @property
    def ready(self) -> bool:
        return self.running and self.unreachable_s < self.unready_after_s

    @property
    def alive(self) -> bool:
        return self.running and self.unreachable_s < self.down_after_s
