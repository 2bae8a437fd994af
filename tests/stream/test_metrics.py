"""Metric names: each defined once, each documented, series fed from the runtime counters."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from labelflow.stream import metrics
from labelflow.stream.metrics import MetricsServerError, WorkerMetrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"

COUNTERS = {
    metrics.DOCUMENTS_IN,
    metrics.FEEDBACK_IN,
    metrics.PREDICTIONS_OUT,
    metrics.DEAD_LETTERS,
    metrics.ROUTED,
    metrics.LEARNED,
    metrics.FEEDBACK,
    metrics.DUPLICATE_DOCUMENTS,
    metrics.EXPIRED_DOCUMENTS,
    metrics.DRIFT_EVENTS,
    metrics.CHECKPOINTS,
    metrics.COMMIT_FAILURES,
    metrics.REBALANCES,
    metrics.EVICTIONS,
}


def defined_names() -> set[str]:
    return {
        value
        for name, value in vars(metrics).items()
        if name.isupper() and isinstance(value, str) and value.startswith("labelflow_")
    }


def exposed_name(name: str) -> str:
    return f"{name}_total" if name in COUNTERS else name


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    documented = set(re.findall(r"`(labelflow_[a-z0-9_]+)`", DOC.read_text()))
    exposed = {exposed_name(name) for name in defined_names()}
    assert exposed - documented == set(), "metrics missing from docs/metrics.md"
    assert documented - exposed == set(), "docs/metrics.md names metrics that do not exist"


def test_every_defined_metric_is_registered() -> None:
    m = WorkerMetrics()
    families = {
        family.name for family in text_string_to_metric_families(generate_latest(m.registry).decode())
    }
    # prometheus_client reports counter families without their _total suffix.
    assert defined_names() <= families


def test_sync_advances_counters_to_the_runtime_totals_without_double_counting() -> None:
    m = WorkerMetrics()
    m.sync(
        {
            "documents_in": 5,
            "learned": {"inline": 2},
            "dead_letters": {"oversize": 1},
            "drift_events": {"performance/cluster": 1},
        }
    )
    m.sync(
        {
            "documents_in": 9,
            "learned": {"inline": 2, "feedback": 3},
            "dead_letters": {"oversize": 1},
            "drift_events": {"performance/cluster": 1},
        }
    )
    text = generate_latest(m.registry).decode()
    assert "labelflow_documents_in_total 9.0" in text
    assert 'labelflow_learned_documents_total{source="feedback"} 3.0' in text
    assert 'labelflow_learned_documents_total{source="inline"} 2.0' in text
    assert 'labelflow_dead_letters_total{reason="oversize"} 1.0' in text
    assert 'labelflow_drift_events_total{kind="performance",level="cluster"} 1.0' in text


def test_two_workers_have_separate_registries() -> None:
    a, b = WorkerMetrics(), WorkerMetrics()
    a.sync({"documents_in": 3})
    assert "labelflow_documents_in_total 0.0" in generate_latest(b.registry).decode()


def test_checkpoint_age_counts_from_the_last_checkpoint() -> None:
    m = WorkerMetrics()
    m.checkpoint_written(time.time() - 30)
    value = next(
        s.value
        for f in text_string_to_metric_families(generate_latest(m.registry).decode())
        for s in f.samples
        if s.name == metrics.CHECKPOINT_AGE
    )
    assert 29 <= value <= 40


def test_serving_on_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(MetricsServerError, match=f"127.0.0.1:{port}"):
            WorkerMetrics().serve("127.0.0.1", port)
    m = WorkerMetrics()
    bound = m.serve("127.0.0.1", 0)
    try:
        assert (
            b"labelflow_worker_up"
            in urllib.request.urlopen(f"http://127.0.0.1:{bound}/metrics", timeout=5).read()
        )
    finally:
        m.close()


def test_restored_counters_continue_and_per_process_counters_start_at_zero() -> None:
    # Issue 13, defect 7: predictions_out was restored from the checkpoint, so the predictions a
    # restarted worker repeats never showed, although its help text said replays were included.
    m = WorkerMetrics()
    m.sync(
        {"documents_in": 100, "predictions_out": 100, "routed": 7, "learned": {"inline": 40}}, restored=True
    )
    m.sync({"documents_in": 130, "predictions_out": 160, "routed": 9, "learned": {"inline": 50}})
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(m.registry).decode())}

    def value(name: str) -> float:
        return sum(s.value for s in families[name].samples if s.name.endswith("_total"))

    assert value(metrics.DOCUMENTS_IN) == 130 and value(metrics.LEARNED) == 50
    assert value(metrics.PREDICTIONS_OUT) == 60 and value(metrics.ROUTED) == 2
    assert "replays after a restore included" in families[metrics.PREDICTIONS_OUT].documentation
    for name in (metrics.DOCUMENTS_IN, metrics.LEARNED, metrics.DEAD_LETTERS, metrics.EVICTIONS):
        assert "Restored from the checkpoint" in families[name].documentation, name


def histogram_samples(m: WorkerMetrics) -> dict[str, float]:
    text = generate_latest(m.registry).decode()
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for family in text_string_to_metric_families(text)
        if family.name == metrics.END_TO_END_SECONDS
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_a_batch_of_latencies_is_counted_as_observing_them_one_by_one() -> None:
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]
    values = [*bounds, 0.0, -1.0, 1e-9, 0.0050001, 59.999, 61.0, 1e12, 0.3, 0.3, 0.3]
    values += [(i * 0.7919) % 70 for i in range(500)]
    one_by_one, at_once = WorkerMetrics(), WorkerMetrics()
    for batch in (values[:7], values[7:], []):
        for value in batch:
            one_by_one.end_to_end.observe(value)
        at_once.observe_latencies(batch)
    expected, got = histogram_samples(one_by_one), histogram_samples(at_once)
    assert expected.keys() == got.keys() and len(expected) == len(bounds) + 3  # +Inf, _count, _sum
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
