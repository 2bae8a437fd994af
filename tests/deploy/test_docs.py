"""docs/operations.md: a runbook entry for every alert, links that resolve, commands that parse."""

from __future__ import annotations

import re
import shlex

import yaml

from .support import ALERTS, REPO, parse_labelflow_command, settings_from_env, unknown_settings_variables

OPERATIONS = REPO / "docs" / "operations.md"


def text() -> str:
    return OPERATIONS.read_text(encoding="utf-8")


def test_every_alert_has_a_row_and_a_runbook_page() -> None:
    alerts = [
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    doc = text()
    for alert in alerts:
        assert f"| `{alert}` |" in doc, f"docs/operations.md has no runbook row for {alert}"
        assert f"(runbook/{alert}.md)" in doc, f"docs/operations.md does not link the runbook page of {alert}"


def test_relative_links_resolve() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text()):
        if "://" in target:
            continue
        assert (OPERATIONS.parent / target).exists(), (
            f"docs/operations.md links {target}, which does not exist"
        )


def test_anchor_links_point_to_headings() -> None:
    doc = text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", doc, re.M)
    }
    for anchor in re.findall(r"\]\(#([^)]+)\)", doc):
        assert anchor in anchors, f"docs/operations.md links #{anchor}, which is no heading"


def test_labelflow_commands_in_the_doc_parse() -> None:
    commands = re.findall(
        r"^(?:\$ )?(labelflow (?:produce|tail|inspect|run|broker|generate)[^\n`|]*)", text(), re.M
    )
    # Inline commands with arguments (a bare `labelflow tail` in prose names the command only).
    commands += re.findall(r"`(labelflow (?:produce|tail|inspect|run) [^`]+)`", text())
    assert commands
    for command in commands:
        argv = shlex.split(command.split("#")[0])
        parse_labelflow_command(argv[1:])


def test_settings_variables_in_the_doc_exist() -> None:
    names = set(re.findall(r"\b(LABELFLOW_[A-Z0-9_]+)\b", text()))
    names = {n for n in names if not n.endswith("_")}  # prefixes like LABELFLOW_SECURITY__ in prose
    names.discard("LABELFLOW_BROKER")  # the doc's example of a misspelt name
    assert not unknown_settings_variables({name: "" for name in names}), (
        "the doc names variables that are no setting"
    )


def test_misspelt_top_level_variables_are_caught() -> None:
    """The settings library ignores unknown top-level LABELFLOW_* names; the deploy tests must not."""
    assert unknown_settings_variables({"LABELFLOW_BROKER": "kafka:9092", "LABELFLOW_CACHE_DIR": "/x"}) == [
        "LABELFLOW_BROKER"
    ]
    assert settings_from_env({"LABELFLOW_BROKERS": "kafka:9092"}).brokers == ["kafka:9092"]
