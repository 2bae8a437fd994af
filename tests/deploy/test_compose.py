"""deploy/docker-compose.yml (and its GPU override) against the code: images, commands, settings, ports.

The files are read by the real Compose (``docker compose config``, the standalone ``docker-compose``
binary from the test extras; it needs no daemon): it merges the override, interpolates, validates
against Compose's own schema and normalises; the tests check what it prints.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from labelflow.stream.config import MetricsSettings
from labelflow.stream.kafka_io import worker_topics

from .support import (
    ALERTS,
    COMPOSE,
    COMPOSE_GPU,
    DEPLOY,
    REPO,
    compose_command,
    compose_config,
    compose_environment,
    is_labelflow_service,
    load_script,
    parse_image_command,
    settings_from_env,
    tool,
)

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
# Third-party images: pinned tags only (never "latest"), official publishers.
THIRD_PARTY = {"apache/kafka", "prom/prometheus", "prom/alertmanager", "grafana/grafana"}

VARIANTS = {"cpu": (COMPOSE,), "gpu": (COMPOSE, COMPOSE_GPU)}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def compose(request: pytest.FixtureRequest) -> dict[str, Any]:
    return compose_config(*VARIANTS[request.param])


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return compose_config(COMPOSE)


def labelflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if is_labelflow_service(s)}


@pytest.mark.parametrize(
    "mistake",
    [
        {"services": {"embed": {"image": "x:1", "enviroment": {}}}},  # misspelt key
        {"services": {"embed": {"image": "x:1", "depends_on": {"kafka": {"condition": "healthy"}}}}},
        {"services": {"embed": {"image": "x:1", "stop_grace_period": "a minute"}}},
        {"services": {"embed": {"image": "x:1", "depends_on": ["kafka"]}}},  # no such service
        {"services": {"embed": {"image": "labelflow:${TAG}"}}},  # a variable with no value and no default
    ],
    ids=["misspelt-key", "bad-condition", "bad-duration", "unknown-dependency", "unset-variable"],
)
def test_compose_rejects_mistakes(mistake: dict[str, Any], tmp_path: Path) -> None:
    """The validation the other tests rely on is Compose's own, and it is not a rubber stamp."""
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump(mistake))
    with pytest.raises(AssertionError, match="failed|warns"):
        compose_config(path)


def test_compose_is_the_real_compose_v2_or_later() -> None:
    result = subprocess.run(
        [str(tool("docker-compose")), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert int(result.stdout.strip().lstrip("v").split(".")[0]) >= 2, result.stdout


# ---------------------------------------------------------------------------------------- references


def test_services_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "topics", "embed", "learner", "prometheus", "alertmanager", "grafana"} <= set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("embed", "learner"):
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in services["kafka"]


def test_images(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        repository, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{name}: pin the image tag ({image})"
        if is_labelflow_service(service):
            assert tag in (f"{VERSION}-cpu", f"{VERSION}-cuda"), (
                f"{name}: labelflow image tag {tag} is not <pyproject version>-cpu|cuda"
            )
            build = service["build"]
            assert Path(build["context"]).resolve() == REPO, "the build context is the repository root"
            assert (Path(build["context"]) / build["dockerfile"]).resolve() == (
                DEPLOY / "docker" / "Dockerfile"
            ).resolve()
            flavour = build["args"]["TORCH_FLAVOR"]
            assert tag.endswith(flavour), f"{name}: image {image} is built with TORCH_FLAVOR={flavour}"
        else:
            assert repository in THIRD_PARTY, f"{name}: unexpected image {image}"
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")


def test_kafka_runs_in_kraft_mode_single_node(base: dict[str, Any]) -> None:
    env = compose_environment(base["services"]["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(env["KAFKA_NODE_ID"] + "@kafka:")
    assert len(env["CLUSTER_ID"]) == 22, "a cluster id is a base64 UUID (22 characters)"
    listeners = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    brokers = compose_environment(base["services"]["embed"])["LABELFLOW_BROKERS"]
    assert brokers == listeners[env["KAFKA_INTER_BROKER_LISTENER_NAME"]], (
        "workers must use the in-network listener"
    )
    published = {str(p["published"]) for p in base["services"]["kafka"]["ports"]}
    assert listeners["EXTERNAL"].split(":")[1] in published, "the host listener must be published"
    for key, value in env.items():
        if key.endswith("REPLICATION_FACTOR") or key.endswith("MIN_ISR"):
            assert str(value) == "1", f"{key} must be 1 on a one-broker cluster"


def test_every_labelflow_command_parses(compose: dict[str, Any]) -> None:
    for name, service in labelflow_services(compose).items():
        program, args = parse_image_command(compose_command(service))
        if name in ("embed", "learner"):
            assert (program, args.command) == ("labelflow", "run"), name
    assert parse_image_command(compose_command(compose["services"]["embed"]))[1].role == "embed"
    assert parse_image_command(compose_command(compose["services"]["learner"]))[1].role == "learn"
    assert parse_image_command(compose_command(compose["services"]["topics"]))[0] == "labelflow-create-topics"


def test_every_labelflow_environment_is_valid_settings(compose: dict[str, Any]) -> None:
    for name, service in labelflow_services(compose).items():
        settings = settings_from_env(compose_environment(service))
        assert settings.create_topics is False, f"{name}: topics come from the topics service"
        assert settings.brokers == ["kafka:9092"], name


def test_the_stages_fit_together(compose: dict[str, Any]) -> None:
    services = compose["services"]
    embed = settings_from_env(compose_environment(services["embed"]))
    learner = settings_from_env(compose_environment(services["learner"]))
    embed_role = parse_image_command(compose_command(services["embed"]))[1].role
    assert embed_role == "embed"
    # The learner runs `--role learn`, which reads topics.embedded: both stages must name the same topic.
    assert learner.topics.embedded == embed.topics.embedded, (
        "the learner must read what the embed stage writes"
    )
    assert learner.group_id != embed.group_id, "embed and learner must be separate consumer groups"
    assert (learner.model.embedder, learner.model.embedder_kwargs) == (
        embed.model.embedder,
        embed.model.embedder_kwargs,
    ), "the learner checks feature dimensions against its embedder: both stages must use the same one"
    assert str(learner.checkpoint.dir) in {v["target"] for v in services["learner"]["volumes"]}, (
        "the learner's checkpoints must be on a volume"
    )
    assert "ports" not in services["embed"] and "container_name" not in services["embed"], (
        "a published port or a container name would stop `--scale embed=N`"
    )


def test_the_topic_initialiser_creates_what_the_workers_use(base: dict[str, Any]) -> None:
    create_topics = load_script(DEPLOY / "docker" / "create_topics.py")
    services = base["services"]
    planned = create_topics.deployment_topics(settings_from_env(compose_environment(services["topics"])))
    for name in ("embed", "learner", "feed"):
        settings = settings_from_env(compose_environment(services[name]))
        role = settings.model_copy(update={"role": "embed"}) if name == "embed" else settings
        for topic, partitions in worker_topics(role).items():
            assert planned.get(topic) == partitions, (
                f"{name} uses {topic} ({partitions} partitions); the initialiser plans {planned.get(topic)}"
            )
    args = parse_image_command(compose_command(services["topics"]))[1]
    assert args.replication_factor == 1, "one broker: replication factor 1"


def test_feed_sends_to_the_documents_topic(base: dict[str, Any]) -> None:
    feed = base["services"]["feed"]
    assert feed["profiles"] == ["demo"], "the feed is a demo, not part of `up`"
    args = parse_image_command(compose_command(feed))[1]
    assert args.command == "generate"
    assert args.topic == settings_from_env(compose_environment(base["services"]["embed"])).topics.documents


def test_gpu_override_requests_a_gpu_and_the_cuda_image() -> None:
    gpu = compose_config(COMPOSE, COMPOSE_GPU)["services"]["embed"]
    assert gpu["image"].endswith("-cuda") and gpu["build"]["args"]["TORCH_FLAVOR"] == "cuda"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert settings_from_env(compose_environment(gpu)).model.embedder == "transformer"


# ---------------------------------------------------------------------------------------- monitoring


def prometheus_config(compose: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(compose["configs"]["prometheus-config"]["content"])


def test_prometheus_scrapes_every_worker_on_its_metrics_port(base: dict[str, Any]) -> None:
    config = prometheus_config(base)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets: dict[str, tuple[str, int]] = {}
    for job in jobs.values():
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets[host] = (job["job_name"], int(port))
        for dns in job.get("dns_sd_configs", []):
            for host in dns["names"]:
                targets[host] = (job["job_name"], int(dns["port"]))
    for name, service in labelflow_services(base).items():
        if service.get("profiles") or name == "topics":
            continue  # one-shot containers are not scraped
        assert name in targets, f"Prometheus does not scrape {name}"
        job, port = targets[name]
        settings = settings_from_env(compose_environment(service))
        assert port == settings.metrics.port, (
            f"{name} serves metrics on {settings.metrics.port}, scraped on {port}"
        )
        # The default is loopback only: a scraped container must open the endpoint explicitly.
        assert settings.metrics.host == "0.0.0.0", f"{name} serves metrics on {settings.metrics.host} only"
        assert job.startswith("labelflow"), (
            f'job {job}: the LabelflowWorkerDown rule selects job=~"labelflow.*"'
        )
    assert "dns_sd_configs" in jobs["labelflow-embed"], (
        "the scaled embed service must be discovered, not listed"
    )
    assert MetricsSettings().port == 8000


def test_prometheus_loads_the_shipped_rules_and_alertmanager(base: dict[str, Any]) -> None:
    service = base["services"]["prometheus"]
    config = prometheus_config(base)
    mounts = {v["target"]: v["source"] for v in service["volumes"]}
    for rule_file in config["rule_files"]:
        assert rule_file in mounts, f"rule file {rule_file} is not mounted"
        assert Path(mounts[rule_file]).resolve() == ALERTS.resolve(), (
            "Prometheus must load deploy/prometheus/alerts.yml"
        )
    (target,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in base["services"] and int(port) in published_ports(base["services"][host])
    assert service["configs"][0]["target"] in " ".join(service["command"])


def published_ports(service: dict[str, Any]) -> set[int]:
    """Container ports published on the same host port."""
    return {p["target"] for p in service.get("ports", []) if str(p.get("published")) == str(p["target"])}


def test_bind_mounts_exist(base: dict[str, Any]) -> None:
    declared = set(base.get("volumes") or {})
    for name, service in base["services"].items():
        for volume in service.get("volumes", []):
            source = volume["source"]
            if volume["type"] == "bind":
                assert Path(source).exists(), f"{name} mounts {source}, which does not exist"
                assert Path(source).resolve().is_relative_to(DEPLOY), (
                    f"{name} mounts {source}, outside deploy/"
                )
            else:
                assert volume["type"] == "volume" and source in declared, (
                    f"{name} uses undeclared volume {source}"
                )


def test_prometheus_config_passes_promtool(base: dict[str, Any], promtool: str, tmp_path: Path) -> None:
    config = prometheus_config(base)
    config["rule_files"] = [str(ALERTS)]  # the file the container mounts at /etc/prometheus/rules
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, (
        f"promtool rejects the Prometheus config:\n{result.stdout}\n{result.stderr}"
    )


def test_grafana_is_provisioned_with_the_dashboard(base: dict[str, Any]) -> None:
    service = base["services"]["grafana"]
    mounts = {v["target"]: Path(v["source"]) for v in service["volumes"]}
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["url"] == "http://prometheus:9090" and 9090 in published_ports(
        base["services"]["prometheus"]
    )
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "labelflow.yml").read_text())["providers"]
    dashboards_dir = provider["options"]["path"]
    assert dashboards_dir in mounts, f"the dashboard provider reads {dashboards_dir}, which is not mounted"
    assert (mounts[dashboards_dir] / "labelflow.json").is_file()
    home = compose_environment(service)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/labelflow.json"
