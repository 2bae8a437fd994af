"""Integration fixtures: one embedded broker per session and per-test isolated settings.

Everything here is real: the Tansu broker, kafka-python clients, the registry's default learner and the
hashing embedder, workers as threads or as `labelflow run` subprocesses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labelflow.stream.broker import EmbeddedBroker
from labelflow.stream.config import Settings
from labelflow.stream.testing import isolated_settings

# Small hashing space: the synthetic stream's vocabulary is a few thousand words, and a small model
# keeps checkpoints (written every second in these tests) cheap.
FAST_MODEL = {"model.embedder_kwargs": {"n_features": 2**14}}


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def settings_for(broker: EmbeddedBroker, tmp_path: Path) -> Callable[..., Settings]:
    """Settings with topics, group and checkpoint directory private to the calling test."""

    def make(name: str | None = None, **overrides: Any) -> Settings:
        values = {key.replace(".", "__"): value for key, value in FAST_MODEL.items()}
        values.update(overrides)
        return isolated_settings(broker.bootstrap_servers, tmp_path, name, **values)

    return make
