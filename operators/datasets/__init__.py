"""Stream generators for tests, benchmarks and the demo."""

from labelflow.operators.datasets.power_law import PowerLawDocument, PowerLawLabelStream, PowerLawStreamConfig
from labelflow.operators.datasets.synthetic import (
    DRIFT_KINDS,
    DriftEventConfig,
    RecordedDrift,
    SyntheticDocument,
    SyntheticStream,
    SyntheticStreamConfig,
)

__all__ = [
    "DRIFT_KINDS",
    "DriftEventConfig",
    "PowerLawDocument",
    "PowerLawLabelStream",
    "PowerLawStreamConfig",
    "RecordedDrift",
    "SyntheticDocument",
    "SyntheticStream",
    "SyntheticStreamConfig",
]
