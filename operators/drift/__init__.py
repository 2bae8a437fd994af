"""Drift detectors: each turns a stream of observations into ``DriftEvent``s.

================================  ==================  ==========================================
detector                          ``update(x)`` takes  watches
================================  ==================  ==========================================
``PerformanceDriftDetector``      an error in [0, 1]   the model's (or a label cluster's) error rate
``PerformanceDriftMonitor``       errors per cluster   one performance detector per cluster + global
``LabelPriorDriftDetector``       a label set          label frequencies, cardinality, new labels
``LabelDependenceDriftDetector``  a set of label ids   which labels co-occur (pair dependence)
``InputDriftDetector``            a feature vector     the input distribution (random-feature MMD)
``LabelStructureDriftAdapter``    a StructureChange    label partition changes of the clusterer
================================  ==================  ==========================================
"""

from labelflow.operators.drift.base import DriftDetector, detector_from_state
from labelflow.operators.drift.dependence import LabelDependenceDriftDetector
from labelflow.operators.drift.events import EVENT_KINDS, GLOBAL_LEVEL, SEVERITIES, DriftEvent
from labelflow.operators.drift.input import InputDriftDetector
from labelflow.operators.drift.label_prior import LabelPriorDriftDetector
from labelflow.operators.drift.performance import PerformanceDriftDetector, PerformanceDriftMonitor
from labelflow.operators.drift.projection import SignProjection
from labelflow.operators.drift.structure import LabelStructureDriftAdapter, StructureChangeLike

__all__ = [
    "EVENT_KINDS",
    "GLOBAL_LEVEL",
    "SEVERITIES",
    "DriftDetector",
    "DriftEvent",
    "InputDriftDetector",
    "LabelDependenceDriftDetector",
    "LabelPriorDriftDetector",
    "LabelStructureDriftAdapter",
    "PerformanceDriftDetector",
    "PerformanceDriftMonitor",
    "SignProjection",
    "StructureChangeLike",
    "detector_from_state",
]
