"""Online clustering of the label space into groups of co-occurring labels (iHOMER step 1)."""

from labelflow.operators.labels.association import Association
from labelflow.operators.labels.clustering import LabelClusterer, StructureChange
from labelflow.operators.labels.cooccurrence import LabelCooccurrence
from labelflow.operators.labels.partition import Partition

__all__ = ["Association", "LabelClusterer", "LabelCooccurrence", "Partition", "StructureChange"]
