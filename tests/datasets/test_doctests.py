"""The examples in the dataset modules' docstrings run (pytest only collects doctests under tests/)."""

from __future__ import annotations

import doctest

import pytest

from labelflow.operators.datasets import power_law, pseudowords, synthetic


@pytest.mark.parametrize("module", [power_law, pseudowords, synthetic])
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert result.attempted > 0, f"{module.__name__} has no examples"
    assert result.failed == 0
