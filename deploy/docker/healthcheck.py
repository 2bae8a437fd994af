#!/usr/bin/env python3
"""Container health check of a labelflow worker (installed in the image as ``labelflow-healthcheck``).

The worker has no dedicated health endpoint; its Prometheus endpoint says what a health check needs:
``labelflow_worker_up`` (liveness) is 1 while the worker loop runs (after the model is built, the
checkpoint restored and the consumer subscribed) and the broker has answered within
``health.down_after_s`` (120 s); ``labelflow_worker_ready`` (readiness, ``--ready``) is the same with
``health.unready_after_s`` (15 s). Both are 0 once the loop stops, and both are computed when the
endpoint is scraped, so they cannot stay 1 while the broker is away. A learner waiting as a hot standby
(``labelflow-standby``) serves ``labelflow_learner_standby 1`` on the same port instead, and counts as
healthy: it is doing exactly what it should.

Exit status 0 means healthy, 1 unhealthy (Docker's HEALTHCHECK and Kubernetes exec probes read only the
status); one line on standard output says why.

The port comes from ``--port``, else ``LABELFLOW_METRICS__PORT``, else 8000 (the settings' default), so
a container that moves the metrics port must move it through the environment (not ``--metrics-port``)
for this check to follow.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

PORT_ENV = "LABELFLOW_METRICS__PORT"
HOST_ENV = "LABELFLOW_METRICS__HOST"
# MetricsSettings.port's default; tests/deploy checks that the two agree.
DEFAULT_PORT = 8000
WORKER_UP = "labelflow_worker_up"
WORKER_READY = "labelflow_worker_ready"
BROKER_UNREACHABLE = "labelflow_broker_unreachable_seconds"
STANDBY = "labelflow_learner_standby"


@dataclass(frozen=True)
class Health:
    """The verdict of one check: healthy or not, and the reason in words.

    >>> evaluate({"labelflow_worker_up": 1.0})
    Health(healthy=True, reason='worker loop running')
    >>> evaluate({"labelflow_worker_up": 0.0}).healthy
    False
    >>> evaluate({"labelflow_worker_ready": 0.0, "labelflow_broker_unreachable_seconds": 21.0}, ready=True)
    Health(healthy=False, reason='the broker has not answered for 21 s (labelflow_worker_ready 0)')
    """

    healthy: bool
    reason: str


def metrics_address(environ: Mapping[str, str], port: int | None = None) -> tuple[str, int]:
    """Where the worker's metrics endpoint listens, as seen from inside its container.

    >>> metrics_address({})
    ('127.0.0.1', 8000)
    >>> metrics_address({"LABELFLOW_METRICS__PORT": "9100", "LABELFLOW_METRICS__HOST": "0.0.0.0"})
    ('127.0.0.1', 9100)
    """
    if port is None:
        raw = environ.get(PORT_ENV, "").strip()
        try:
            port = int(raw) if raw else DEFAULT_PORT
        except ValueError:
            raise ValueError(f"{PORT_ENV}={raw!r} is not a port number") from None
    host = environ.get(HOST_ENV, "").strip()
    # A wildcard bind answers on loopback; a specific address must be asked for by that address.
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return host, port


def parse_samples(text: str) -> dict[str, float]:
    """Sample values by metric name (label sets summed) from a Prometheus text exposition.

    >>> parse_samples("labelflow_worker_up 1.0\\n")
    {'labelflow_worker_up': 1.0}
    """
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def evaluate(samples: Mapping[str, float], ready: bool = False) -> Health:
    """Healthy when the worker loop runs and the broker answers (liveness: ``labelflow_worker_up``,
    readiness: ``labelflow_worker_ready``), or when this process is a waiting standby."""
    metric = WORKER_READY if ready else WORKER_UP
    if samples.get(metric) == 1.0:
        return Health(True, "worker loop running")
    if samples.get(STANDBY) == 1.0:
        return Health(True, "standby learner waiting for the checkpoint lock")
    if metric in samples:
        unreachable = samples.get(BROKER_UNREACHABLE, 0.0)
        if unreachable > 0:
            return Health(
                False, f"the broker has not answered for {unreachable:.0f} s ({metric} {samples[metric]:g})"
            )
        return Health(False, f"worker loop not running ({metric} {samples[metric]:g})")
    return Health(
        False, f"the metrics endpoint serves neither {WORKER_UP} nor {STANDBY}: not a labelflow worker"
    )


def check(host: str, port: int, timeout_s: float = 5.0, ready: bool = False) -> Health:
    """Fetch ``/metrics`` from ``host:port`` and judge it."""
    if port < 0:
        return Health(False, f"the metrics endpoint is disabled ({PORT_ENV}={port}); this check needs it")
    if port == 0:
        return Health(False, f"{PORT_ENV}=0 picks a random port; set a fixed one for the health check")
    url = f"http://{host}:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback http only
            text = response.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Health(False, f"no answer from {url} (starting, or stopped): {reason}")
    try:
        samples = parse_samples(text)
    except ValueError as exc:
        return Health(False, f"{url} answered with something that is not Prometheus text: {exc}")
    return evaluate(samples, ready=ready)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labelflow-healthcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port", type=int, default=None, help=f"metrics port (default ${PORT_ENV} or {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for an answer (default 5)"
    )
    parser.add_argument(
        "--ready",
        action="store_true",
        help=f"readiness ({WORKER_READY}) instead of liveness ({WORKER_UP})",
    )
    args = parser.parse_args(argv)
    try:
        host, port = metrics_address(os.environ if environ is None else environ, args.port)
    except ValueError as exc:
        print(f"unhealthy: {exc}")
        return 1
    health = check(host, port, args.timeout, ready=args.ready)
    print(("healthy: " if health.healthy else "unhealthy: ") + health.reason)
    return 0 if health.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
