"""The trivial baselines and the river adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from river import compose, linear_model, multioutput

from labelflow.operators.base import SparseVector
from labelflow.operators.evaluation.prequential import evaluate_prequential
from labelflow.operators.io.arff import read_arff
from labelflow.operators.learners.baselines import (
    MajorityLabelSetClassifier,
    NoChangeClassifier,
    RiverMultiLabel,
    to_river_features,
)


def test_no_change_predicts_the_previous_set_and_round_trips() -> None:
    model = NoChangeClassifier()
    assert model.predict_one(None) == set() and model.predict_proba_one(None) == {}
    model.learn_one(None, ["a", "b"])
    model.learn_one(None, [])
    assert model.predict_one(None) == set()
    assert model.predict_proba_one(None) == {"a": 0.0, "b": 0.0}
    model.learn_one(None, ["c", "a"])
    restored = NoChangeClassifier.from_state(model.state())
    assert restored.predict_one(None) == {"a", "c"} and restored.labels == ["a", "b", "c"]


def test_majority_keeps_the_first_set_to_reach_the_top_count() -> None:
    model = MajorityLabelSetClassifier()
    for labels in (["x"], ["y"], ["y"], ["x"], []):
        model.learn_one(None, labels)
    assert model.predict_one(None) == {"y"}  # reached 2 before ["x"] did
    assert model.n_label_sets == 3
    assert model.predict_proba_one(None) == {"x": 0.4, "y": 0.4}


def test_features_become_river_dicts() -> None:
    assert to_river_features(SparseVector.from_dict({3: 0.5, 1: 2.0}, dim=5)) == {1: 2.0, 3: 0.5}
    assert to_river_features(np.array([1.0, 0.0])) == {0: 1.0, 1: 0.0}
    with pytest.raises(ValueError, match="1-D"):
        to_river_features(np.zeros((2, 2)))


def separable_stream(n: int, sparse: bool):
    rng = np.random.default_rng(0)
    for i in range(n):
        k = i % 3
        x = rng.normal(0, 0.1, 3).astype(np.float32)
        x[k] += 1.0
        labels = [["a"], ["b"], ["a", "c"]][k]
        if sparse:
            yield SparseVector.from_dict({j: float(v) for j, v in enumerate(x)}, dim=3), labels
        else:
            yield x, labels


@pytest.mark.parametrize("build", [RiverMultiLabel.binary_relevance, RiverMultiLabel.classifier_chain])
@pytest.mark.parametrize("sparse", [False, True])
def test_river_models_learn_a_separable_stream(build, sparse: bool) -> None:
    model = build()
    correct = 0
    for i, (x, labels) in enumerate(separable_stream(600, sparse)):
        predicted, scores = model.predict_with_scores(x)
        if i >= 500:
            correct += predicted == set(labels)
        model.learn_one(x, labels)
    assert correct >= 95
    assert set(model.labels) == {"a", "b", "c"}
    assert isinstance(model._model, compose.Pipeline) != sparse  # dense inputs are scaled


def test_chain_learns_a_new_label_from_its_first_instance() -> None:
    model = RiverMultiLabel.classifier_chain(scale_dense=False)
    x = np.array([1.0, 0.0])
    model.learn_one(x, ["first"])
    model.learn_one(x, ["first", "late"])
    assert model._inner.order == ["first", "late"]
    # river alone would append "late" to the chain after this instance and never learn from it:
    # its model would still answer exactly 0.5. Ours has seen one positive example.
    assert model.predict_proba_one(x)["late"] > 0.5
    plain = multioutput.ClassifierChain(linear_model.LogisticRegression(), order=[])
    plain.learn_one({0: 1.0}, {"first": True})
    plain.learn_one({0: 1.0}, {"first": True, "late": True})
    assert plain.predict_proba_one({0: 1.0})["late"][True] == pytest.approx(0.5)


def test_river_baseline_through_the_evaluator(datasets_dir: Path) -> None:
    result = evaluate_prequential(
        read_arff(datasets_dir / "scene" / "Scene.arff.gz", limit=200),
        RiverMultiLabel.binary_relevance(),
        progress=False,
    )
    assert result.learner == "river-br" and result.n_instances == 200
    assert result.metrics["micro_f1"] > 0.3
