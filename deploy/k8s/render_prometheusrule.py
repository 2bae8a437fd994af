#!/usr/bin/env python3
"""Wrap the shipped alert rules (deploy/prometheus/alerts.yml) in a PrometheusRule for the Prometheus Operator.

    python deploy/k8s/render_prometheusrule.py           # rewrite components/monitoring/prometheusrule.yaml
    python deploy/k8s/render_prometheusrule.py --check   # exit 1 if it is stale

kustomize cannot read files outside its directory, so the rules are copied, not referenced; tests/deploy
fails when the copy differs from alerts.yml. Edit alerts.yml, then run this.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "prometheus" / "alerts.yml"
OUTPUT = HERE / "components" / "monitoring" / "prometheusrule.yaml"
HEADER = (
    "# GENERATED from deploy/prometheus/alerts.yml by deploy/k8s/render_prometheusrule.py: do not edit.\n"
    "# Runbooks: docs/runbook/ (each rule's runbook_url).\n"
)


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    """The PrometheusRule resource holding ``rules``' groups unchanged.

    >>> prometheus_rule({"groups": []})["kind"]
    'PrometheusRule'
    """
    if not isinstance(rules.get("groups"), list):
        raise ValueError("the rule file has no 'groups' list")
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "labelflow"},
        "spec": {"groups": rules["groups"]},
    }


class _Literal(str):
    pass


def _literal_blocks(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal_blocks)


def _mark_multiline(node: Any) -> Any:
    # PromQL over several lines stays readable as a literal block.
    if isinstance(node, dict):
        return {key: _mark_multiline(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_mark_multiline(value) for value in node]
    if isinstance(node, str) and "\n" in node:
        return _Literal(node)
    return node


def render(rules_text: str) -> str:
    rules = yaml.safe_load(rules_text)
    body = yaml.dump(
        _mark_multiline(prometheus_rule(rules)),
        Dumper=_Dumper,
        sort_keys=False,
        width=120,
        allow_unicode=True,
    )
    return HEADER + body


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed file differs from alerts.yml"
    )
    args = parser.parse_args(argv)
    text = render(RULES.read_text(encoding="utf-8"))
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is stale: run python deploy/k8s/render_prometheusrule.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
