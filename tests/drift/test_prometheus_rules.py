"""The shipped Prometheus alert rules: valid, unit-tested with promtool, documented, on real metric names.

promtool is found or installed by deploy/prometheus/ensure_promtool.sh (the same script ``make
promtool-test`` uses). If it can be neither found nor installed these tests fail: an untested rule file
must not pass as tested.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULE_TESTS = RULES_DIR / "alerts_test.yml"
SEVERITIES = {"critical", "warning", "info"}


@pytest.fixture(scope="module")
def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def run(promtool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False, cwd=REPO
    )


def test_rule_file_is_valid(promtool):
    result = run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool):
    result = run(promtool, "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_expectation_makes_promtool_fail(promtool, tmp_path):
    # Guards against a test file that passes vacuously (e.g. if promtool stopped reading it).
    broken = RULE_TESTS.read_text().replace('summary: "labelflow worker w1 is down"', 'summary: "wrong"')
    assert broken != RULE_TESTS.read_text()
    (tmp_path / "alerts.yml").write_text(RULES.read_text())
    (tmp_path / "alerts_test.yml").write_text(broken)
    result = run(promtool, "test", "rules", str(tmp_path / "alerts_test.yml"))
    assert result.returncode != 0


def test_every_alert_has_severity_duration_and_an_existing_runbook(alert_rules):
    assert len(alert_rules) >= 5
    for rule in alert_rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert "for" in rule, f"{name} has no 'for'"
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert annotations["runbook_url"] == f"docs/runbook/{name}.md"
        runbook = REPO / annotations["runbook_url"]
        assert runbook.is_file(), f"{name}: runbook {runbook} is missing"
        assert runbook.read_text().startswith(f"# {name}"), f"{runbook} does not start with its alert's name"


def test_every_alert_is_shown_firing_in_the_unit_tests(alert_rules):
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {
        case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"] for test in tests for case in test["alert_rule_test"] if not case.get("exp_alerts")
    }
    names = {rule["alert"] for rule in alert_rules}
    assert names <= firing, f"alerts never shown firing: {sorted(names - firing)}"
    assert names <= quiet, f"alerts never shown staying quiet: {sorted(names - quiet)}"


def test_rules_use_only_series_the_worker_exposes(alert_rules):
    from labelflow.stream.metrics import WorkerMetrics

    exposed = set()
    for family in WorkerMetrics().registry.collect():
        if family.type == "counter":
            exposed.add(f"{family.name}_total")
        elif family.type == "histogram":
            exposed.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        else:
            exposed.add(family.name)
    used = set()
    for rule in alert_rules:
        used.update(re.findall(r"\blabelflow_[a-z0-9_]+", rule["expr"]))
    assert used, "no metric names found in the rule expressions"
    unknown = used - exposed
    assert not unknown, f"rules use series the worker does not expose: {sorted(unknown)}"
