"""Shared fixtures: where the shared datasets live (never copied into the repository), Prometheus'
promtool, one embedded Kafka-protocol broker per session, and settings private to each test that uses it.

Everything here is real: the Tansu broker, kafka-python clients, the registry's default learner and the
hashing embedder, workers as threads or as `labelflow run` subprocesses.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labelflow.stream.broker import EmbeddedBroker
from labelflow.stream.config import Settings
from labelflow.stream.testing import isolated_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("LABELFLOW_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS.is_dir():
        pytest.fail(f"shared datasets not found at {DATASETS}; set LABELFLOW_DATASETS")
    return DATASETS


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of Prometheus' promtool; deploy/prometheus/ensure_promtool.sh installs it when missing."""
    script = REPO_ROOT / "deploy" / "prometheus" / "ensure_promtool.sh"
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        pytest.fail(f"promtool is not available and could not be installed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def model_settings() -> dict[str, Any]:
    """Model settings of the workers ``settings_for`` configures (a folder's conftest may override them).

    A small hashing space: the synthetic stream's vocabulary is a few thousand words, and a small model
    keeps checkpoints (written every second in the broker tests) cheap.
    """
    return {"model.embedder_kwargs": {"n_features": 2**14}}


@pytest.fixture
def settings_for(
    broker: EmbeddedBroker, tmp_path: Path, model_settings: dict[str, Any]
) -> Callable[..., Settings]:
    """Settings with topics, group and checkpoint directory private to the calling test."""

    def make(name: str | None = None, **overrides: Any) -> Settings:
        values = {key.replace(".", "__"): value for key, value in model_settings.items()}
        values.update(overrides)
        return isolated_settings(broker.bootstrap_servers, tmp_path, name, **values)

    return make
