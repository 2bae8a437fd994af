"""deploy/k8s: the kustomize base, the monitoring component and the production overlay, against the code.

The directories are rendered by the real kustomize (``kubectl kustomize``; no cluster needed); the
containers' environments are built as Kubernetes builds them and validated by the settings model;
commands are parsed by the real CLI parsers.
"""

from __future__ import annotations

import base64
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from labelflow.stream.kafka_io import worker_topics

from .support import (
    ALERTS,
    K8S,
    REPO,
    container_environment,
    find,
    image_scripts,
    kustomize_build,
    load_script,
    parse_image_command,
    pod_spec,
    settings_from_env,
)

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
TARGETS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
API_VERSIONS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "Job": "batch/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}
WORKLOADS = ("Deployment", "StatefulSet", "Job")


@pytest.fixture(scope="module", params=sorted(TARGETS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, kustomize_build(TARGETS[request.param])


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return kustomize_build(TARGETS["production"])


def workloads(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] in WORKLOADS]


def containers(resources: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(w, c) for w in workloads(resources) for c in pod_spec(w)["containers"]]


def command_of(container: dict[str, Any]) -> list[str]:
    entrypoint = container.get("command") or ["labelflow"]  # the image's ENTRYPOINT
    return [str(part) for part in entrypoint + (container.get("args") or [])]


def usable_environment(
    container: dict[str, Any], resources: list[dict[str, Any]], workload: dict[str, Any], tmp_path: Path
) -> dict[str, str]:
    """The container's environment, with files the pod mounts (the Kafka CA) replaced by real files here.

    The settings model checks that ``ssl_cafile`` and friends are readable files; inside the pod they
    come from a mounted Secret, so the test checks the mount, then points the setting at a stand-in.
    """
    env = container_environment(container, resources, pod_name=f"{workload['metadata']['name']}-0")
    for name, value in list(env.items()):
        if name.startswith("LABELFLOW_SECURITY__SSL_") and name.endswith("FILE"):
            mount = [
                m
                for m in container.get("volumeMounts", [])
                if value.startswith(m["mountPath"].rstrip("/") + "/")
            ]
            assert mount, f"{workload['metadata']['name']}: {name}={value} is on no volume mount"
            volume = [v for v in pod_spec(workload)["volumes"] if v["name"] == mount[0]["name"]]
            assert volume and "secret" in volume[0], f"{name} must come from a mounted Secret"
            relative = value[len(mount[0]["mountPath"].rstrip("/")) + 1 :]
            items = volume[0]["secret"].get("items")
            assert items is None or relative in {item["path"] for item in items}, (
                f"{name}: {relative} is not projected from the Secret"
            )
            stand_in = tmp_path / relative
            stand_in.write_text("-----BEGIN CERTIFICATE-----\n")
            env[name] = str(stand_in)
    return env


# ---------------------------------------------------------------------------------------- rendering


def test_renders_known_kinds_with_unique_names(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    target, resources = rendered
    seen = set()
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        assert API_VERSIONS.get(kind) == resource["apiVersion"], (
            f"{target}: {kind} {name} has apiVersion {resource['apiVersion']}"
        )
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), f"{kind} {name}: not a DNS-1123 name"
        assert (kind, name) not in seen, f"{target}: {kind} {name} twice"
        seen.add((kind, name))
        if kind != "Namespace":
            assert resource["metadata"].get("namespace") == "labelflow", f"{kind} {name} has no namespace"
    kinds = {r["kind"] for r in resources}
    assert {
        "Deployment",
        "StatefulSet",
        "Service",
        "ConfigMap",
        "Secret",
        "HorizontalPodAutoscaler",
        "Job",
        "PersistentVolumeClaim",
    } <= kinds
    if target == "production":
        assert {"PodMonitor", "PrometheusRule"} <= kinds


# ---------------------------------------------------------------------------------------- images and commands


def test_images_are_the_built_flavours(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    target, resources = rendered
    for workload, container in containers(resources):
        repository, _, tag = container["image"].rpartition(":")
        assert repository.split("/")[-1] == "labelflow", container["image"]
        assert tag in (f"{VERSION}-cpu", f"{VERSION}-cuda"), (
            f"{workload['metadata']['name']}: tag {tag} is not <pyproject version>-cpu|cuda"
        )
    embed = find(resources, "Deployment", "labelflow-embed")[0]
    assert pod_spec(embed)["containers"][0]["image"].endswith("-cuda")
    if target == "production":
        assert all(c["image"].startswith("registry.example.com/labelflow:") for _, c in containers(resources))


def test_every_command_parses(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    scripts = set(image_scripts())
    for workload, container in containers(resources):
        program, args = parse_image_command(command_of(container))
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in container:
                command = container[probe]["exec"]["command"]
                assert command[0] in scripts, (
                    f"{workload['metadata']['name']} {probe} runs {command[0]}, which the image does not install"
                )
        name = workload["metadata"]["name"]
        if name == "labelflow-embed":
            assert (program, args.command, args.role) == ("labelflow", "run", "embed")
        elif name == "labelflow-learner":
            assert (program, args.command, args.role) == ("labelflow", "run", "learn")
            assert container["command"][0] == "labelflow-standby", (
                "the learner's replicas must go through the standby wrapper"
            )
        elif name == "labelflow-topics":
            assert program == "labelflow-create-topics" and args.replication_factor >= 3


# ---------------------------------------------------------------------------------------- settings


def test_every_environment_is_valid_settings(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    target, resources = rendered
    for workload, container in containers(resources):
        settings = settings_from_env(usable_environment(container, resources, workload, tmp_path))
        assert settings.create_topics is False, "topics come from the labelflow-topics Job"
        if target == "production":
            assert settings.security.protocol == "SASL_SSL" and settings.security.sasl_password is not None


def test_the_stages_fit_together(rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    _, resources = rendered

    def settings(name: str) -> Any:
        (workload,) = [w for w in workloads(resources) if w["metadata"]["name"] == name]
        return settings_from_env(
            usable_environment(pod_spec(workload)["containers"][0], resources, workload, tmp_path)
        )

    embed, learner, topics = (
        settings("labelflow-embed"),
        settings("labelflow-learner"),
        settings("labelflow-topics"),
    )
    assert learner.topics.embedded == embed.topics.embedded  # read by `--role learn`
    assert learner.group_id != embed.group_id
    assert (learner.model.embedder, learner.model.embedder_kwargs) == (
        embed.model.embedder,
        embed.model.embedder_kwargs,
    )
    assert learner.client_id == "labelflow-learner-0", "each replica names itself after its pod"
    planned = load_script(image_scripts()["labelflow-create-topics"]).deployment_topics(topics)
    for role_settings in (embed.model_copy(update={"role": "embed"}), learner):
        for topic, partitions in worker_topics(role_settings).items():
            assert planned.get(topic) == partitions, (
                f"{topic}: the Job plans {planned.get(topic)} partitions, a worker needs {partitions}"
            )


# ---------------------------------------------------------------------------------------- wiring


def test_selectors_services_and_ports(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    pods = {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in workloads(resources)}
    for workload in workloads(resources):
        selector = workload["spec"].get("selector", {}).get("matchLabels")
        if selector:
            assert selector.items() <= pods[workload["metadata"]["name"]].items(), (
                f"{workload['metadata']['name']}: selector does not match its pods"
            )
    for service in find(resources, "Service"):
        matched = [
            name for name, labels in pods.items() if service["spec"]["selector"].items() <= labels.items()
        ]
        assert len(matched) == 1, f"Service {service['metadata']['name']} selects {matched}"
        (workload,) = [w for w in workloads(resources) if w["metadata"]["name"] == matched[0]]
        port_names = {p["name"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (
                f"Service {service['metadata']['name']} targets unknown port {port['targetPort']}"
            )


def test_metrics_ports_match_the_settings(rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    _, resources = rendered
    for workload, container in containers(resources):
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if workload["kind"] == "Job":
            assert not ports
            continue
        settings = settings_from_env(usable_environment(container, resources, workload, tmp_path))
        assert ports.get("metrics") == settings.metrics.port, f"{workload['metadata']['name']}: metrics port"
        # The default is loopback only: a scraped pod must open the endpoint explicitly.
        assert settings.metrics.host == "0.0.0.0", f"{workload['metadata']['name']}: metrics host"


def test_volumes_and_references_exist(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    for workload in workloads(resources):
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (
                    f"{workload['metadata']['name']} mounts unknown volume {mount['name']}"
                )
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef")
                kind = "ConfigMap" if "configMapRef" in source else "Secret"
                assert find(resources, kind, ref["name"]), f"{kind} {ref['name']} is missing"
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert find(resources, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])


def test_pods_run_as_the_images_non_root_user(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, resources = rendered
    for workload, container in containers(resources):
        pod = pod_spec(workload).get("securityContext", {})
        assert pod.get("runAsNonRoot") is True and pod.get("runAsUser") == 10001, workload["metadata"]["name"]
        security = container.get("securityContext", {})
        assert security.get("allowPrivilegeEscalation") is False and security.get("capabilities", {}).get(
            "drop"
        ) == ["ALL"]
        if security.get("readOnlyRootFilesystem"):
            assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, (
                "a read-only root needs a writable /tmp"
            )


# ---------------------------------------------------------------------------------------- embed and learner


def test_embed_requests_a_gpu_and_scales_on_lag(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, resources = rendered
    (embed,) = find(resources, "Deployment", "labelflow-embed")
    container = pod_spec(embed)["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    (hpa,) = find(resources, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "labelflow-embed",
    }
    settings = settings_from_env(usable_environment(container, resources, embed, tmp_path))
    assert hpa["spec"]["minReplicas"] >= 1
    assert hpa["spec"]["maxReplicas"] <= settings.topics.partitions, (
        "embed replicas beyond the partition count sit idle"
    )
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "labelflow_consumer_lag"
    assert metric["pods"]["metric"]["selector"]["matchLabels"]["topic"] == settings.topics.documents


def test_embed_keeps_its_poison_marker_on_a_volume_that_outlives_a_crashed_container(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, resources = rendered
    (embed,) = find(resources, "Deployment", "labelflow-embed")
    container = pod_spec(embed)["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    settings = settings_from_env(usable_environment(container, resources, embed, tmp_path))
    marker_dir = Path(settings.checkpoint.dir)
    mounts = {Path(m["mountPath"]): m["name"] for m in container["volumeMounts"]}
    holding = [name for path, name in mounts.items() if marker_dir == path or path in marker_dir.parents]
    assert holding, f"{marker_dir} is on the read-only root filesystem: the embed stage would run unguarded"
    volume = {v["name"]: v for v in pod_spec(embed)["volumes"]}[holding[0]]
    assert "emptyDir" in volume, "a pod-lifetime volume: it survives a container restart"


def test_learner_has_a_standby_on_a_shared_checkpoint_volume(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, resources = rendered
    (learner,) = find(resources, "StatefulSet", "labelflow-learner")
    assert learner["spec"]["replicas"] == 2, "one active learner and one standby"
    assert learner["spec"]["podManagementPolicy"] == "Parallel"
    assert find(resources, "Service", learner["spec"]["serviceName"])[0]["spec"]["clusterIP"] == "None"
    container = pod_spec(learner)["containers"][0]
    settings = settings_from_env(usable_environment(container, resources, learner, tmp_path))
    mount = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}[str(settings.checkpoint.dir)]
    claim = {v["name"]: v for v in pod_spec(learner)["volumes"]}[mount]["persistentVolumeClaim"]["claimName"]
    (pvc,) = find(resources, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], (
        "the standby must see the active learner's checkpoints"
    )
    assert "volumeClaimTemplates" not in learner["spec"], (
        "a per-pod volume would hide the checkpoints from the standby"
    )
    assert pod_spec(learner)["terminationGracePeriodSeconds"] >= 60, "a stop writes a checkpoint"


def test_monitoring_component(production: list[dict[str, Any]]) -> None:
    (monitor,) = find(production, "PodMonitor")
    pods = {w["metadata"]["name"]: w for w in workloads(production)}
    scraped = []
    for name, workload in pods.items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = monitor["spec"]["selector"]
        if selector["matchLabels"].items() <= labels.items() and all(
            labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])
        ):
            scraped.append(name)
            assert monitor["spec"]["jobLabel"] in labels, f"{name} has no {monitor['spec']['jobLabel']} label"
            assert labels[monitor["spec"]["jobLabel"]].startswith("labelflow"), (
                'job names must match the rules\' job=~"labelflow.*"'
            )
            ports = {p["name"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}
            assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= ports
    assert sorted(scraped) == ["labelflow-embed", "labelflow-learner"]
    (rule,) = find(production, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"], (
        "the PrometheusRule differs from deploy/prometheus/alerts.yml: run python deploy/k8s/render_prometheusrule.py"
    )
    assert monitor["metadata"]["labels"]["release"] == rule["metadata"]["labels"]["release"]


def test_prometheusrule_file_is_rendered_from_the_rules() -> None:
    render = load_script(K8S / "render_prometheusrule.py")
    assert render.OUTPUT.read_text(encoding="utf-8") == render.render(ALERTS.read_text(encoding="utf-8")), (
        "run python deploy/k8s/render_prometheusrule.py"
    )


def credentials_secret(resources: list[dict[str, Any]]) -> dict[str, Any]:
    (secret,) = [
        r
        for r in find(resources, "Secret")
        if r["metadata"]["name"].startswith("labelflow-kafka-credentials")
    ]
    return secret


def test_production_replaces_the_credentials(production: list[dict[str, Any]]) -> None:
    data = credentials_secret(production)["data"]
    assert base64.b64decode(data["LABELFLOW_SECURITY__SASL_USERNAME"]).decode() == "labelflow", (
        "the overlay's credentials replace the empty base Secret"
    )


@pytest.mark.parametrize(
    ("kind", "prefix", "reference"),
    [
        ("Secret", "labelflow-kafka-credentials", "secretRef"),
        ("ConfigMap", "labelflow-settings", "configMapRef"),
    ],
)
def test_generated_names_carry_a_content_hash(
    rendered: tuple[str, list[dict[str, Any]]], kind: str, prefix: str, reference: str
) -> None:
    """The credentials and the settings are generated, named after their content, and every workload refers
    to that name: a change to either rolls the pods that read it."""
    _, resources = rendered
    (name,) = [
        r["metadata"]["name"] for r in find(resources, kind) if r["metadata"]["name"].startswith(prefix)
    ]
    assert re.fullmatch(rf"{prefix}-[a-z0-9]{{10}}", name), (
        f"{kind} {name} has no content hash: a change to it would roll no pod"
    )
    referring = [
        workload["metadata"]["name"]
        for workload in workloads(resources)
        for container in pod_spec(workload)["containers"]
        for source in container.get("envFrom", [])
        if source.get(reference, {}).get("name") == name
    ]
    assert sorted(referring) == ["labelflow-embed", "labelflow-learner", "labelflow-topics"]


def pod_templates(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {w["metadata"]["name"]: w["spec"]["template"] for w in workloads(resources)}


def rolled_workloads(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> set[str]:
    """Workloads whose pod template differs between two renderings (what `kubectl apply` restarts)."""
    old, new = pod_templates(before), pod_templates(after)
    return {name for name, template in old.items() if template != new[name]}


def test_a_changed_password_rolls_every_pod_that_uses_it(tmp_path: Path) -> None:
    """docs/operations.md: changing kafka-credentials.env and re-applying restarts the workers."""
    shutil.copytree(K8S, tmp_path / "k8s")
    overlay = tmp_path / "k8s" / "overlays" / "production"
    before = kustomize_build(overlay)
    env_file = overlay / "kafka-credentials.env"
    env_file.write_text(
        env_file.read_text().replace(
            "LABELFLOW_SECURITY__SASL_PASSWORD=change-me", "LABELFLOW_SECURITY__SASL_PASSWORD=rotated"
        )
    )
    after = kustomize_build(overlay)
    assert credentials_secret(before)["data"] != credentials_secret(after)["data"], "the edit took no effect"
    changed = rolled_workloads(before, after)
    assert changed == {"labelflow-embed", "labelflow-learner", "labelflow-topics"}, (
        f"a new password changes the pod templates of {sorted(changed)} only"
    )


def test_a_changed_setting_rolls_every_pod_that_reads_it(tmp_path: Path) -> None:
    """docs/operations.md: editing the overlay's settings.env and re-applying restarts the workers with it."""
    shutil.copytree(K8S, tmp_path / "k8s")
    overlay = tmp_path / "k8s" / "overlays" / "production"
    before = kustomize_build(overlay)
    env_file = overlay / "settings.env"
    env_file.write_text(env_file.read_text().replace("svc:9093", "svc:9094"))
    after = kustomize_build(overlay)
    (settings,) = [
        r for r in find(after, "ConfigMap") if r["metadata"]["name"].startswith("labelflow-settings")
    ]
    assert settings["data"]["LABELFLOW_BROKERS"] == "kafka-kafka-bootstrap.kafka.svc:9094", (
        "the edit took no effect"
    )
    assert settings["data"]["LABELFLOW_CHECKPOINT__DIR"] == "/var/lib/labelflow/checkpoints", (
        "the overlay merges over the base's settings instead of replacing them"
    )
    assert rolled_workloads(before, after) == {"labelflow-embed", "labelflow-learner", "labelflow-topics"}
