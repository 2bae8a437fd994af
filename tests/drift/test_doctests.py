"""The examples in the drift modules' docstrings run (pytest only collects doctests under tests/)."""

from __future__ import annotations

import doctest

import pytest

from labelflow.operators.drift import (
    dependence,
    events,
    input,
    label_prior,
    performance,
    projection,
    structure,
)


@pytest.mark.parametrize(
    "module", [events, performance, label_prior, dependence, input, projection, structure]
)
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert result.attempted > 0, f"{module.__name__} has no examples"
    assert result.failed == 0
