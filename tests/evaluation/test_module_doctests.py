"""Run the docstring examples of the evaluation, I/O, hashing and baseline modules (pytest only collects
doctests under tests/)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "labelflow.operators.io.instances",
    "labelflow.operators.io.arff",
    "labelflow.operators.io.jsonl",
    "labelflow.operators.io.streams",
    "labelflow.operators.embedders.hashing",
    "labelflow.operators.evaluation.metrics",
    "labelflow.operators.evaluation.prequential",
    "labelflow.operators.evaluation.machine",
    "labelflow.operators.learners.baselines",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
