"""The examples in the learner and label-clustering modules' docstrings run (pytest only collects
doctests under tests/)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import labelflow.operators.labels
import labelflow.operators.learners

MODULES = sorted(
    info.name
    for package in (labelflow.operators.learners, labelflow.operators.labels)
    for info in pkgutil.iter_modules(package.__path__, prefix=package.__name__ + ".")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0


def test_the_main_components_have_examples() -> None:
    for name in ("partitioned", "linear", "neighbours", "powerset", "thresholds", "sparse_batch"):
        module = importlib.import_module(f"labelflow.operators.learners.{name}")
        assert doctest.testmod(module).attempted > 0, f"{name} has no docstring example"
