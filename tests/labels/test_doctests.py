"""The examples in the label clusterer's docstrings run (pytest only collects doctests under tests/)."""

from __future__ import annotations

import doctest

import pytest

from labelflow.operators.labels import association, cluster_statistics, clustering, cooccurrence, partition


@pytest.mark.parametrize("module", [partition, cooccurrence, cluster_statistics, association, clustering])
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert result.attempted > 0, f"{module.__name__} has no examples"
    assert result.failed == 0
