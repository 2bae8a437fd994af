"""What the deployment tests share: the repository's deploy files, loaded and cross-checked against the code.

Nothing here needs a container engine or a cluster. Compose files are read with Compose's variable
interpolation and merge rules for the subset they use; kustomize directories are rendered by a small
renderer for the features our manifests use (it rejects anything else, so a new feature cannot slip
past the checks unrendered); PromQL is scanned for the metric and function names it uses.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import importlib.util
import os
import re
import shlex
import sys
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


_VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, variables: Mapping[str, str] | None = None) -> Any:
    """Compose's variable interpolation (``${VAR}``, ``${VAR:-default}``, ``$$``) over a parsed document.

    A variable with neither a value nor a default is an error here (Compose would use an empty string).
    """
    variables = variables or {}
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, default = match.group(2), match.group(3)
        current = variables.get(name)
        if op in (":-", "-"):
            return current if current not in (None, "") or (op == "-" and current is not None) else default
        if current is None:
            raise AssertionError(f"${{{name}}} has no value and no default")
        return current

    return _VARIABLE.sub(replace, value)


def load_compose(*paths: Path, variables: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Compose files merged in order (mappings merge, other values replace), then interpolated."""
    merged: dict[str, Any] = {}
    for path in paths:
        merged = deep_merge(merged, yaml.safe_load(path.read_text(encoding="utf-8")))
    return interpolate(merged, variables)


def deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def compose_environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def is_labelflow_service(service: Mapping[str, Any]) -> bool:
    return str(service.get("image", "")).startswith("labelflow:")


def compose_command(service: Mapping[str, Any]) -> list[str]:
    """The full command a labelflow service runs: entrypoint (the image's unless overridden) + command."""
    entrypoint = service.get("entrypoint") or ["labelflow"]
    command = service.get("command") or ["run"]
    assert isinstance(entrypoint, list) and isinstance(command, list), (
        "use the list form of entrypoint and command"
    )
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


# Strategic-merge keys of the list fields our patches touch (Kubernetes' patchMergeKey).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
_KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "namespace",
    "labels",
    "resources",
    "components",
    "images",
    "patches",
    "secretGenerator",
    "configMapGenerator",
}
_CLUSTER_SCOPED = {"Namespace"}


def strategic_merge(base: Any, patch: Any) -> Any:
    """Kubernetes' strategic merge for the fields we patch; directives ($patch) are refused."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            assert not str(key).startswith("$"), f"patch directive {key!r} is not supported by this renderer"
            if value is None:
                out.pop(key, None)
            elif key in out and isinstance(out[key], list) and isinstance(value, list) and key in _MERGE_KEYS:
                merge_key = _MERGE_KEYS[key]
                merged = [copy.deepcopy(item) for item in out[key]]
                index = {item[merge_key]: i for i, item in enumerate(merged)}
                for item in value:
                    if item[merge_key] in index:
                        merged[index[item[merge_key]]] = strategic_merge(merged[index[item[merge_key]]], item)
                    else:
                        merged.append(copy.deepcopy(item))
                out[key] = merged
            elif key in out:
                out[key] = strategic_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    return copy.deepcopy(patch)


def _load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: {line!r} is not KEY=VALUE"
        values[key] = value
    return values


def _generate(spec: dict[str, Any], kind: str, directory: Path, resources: list[dict[str, Any]]) -> None:
    data: dict[str, str] = {}
    for env in spec.get("envs", []):
        data.update(_env_file(directory / env))
    for literal in spec.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    unsupported = set(spec) - {"name", "behavior", "envs", "literals", "type", "options"}
    assert not unsupported, f"generator fields {unsupported} are not supported by this renderer"
    behavior = spec.get("behavior", "create")
    field = "stringData" if kind == "Secret" else "data"
    existing = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == spec["name"]]
    if behavior == "create":
        assert not existing, f"{kind} {spec['name']} generated twice"
        resources.append({"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}, field: data})
        return
    assert existing, f"{kind} {spec['name']}: behavior {behavior} needs it in the resources"
    target = existing[0]
    if behavior == "replace":
        target.pop("data", None)
        target.pop("stringData", None)
        target[field] = data
    elif behavior == "merge":
        target.setdefault(field, {}).update(data)
    else:
        raise AssertionError(f"unknown generator behavior {behavior!r}")


def _set_images(node: Any, images: list[dict[str, str]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    name, _, tag = container["image"].partition(":")
                    for image in images:
                        if image["name"] == name:
                            name = image.get("newName", name)
                            tag = image.get("newTag", tag)
                    container["image"] = f"{name}:{tag}" if tag else name
            else:
                _set_images(value, images)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, images)


def kustomize_build(directory: Path, *, expect_kind: str = "Kustomization") -> list[dict[str, Any]]:
    """Render a kustomization (or component) directory; resources as plain dicts.

    Generated names get no content-hash suffix here (references stay equal, which is what kustomize's
    name-reference transformer guarantees).
    """
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization.get("kind", "Kustomization") == expect_kind, (
        f"{directory}: expected kind {expect_kind}"
    )
    unsupported = set(kustomization) - _KUSTOMIZATION_KEYS
    assert not unsupported, (
        f"{directory}: kustomization fields {unsupported} are not supported by this renderer"
    )
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        assert path.exists(), f"{directory}/kustomization.yaml lists {entry}, which does not exist"
        resources += kustomize_build(path) if path.is_dir() else _load_docs(path)
    for entry in kustomization.get("components", []):
        path = (directory / entry).resolve()
        assert path.is_dir(), f"{directory}: component {entry} is not a directory"
        resources += kustomize_build(path, expect_kind="Component")
    for spec in kustomization.get("configMapGenerator", []):
        _generate(spec, "ConfigMap", directory, resources)
    for spec in kustomization.get("secretGenerator", []):
        _generate(spec, "Secret", directory, resources)
    for entry in kustomization.get("patches", []):
        assert set(entry) == {"path"}, (
            f"{directory}: only file patches ({{path: ...}}) are supported, got {entry}"
        )
        for patch in _load_docs(directory / entry["path"]):
            targets = [
                r
                for r in resources
                if r["kind"] == patch["kind"] and r["metadata"]["name"] == patch["metadata"]["name"]
            ]
            assert len(targets) == 1, (
                f"{directory}/{entry['path']}: patch of {patch['kind']} {patch['metadata']['name']} matches {len(targets)} resources"
            )
            merged = strategic_merge(targets[0], patch)
            resources[resources.index(targets[0])] = merged
    if kustomization.get("images"):
        _set_images(resources, kustomization["images"])
    namespace = kustomization.get("namespace")
    if namespace:
        for resource in resources:
            if resource["kind"] not in _CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = namespace
    for label_spec in kustomization.get("labels", []):
        assert not label_spec.get("includeSelectors") and not label_spec.get("includeTemplates"), (
            "only metadata labels are supported"
        )
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(label_spec["pairs"])
    return resources


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
