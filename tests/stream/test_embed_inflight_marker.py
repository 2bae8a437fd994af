"""The embed stage keeps the poison guard's in-flight marker where a restarted process finds it again."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from labelflow.stream.config import Settings
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.stages import EmbedStage


def embed_stage(directory: Path, **overrides: object) -> EmbedStage:
    settings = Settings(role="embed", checkpoint={"dir": str(directory)}, **overrides)
    return EmbedStage(settings, ModelRuntime.from_settings(settings.model), "worker")


def test_the_marker_directory_is_named_by_the_client_id_and_held_by_one_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = embed_stage(tmp_path, client_id="pod/embed 1")
    first.open()
    assert first.inflight_dir == tmp_path / "embed-inflight" / "pod_embed_1"
    assert first.inflight_dir.is_dir()
    # A second process with the same name would share the marker: it runs unguarded and says so.
    second = embed_stage(tmp_path, client_id="pod/embed 1")
    with caplog.at_level(logging.WARNING):
        second.open()
    assert second.inflight_dir is None
    assert "event=poison_guard_off role=embed" in caplog.text
    first.close()
    restarted = embed_stage(tmp_path, client_id="pod/embed 1")
    restarted.open()
    assert restarted.inflight_dir == tmp_path / "embed-inflight" / "pod_embed_1"
    restarted.close()


def test_without_a_client_id_the_host_name_names_the_marker(tmp_path: Path) -> None:
    stage = embed_stage(tmp_path)
    stage.open()
    assert stage.inflight_dir is not None
    assert stage.inflight_dir.parent == tmp_path / "embed-inflight"
    stage.close()


def test_an_unwritable_directory_turns_the_guard_off_instead_of_failing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    stage = embed_stage(blocker / "checkpoints", client_id="embed-1")
    with caplog.at_level(logging.WARNING):
        stage.open()
    assert stage.inflight_dir is None
    assert "event=poison_guard_off" in caplog.text


def test_a_guard_turned_off_by_settings_claims_nothing(tmp_path: Path) -> None:
    stage = embed_stage(tmp_path, client_id="embed-1", poison_after_crashes=0)
    stage.open()
    assert stage.inflight_dir is None
    assert not (tmp_path / "embed-inflight").exists()
