"""The docstring examples of the embedder modules run as tests (pytest collects doctests from the
tests directory only)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "labelflow.operators.embedders.cache",
    "labelflow.operators.embedders.concat",
    "labelflow.operators.embedders.registry",
    "labelflow.operators.embedders.static",
    "labelflow.operators.embedders.transformer",
    "labelflow.operators.embedders.wordpiece",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
