"""deploy/alertmanager/alertmanager.yml: accepted by amtool, and consistent with the shipped alert rules.

amtool is found or installed by deploy/alertmanager/ensure_amtool.sh; if it can be neither, the check
fails: an unchecked config must not pass as checked.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from .support import ALERTS, DEPLOY

CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


@pytest.fixture(scope="module")
def amtool() -> str:
    result = subprocess.run(
        [str(DEPLOY / "alertmanager" / "ensure_amtool.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"amtool is not available and could not be installed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def test_amtool_accepts_the_config(amtool: str) -> None:
    result = subprocess.run(
        [amtool, "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, (
        f"amtool rejects the config:\n{result.stdout}\n{result.stderr}"
    )


def _matched_values(matchers: list[str], label: str) -> list[str]:
    values = []
    for matcher in matchers:
        match = re.fullmatch(rf'{label}(=~|=)"([^"]*)"', matcher.strip())
        if match:
            values += match.group(2).split("|") if match.group(1) == "=~" else [match.group(2)]
    return values


def test_routes_use_the_rules_severities() -> None:
    severities = {rule["labels"]["severity"] for rule in rules()}
    routed = set()
    for route in config()["route"].get("routes", []):
        routed |= set(_matched_values(route["matchers"], "severity"))
    assert routed <= severities, f"routes for severities no rule has: {routed - severities}"
    assert "critical" in routed, "critical alerts need their own route"


def test_inhibitions_name_real_alerts_and_labels() -> None:
    names = {rule["alert"] for rule in rules()}
    for inhibition in config()["inhibit_rules"]:
        for side in ("source_matchers", "target_matchers"):
            used = set(_matched_values(inhibition[side], "alertname"))
            assert used and used <= names, f"inhibition {side} names unknown alerts {used - names}"
        # Every alert keeps job and instance, so these labels can be compared.
        assert set(inhibition["equal"]) <= {"job", "instance"}


def test_receivers_exist() -> None:
    conf = config()
    receivers = {r["name"] for r in conf["receivers"]}
    routes = [conf["route"]] + conf["route"].get("routes", [])
    assert {route["receiver"] for route in routes} <= receivers
