"""Every metric the dashboard and the alert rules query is one a worker exposes (stream/metrics.py).

The registry is built from the code (``WorkerMetrics`` and the standby wrapper's registry), with the
series suffixes Prometheus adds (``_total``, ``_bucket``, ``_count``, ``_sum``). The dashboard's PromQL
is also parsed by Prometheus' own parser (``promtool check rules`` on a throw-away rule file).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import (
    ALERTS,
    DASHBOARD,
    DEPLOY,
    PROMETHEUS_SERIES,
    PROMQL_FUNCTIONS,
    exposed_metric_names,
    load_script,
    metric_label_names,
    promql_names,
)

# Labels Prometheus attaches to every scraped series or to its ALERTS series.
TARGET_LABELS = {"job", "instance", "le", "alertname", "alertstate", "severity"}
# Grafana variables as a query would see them once substituted.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$job": ".*", "$instance": ".*"}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expr) for every panel target and annotation of the dashboard."""
    board = dashboard()
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            queries.append((f"annotation {annotation['name']!r}", annotation["expr"]))
    return queries


def alert_queries() -> list[tuple[str, str]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [
        (f"rule {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in groups
        for rule in group["rules"]
    ]


def test_the_registry_is_built_from_the_code() -> None:
    names = exposed_metric_names()
    # A counter, a histogram and a gauge of stream/metrics.py with their exposed suffixes.
    assert {
        "labelflow_documents_in_total",
        "labelflow_stage_seconds_bucket",
        "labelflow_stage_seconds_sum",
        "labelflow_checkpoint_age_seconds",
        "labelflow_learner_standby",
    } <= set(names)
    assert "labelflow_documents_in" not in names  # the bare counter name is never a series
    assert names["labelflow_drift_events_total"] == {"kind", "level"}


@pytest.mark.parametrize("source", ["dashboard", "alert rules"])
def test_every_queried_metric_exists(source: str) -> None:
    queries = dashboard_queries() if source == "dashboard" else alert_queries()
    assert queries, f"no queries found in the {source}"
    known = set(exposed_metric_names()) | PROMETHEUS_SERIES
    problems = []
    used: set[str] = set()
    for where, expr in queries:
        metrics, functions, labels = promql_names(expr)
        used |= metrics
        problems += [f"{where}: unknown metric {name}" for name in sorted(metrics - known)]
        problems += [
            f"{where}: unknown PromQL function {name}" for name in sorted(functions - PROMQL_FUNCTIONS)
        ]
        problems += [
            f"{where}: grouping by unknown label {name}"
            for name in sorted(labels - metric_label_names() - TARGET_LABELS)
        ]
    assert not problems, "\n".join(problems)
    assert used & {name for name in known if name.startswith("labelflow_")}, (
        f"the {source} queries no labelflow metric"
    )


def test_label_matchers_use_labels_of_their_metric() -> None:
    names = exposed_metric_names()
    problems = []
    for where, expr in dashboard_queries() + alert_queries():
        for metric, matchers in re.findall(r"\b(labelflow_[a-z0-9_]+)\{([^}]*)\}", expr):
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                if label not in names.get(metric, set()) | TARGET_LABELS:
                    problems.append(f"{where}: {metric} has no label {label!r}")
    assert not problems, "\n".join(problems)


def test_the_dashboard_covers_what_operators_watch() -> None:
    """The issue's list: throughput, latency per stage, consumer lag, quality, drift, clusters and labels, checkpoint age."""
    used = set()
    for _, expr in dashboard_queries():
        used |= promql_names(expr)[0]
    wanted = {
        "throughput": "labelflow_documents_in_total",
        "latency per stage": "labelflow_stage_seconds_bucket",
        "end-to-end latency": "labelflow_end_to_end_latency_seconds_bucket",
        "consumer lag": "labelflow_consumer_lag",
        "quality over time": "labelflow_micro_f1_windowed",
        "drift events": "labelflow_drift_events_total",
        "clusters": "labelflow_clusters",
        "labels": "labelflow_labels",
        "checkpoint age": "labelflow_checkpoint_age_seconds",
    }
    missing = {what: name for what, name in wanted.items() if name not in used}
    assert not missing, f"the dashboard does not show {missing}"


def test_dashboard_is_generated_from_its_script() -> None:
    build = load_script(DEPLOY / "grafana" / "build_dashboard.py")
    assert DASHBOARD.read_text(encoding="utf-8") == build.render(), (
        "run python deploy/grafana/build_dashboard.py"
    )


def test_dashboard_structure() -> None:
    board = dashboard()
    assert board["uid"] == "labelflow"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= variables
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"panel {panel['title']!r} overflows the grid"
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", (
                f"panel {panel['title']!r} does not use the data-source variable"
            )
            assert panel["targets"], f"panel {panel['title']!r} has no query"
    # Panels never overlap.
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        g = panel["gridPos"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
    # Template queries name real metrics too.
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            metric = re.match(r"label_values\((\w+)", variable["definition"]).group(1)
            assert metric in exposed_metric_names(), f"variable {variable['name']} queries unknown {metric}"


def test_dashboard_queries_parse_with_prometheus(promtool: str, tmp_path: Path) -> None:
    rules = []
    for i, (where, expr) in enumerate(dashboard_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{where}: unknown Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"promtool rejects a dashboard query:\n{result.stdout}\n{result.stderr}"
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
