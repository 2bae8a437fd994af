"""Run the docstring examples of every runtime module (pytest collects doctests only under tests/)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import labelflow.stream

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(labelflow.stream.__path__, prefix="labelflow.stream.")
)


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"


def test_the_public_classes_have_examples() -> None:
    from labelflow.stream import checkpoint, config, feedback_store, messages, metrics, quality, routing

    for cls in (
        checkpoint.CheckpointStore,
        config.Settings,
        feedback_store.FeedbackStore,
        messages.Document,
        messages.DeadLetter,
        metrics.WorkerMetrics,
        quality.QualityTracker,
        routing.LabelRouter,
    ):
        assert ">>>" in (cls.__doc__ or ""), f"{cls.__name__} has no example"
