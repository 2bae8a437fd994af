#!/usr/bin/env python3
"""Generate the labelflow Grafana dashboard (``dashboards/labelflow.json``) from this description.

    python deploy/grafana/build_dashboard.py            # rewrite dashboards/labelflow.json
    python deploy/grafana/build_dashboard.py --check    # exit 1 if the committed JSON is stale

The dashboard is code so that its queries stay reviewable and consistent; tests/deploy checks that the
committed JSON equals this output and that every metric it queries exists in the worker's registry
(``stream/metrics.py``). Edit this file, not the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "labelflow.json"
UID = "labelflow"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every query is limited to the selected jobs and instances.
SEL = 'job=~"$job", instance=~"$instance"'
RATE = "$__rate_interval"
# Embed workers register the model gauges too but never set them (they stay 0): model panels keep only
# workers that have scored labelled documents.
LEARNERS = f"and on (job, instance) (labelflow_quality_window_documents{{{SEL}}} > 0)"

_WIDTH = 24


class _Layout:
    """Places panels left to right in rows of 24 grid units."""

    def __init__(self) -> None:
        self.y = 0
        self.x = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, width: int, height: int) -> dict[str, int]:
        if self.x + width > _WIDTH:
            self.y += self.row_height
            self.x = 0
            self.row_height = 0
        pos = {"x": self.x, "y": self.y, "w": width, "h": height}
        self.x += width
        self.row_height = max(self.row_height, height)
        return pos

    def new_row(self) -> int:
        if self.x:
            self.y += self.row_height
        self.x = 0
        self.row_height = 0
        y = self.y
        self.y += 1
        return y

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _target(
    expr: str, legend: str, ref: str, instant: bool = False, fmt: str | None = None
) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        "range": not instant,
        "instant": instant,
    }
    if fmt:
        target["format"] = fmt
    return target


def _targets(
    queries: Sequence[tuple[str, str]], instant: bool = False, fmt: str | None = None
) -> list[dict[str, Any]]:
    return [
        _target(expr, legend, chr(ord("A") + i), instant, fmt) for i, (expr, legend) in enumerate(queries)
    ]


def timeseries(
    layout: _Layout,
    title: str,
    description: str,
    queries: Sequence[tuple[str, str]],
    *,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    min_: float | None = 0,
    max_: float | None = None,
    bars: bool = False,
    thresholds: Sequence[tuple[float, str]] = (),
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": {
            "drawStyle": "bars" if bars else "line",
            "lineWidth": 1,
            "fillOpacity": 60 if bars else 10,
            "showPoints": "never",
            "spanNulls": True,
        },
    }
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in thresholds],
        }
        defaults["custom"]["thresholdsStyle"] = {"mode": "line"}
    return {
        "id": layout.take_id(),
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": layout.place(width, height),
        "targets": _targets(queries),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    layout: _Layout,
    title: str,
    description: str,
    queries: Sequence[tuple[str, str]],
    *,
    unit: str = "short",
    width: int = 4,
    height: int = 4,
    thresholds: Sequence[tuple[float, str]] = (),
    decimals: int | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in thresholds],
        },
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "id": layout.take_id(),
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": layout.place(width, height),
        "targets": _targets(queries, instant=True),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "auto",
        },
    }


def row(layout: _Layout, title: str) -> dict[str, Any]:
    return {
        "id": layout.take_id(),
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"x": 0, "y": layout.new_row(), "w": _WIDTH, "h": 1},
    }


def _quantiles(metric: str, by: str, quantiles: Sequence[float], legend: str) -> list[tuple[str, str]]:
    group = f"le, {by}" if by else "le"
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{SEL}}}[{RATE}])))",
            legend.format(q=f"p{round(q * 100):d}"),
        )
        for q in quantiles
    ]


def panels() -> list[dict[str, Any]]:
    L = _Layout()
    out: list[dict[str, Any]] = []

    out.append(row(L, "Overview"))
    out += [
        stat(
            L,
            "Workers running",
            "Workers whose loop runs (labelflow_worker_up).",
            [(f"sum(labelflow_worker_up{{{SEL}}})", "")],
            thresholds=(),
        ),
        stat(
            L,
            "Standby learners",
            "Learner replicas waiting for the checkpoint lock (labelflow-standby).",
            [(f"sum(labelflow_learner_standby{{{SEL}}}) or vector(0)", "")],
        ),
        stat(
            L,
            "Documents/s in",
            "Records read from the input topics per second.",
            [(f"sum(rate(labelflow_documents_in_total{{{SEL}}}[{RATE}]))", "")],
            unit="ops",
            decimals=1,
        ),
        stat(
            L,
            "Windowed micro-F1",
            "Prequential micro-F1 over the quality window (learners).",
            [(f"min(labelflow_micro_f1_windowed{{{SEL}}} {LEARNERS})", "")],
            unit="percentunit",
            thresholds=((0.0, "red"), (0.5, "green")),
        ),
        stat(
            L,
            "Consumer lag",
            "Records waiting, summed over topics and workers.",
            [(f"sum(labelflow_consumer_lag{{{SEL}}})", "")],
            thresholds=((10000, "orange"),),
        ),
        stat(
            L,
            "Checkpoint age",
            "Age of the newest checkpoint (learners).",
            [(f"max(labelflow_checkpoint_age_seconds{{{SEL}}})", "")],
            unit="s",
            thresholds=((300, "orange"), (900, "red")),
        ),
    ]

    out.append(row(L, "Throughput"))
    out += [
        timeseries(
            L,
            "Documents, predictions, learning",
            "Per second: records read, predictions (or embedded documents) produced, documents learned by label source, feedback read.",
            [
                (
                    f"sum by (job) (rate(labelflow_documents_in_total{{{SEL}}}[{RATE}]))",
                    "{{job}} documents in",
                ),
                (f"sum by (job) (rate(labelflow_predictions_out_total{{{SEL}}}[{RATE}]))", "{{job}} out"),
                (
                    f"sum by (source) (rate(labelflow_learned_documents_total{{{SEL}}}[{RATE}]))",
                    "learned ({{source}})",
                ),
                (f"sum(rate(labelflow_feedback_in_total{{{SEL}}}[{RATE}]))", "feedback in"),
            ],
            unit="ops",
        ),
        timeseries(
            L,
            "Dead letters by reason",
            "Bad input sent to the dead-letter topic, per second (runbook: LabelflowDeadLettersHigh).",
            [
                (f"sum by (reason) (rate(labelflow_dead_letters_total{{{SEL}}}[{RATE}]))", "{{reason}}"),
            ],
            unit="ops",
        ),
        timeseries(
            L,
            "Records per batch",
            "Mean micro-batch size: small batches under load mean polling, not processing, is the limit.",
            [
                (
                    f"sum by (job) (rate(labelflow_batch_size_sum{{{SEL}}}[{RATE}])) / sum by (job) (rate(labelflow_batch_size_count{{{SEL}}}[{RATE}]))",
                    "{{job}}",
                ),
            ],
            width=8,
        ),
        timeseries(
            L,
            "Routed documents",
            "Documents copied to label routing topics, per second.",
            [
                (f"sum(rate(labelflow_routed_documents_total{{{SEL}}}[{RATE}]))", "routed"),
            ],
            unit="ops",
            width=8,
        ),
        timeseries(
            L,
            "Duplicates and expiries",
            "Labelled documents seen again (not relearned); unlabelled documents whose feedback never came.",
            [
                (f"sum(rate(labelflow_duplicate_documents_total{{{SEL}}}[{RATE}]))", "duplicate documents"),
                (f"sum(rate(labelflow_expired_documents_total{{{SEL}}}[{RATE}]))", "expired documents"),
            ],
            unit="ops",
            width=8,
        ),
    ]

    out.append(row(L, "Latency"))
    out += [
        timeseries(
            L,
            "Batch time per stage (p95)",
            "95th percentile of the seconds one micro-batch spends in each stage.",
            _quantiles("labelflow_stage_seconds", "stage", (0.95,), "{{stage}} {q}"),
            unit="s",
        ),
        timeseries(
            L,
            "Batch time per stage (mean)",
            "Mean seconds per micro-batch in each stage: where the time goes.",
            [
                (
                    f"sum by (stage) (rate(labelflow_stage_seconds_sum{{{SEL}}}[{RATE}])) / sum by (stage) (rate(labelflow_stage_seconds_count{{{SEL}}}[{RATE}]))",
                    "{{stage}}",
                ),
            ],
            unit="s",
        ),
        timeseries(
            L,
            "End-to-end latency",
            "From a document's record timestamp to its prediction (learners; includes time waiting in Kafka).",
            _quantiles("labelflow_end_to_end_latency_seconds", "", (0.5, 0.95, 0.99), "{q}"),
            unit="s",
            width=24,
        ),
    ]

    out.append(row(L, "Kafka"))
    out += [
        timeseries(
            L,
            "Consumer lag by topic",
            "Records not yet read (runbook: LabelflowConsumerLagGrowing). Embed lag growing: scale embed out.",
            [
                (f"sum by (job, topic) (labelflow_consumer_lag{{{SEL}}})", "{{job}} {{topic}}"),
            ],
            thresholds=((10000, "red"),),
        ),
        timeseries(
            L,
            "Assigned partitions",
            "Input partitions per worker; a standby has none.",
            [
                (f"labelflow_assigned_partitions{{{SEL}}}", "{{instance}}"),
            ],
            width=6,
        ),
        timeseries(
            L,
            "Rebalances and refused commits",
            "Partition assignments received and offset commits refused (records re-delivered).",
            [
                (
                    f"sum by (instance) (increase(labelflow_rebalances_total{{{SEL}}}[{RATE}]))",
                    "rebalances {{instance}}",
                ),
                (
                    f"sum by (instance) (increase(labelflow_commit_failures_total{{{SEL}}}[{RATE}]))",
                    "commit failures {{instance}}",
                ),
            ],
            width=6,
            bars=True,
        ),
    ]

    out.append(row(L, "Quality"))
    out += [
        timeseries(
            L,
            "Prequential quality over time",
            "Every labelled document is predicted before it is learned. Windowed over metrics.quality_window documents (runbook: LabelflowQualityBelowFloor).",
            [
                (f"labelflow_micro_f1_windowed{{{SEL}}} {LEARNERS}", "micro-F1 window {{instance}}"),
                (
                    f"labelflow_subset_accuracy_windowed{{{SEL}}} {LEARNERS}",
                    "subset accuracy window {{instance}}",
                ),
                (f"labelflow_micro_f1_cumulative{{{SEL}}} {LEARNERS}", "micro-F1 cumulative {{instance}}"),
            ],
            unit="percentunit",
            max_=1,
        ),
        timeseries(
            L,
            "Feedback outcomes",
            "Delayed labels joined to their documents (matched) or not (late, unmatched, duplicate).",
            [
                (f"sum by (outcome) (rate(labelflow_feedback_total{{{SEL}}}[{RATE}]))", "{{outcome}}"),
            ],
            unit="ops",
            width=6,
        ),
        timeseries(
            L,
            "Feedback store",
            "Documents waiting for their labels, and feedback waiting for its document.",
            [
                (f"sum by (kind) (labelflow_feedback_store_entries{{{SEL}}})", "{{kind}}"),
                (f"sum(labelflow_quality_window_documents{{{SEL}}})", "quality window documents"),
            ],
            width=6,
        ),
    ]

    out.append(row(L, "Drift"))
    out += [
        timeseries(
            L,
            "Drift events by kind and level",
            "Detections per interval; details (labels, statistic, action) on the drift topic (runbook: LabelflowDriftDetected).",
            [
                (
                    f"sum by (kind, level) (increase(labelflow_drift_events_total{{{SEL}}}[{RATE}]))",
                    "{{kind}} ({{level}})",
                ),
            ],
            width=16,
            bars=True,
        ),
        stat(
            L,
            "Drift events, last 24 h",
            "Detections in the last day, by kind.",
            [
                (f"sum by (kind) (increase(labelflow_drift_events_total{{{SEL}}}[24h]))", "{{kind}}"),
            ],
            width=8,
            height=8,
            decimals=0,
        ),
    ]

    out.append(row(L, "Labels and clusters"))
    out += [
        timeseries(
            L,
            "Labels and clusters",
            "Labels the model knows and clusters of its label partition.",
            [
                (f"max by (instance) (labelflow_labels{{{SEL}}} {LEARNERS})", "labels {{instance}}"),
                (f"max by (instance) (labelflow_clusters{{{SEL}}} {LEARNERS})", "clusters {{instance}}"),
            ],
            width=12,
        ),
        timeseries(
            L,
            "Partition version",
            "Grows with every label-structure change (runbook: LabelflowLabelStructureChurn).",
            [
                (f"max by (instance) (labelflow_partition_version{{{SEL}}} {LEARNERS})", "{{instance}}"),
            ],
            width=12,
        ),
    ]

    out.append(row(L, "Checkpoints and workers"))
    out += [
        timeseries(
            L,
            "Checkpoint age",
            "Seconds since the newest checkpoint (runbook: LabelflowCheckpointTooOld fires above 900 s while learning).",
            [
                (f"labelflow_checkpoint_age_seconds{{{SEL}}} {LEARNERS}", "{{instance}}"),
            ],
            unit="s",
            width=8,
            thresholds=((900, "red"),),
        ),
        timeseries(
            L,
            "Checkpoints written",
            "Checkpoints per interval, by worker.",
            [
                (
                    f"sum by (instance) (increase(labelflow_checkpoints_total{{{SEL}}}[{RATE}]))",
                    "{{instance}}",
                ),
            ],
            width=8,
            bars=True,
        ),
        timeseries(
            L,
            "Time since last batch",
            "An idle worker is fine; one with lag and an old batch is stalled (runbook: LabelflowWorkerStalled).",
            [
                (f"time() - labelflow_last_batch_timestamp_seconds{{{SEL}}}", "{{instance}}"),
            ],
            unit="s",
            width=8,
            thresholds=((300, "red"),),
        ),
    ]
    alerts = {
        "id": L.take_id(),
        "type": "table",
        "title": "Firing labelflow alerts",
        "description": "From Prometheus' ALERTS series; runbooks in docs/runbook/.",
        "datasource": DATASOURCE,
        "gridPos": L.place(24, 6),
        "targets": _targets(
            [('ALERTS{alertstate="firing", alertname=~"Labelflow.*"}', "")], instant=True, fmt="table"
        ),
        "fieldConfig": {"defaults": {}, "overrides": []},
        "transformations": [
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "Value": True, "__name__": True, "alertstate": True}
                },
            }
        ],
        "options": {"showHeader": True},
    }
    out.append(alerts)
    return out


def dashboard() -> dict[str, Any]:
    return {
        "uid": UID,
        "title": "labelflow",
        "description": "Streaming multi-label classification: throughput, latency per stage, consumer lag, quality, drift, label clusters, checkpoints.",
        "tags": ["labelflow", "kafka"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                },
                {
                    "name": "job",
                    "label": "Job",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "query": {"query": "label_values(labelflow_worker_up, job)", "refId": "job"},
                    "definition": "label_values(labelflow_worker_up, job)",
                    "sort": 1,
                },
                {
                    "name": "instance",
                    "label": "Instance",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "query": {
                        "query": 'label_values(labelflow_worker_up{job=~"$job"}, instance)',
                        "refId": "instance",
                    },
                    "definition": 'label_values(labelflow_worker_up{job=~"$job"}, instance)',
                    "sort": 1,
                },
            ]
        },
        "annotations": {
            "list": [
                {
                    "name": "Drift events",
                    "datasource": DATASOURCE,
                    "enable": True,
                    "iconColor": "orange",
                    "expr": f'sum by (kind, level) (increase(labelflow_drift_events_total{{{SEL}, kind!="label_structure"}}[2m])) > 0',
                    "step": "1m",
                    "titleFormat": "{{kind}} drift",
                    "textFormat": "level {{level}}",
                    "useValueForTime": False,
                },
            ]
        },
        "panels": panels(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed JSON differs from the generated one"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run python deploy/grafana/build_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
