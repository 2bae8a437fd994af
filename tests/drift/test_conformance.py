"""Every drift detector passes the same interface checks (operators/drift/checks.py)."""

from __future__ import annotations

import pytest

from labelflow.operators.drift import (
    InputDriftDetector,
    LabelDependenceDriftDetector,
    LabelPriorDriftDetector,
    LabelStructureDriftAdapter,
    PerformanceDriftDetector,
)
from labelflow.operators.drift.checks import DETECTOR_CHECKS, DetectorCase

CASES = ("performance", "label_prior", "input", "label_structure", "label_dependence")


@pytest.fixture(scope="module")
def cases(
    error_stream, label_set_stream, vector_stream, structure_changes, dependence_stream
) -> dict[str, DetectorCase]:
    return {
        "performance": DetectorCase(
            "performance",
            lambda **kw: PerformanceDriftDetector(level=3, labels=["x", "y"], **kw),
            error_stream,
        ),
        "label_prior": DetectorCase(
            "label_prior", lambda **kw: LabelPriorDriftDetector(**kw), label_set_stream
        ),
        "input": DetectorCase(
            "input", lambda **kw: InputDriftDetector(reference_size=256, window_size=128, **kw), vector_stream
        ),
        "label_structure": DetectorCase(
            "label_structure", lambda **kw: LabelStructureDriftAdapter(**kw), structure_changes
        ),
        "label_dependence": DetectorCase(
            "label_dependence", lambda **kw: LabelDependenceDriftDetector(**kw), dependence_stream
        ),
    }


@pytest.mark.parametrize("check", DETECTOR_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", CASES)
def test_detector_conforms(cases, name, check):
    check(cases[name])
