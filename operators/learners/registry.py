"""Learners by name, for the CLI, the worker settings and the benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labelflow.operators.base import MultiLabelClassifier


def _partitioned(**kwargs: Any) -> MultiLabelClassifier:
    from labelflow.operators.learners.scaling import ScalingClassifier

    return ScalingClassifier(**kwargs)


def _flat(**kwargs: Any) -> MultiLabelClassifier:
    from labelflow.operators.learners.partitioned import PartitionedClassifier

    return PartitionedClassifier(**kwargs)


def _label_tree(**kwargs: Any) -> MultiLabelClassifier:
    from labelflow.operators.learners.tree_classifier import LabelTreeClassifier

    return LabelTreeClassifier(**kwargs)


def _no_change(**kwargs: Any) -> MultiLabelClassifier:
    from labelflow.operators.learners.baselines import NoChangeClassifier

    return NoChangeClassifier(**kwargs)


def _majority(**kwargs: Any) -> MultiLabelClassifier:
    from labelflow.operators.learners.baselines import MajorityLabelSetClassifier

    return MajorityLabelSetClassifier(**kwargs)


def _river_br(**kwargs: Any) -> MultiLabelClassifier:
    from labelflow.operators.learners.baselines import RiverMultiLabel

    return RiverMultiLabel.binary_relevance(**kwargs)


def _river_cc(**kwargs: Any) -> MultiLabelClassifier:
    from labelflow.operators.learners.baselines import RiverMultiLabel

    return RiverMultiLabel.classifier_chain(**kwargs)


def _adagrad_ovr(**kwargs: Any) -> MultiLabelClassifier:
    from labelflow.operators.learners.baselines import AdaGradOneVsRest

    return AdaGradOneVsRest(**kwargs)


_FACTORIES: dict[str, Callable[..., MultiLabelClassifier]] = {
    # The default: the flat learner on small label spaces, the label tree on large ones (ScalingClassifier).
    "partitioned": _partitioned,
    "flat": _flat,
    "label-tree": _label_tree,
    "no-change": _no_change,
    "majority-labelset": _majority,
    "river-br": _river_br,
    "river-cc": _river_cc,
    "adagrad-ovr": _adagrad_ovr,
}

#: Learner names; the first is the default.
LEARNERS: tuple[str, ...] = tuple(_FACTORIES)
DEFAULT_LEARNER = "partitioned"


def make_learner(name: str = DEFAULT_LEARNER, **kwargs: Any) -> MultiLabelClassifier:
    """A new learner by name; ``kwargs`` go to its constructor.

    Every built-in learner is deterministic, so a ``seed`` keyword is accepted and unused.

    >>> type(make_learner("partitioned")).__name__
    'ScalingClassifier'
    >>> make_learner("perceptron")
    Traceback (most recent call last):
    ...
    ValueError: unknown learner 'perceptron'; choose one of partitioned, flat, label-tree, no-change, majority-labelset, river-br, river-cc, adagrad-ovr
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown learner {name!r}; choose one of {', '.join(LEARNERS)}")
    kwargs.pop("seed", None)
    return factory(**kwargs)
