"""The main components document themselves with a runnable example (pytest runs the examples of every
module of stream/ and operators/ once, see conftest.py at the top; this checks they are there)."""

from __future__ import annotations

import importlib

import pytest

DOCUMENTED = [
    "labelflow.operators.learners.partitioned.PartitionedClassifier",
    "labelflow.operators.learners.linear.LinearHeads",
    "labelflow.operators.learners.neighbours.RecentNeighbours",
    "labelflow.operators.learners.powerset.LabelSetDecoder",
    "labelflow.operators.learners.thresholds.AdaptiveThresholds",
    "labelflow.operators.learners.sparse_batch.compact_rows",
    "labelflow.operators.state.Stateful",
    "labelflow.stream.checkpoint.CheckpointStore",
    "labelflow.stream.config.Settings",
    "labelflow.stream.feedback_store.FeedbackStore",
    "labelflow.stream.messages.Document",
    "labelflow.stream.messages.DeadLetter",
    "labelflow.stream.metrics.WorkerMetrics",
    "labelflow.stream.quality.QualityTracker",
    "labelflow.stream.routing.LabelRouter",
]


@pytest.mark.parametrize("path", DOCUMENTED)
def test_the_main_components_have_examples(path: str) -> None:
    module, _, name = path.rpartition(".")
    assert ">>>" in (getattr(importlib.import_module(module), name).__doc__ or ""), f"{path} has no example"
