"""Label budgets keep a worker alive: max_labels refuses new labels, a failed learn step is all or nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

from labelflow.operators.base import Features, MultiLabelClassifier, SparseVector
from labelflow.operators.learners.label_index import LabelIndex
from labelflow.operators.learners.tree_classifier import LabelTreeClassifier
from labelflow.stream.config import ModelSettings
from labelflow.stream.messages import MessageError, Reason
from labelflow.stream.model_runtime import ModelInconsistentError, ModelRuntime

X = SparseVector(np.array([1, 4]), np.ones(2, dtype=np.float32), 16)


def test_new_labels_past_the_budget_are_refused_and_the_model_is_unchanged() -> None:
    runtime = ModelRuntime(LabelTreeClassifier(bits=12), max_labels=3)
    runtime.learn(X, ["a", "b"])
    runtime.learn(X, ["c"])
    with pytest.raises(MessageError) as refused:
        runtime.learn(X, ["a", "d"])
    assert refused.value.reason == Reason.LABEL_BUDGET and "budget of 3 labels" in str(refused.value)
    assert runtime.labels == ["a", "b", "c"] and runtime.n_learned == 2
    runtime.learn(X, ["a", "c"])  # known labels are still learned
    assert runtime.n_learned == 3


def test_the_default_budget_is_a_million_labels_and_predictions_show_twenty_scores() -> None:
    settings = ModelSettings()
    assert settings.max_labels == 1_000_000 and settings.score_top_k == 20
    with pytest.raises(ValueError):
        ModelSettings(score_top_k=5000)


class _RegistersThenFails(MultiLabelClassifier):
    """A model whose learn step registers the labels and then fails (the old 97.7 GiB allocation)."""

    def __init__(self) -> None:
        self.label_index = LabelIndex()

    def learn_one(self, x: Features, y: Iterable[Any]) -> None:
        self.label_index.ids(y)
        raise MemoryError("Unable to allocate 97.7 GiB")

    def predict_proba_one(self, x: Features) -> dict[Any, float]:
        return {}

    @property
    def labels(self) -> list[Any]:
        return self.label_index.names


def test_a_learn_step_that_leaves_labels_without_models_is_fatal() -> None:
    runtime = ModelRuntime(_RegistersThenFails())
    with pytest.raises(ModelInconsistentError, match="after registering 1 new labels"):
        runtime.learn(X, ["a"])


def test_the_label_tree_takes_the_memory_for_new_labels_before_registering_them(monkeypatch) -> None:
    model = LabelTreeClassifier(bits=12)
    runtime = ModelRuntime(model)
    runtime.learn(X, ["a"])

    def no_memory(n_nodes: int) -> None:
        raise MemoryError("no room for the new nodes")

    monkeypatch.setattr(model.weights, "reserve", no_memory)
    with pytest.raises(MemoryError):  # not ModelInconsistentError: the label space is as it was
        runtime.learn(X, ["b", "c"])
    assert runtime.labels == ["a"] and model.tree.n_nodes == 2 and model.weights.n_nodes == 2
    runtime.learn(X, ["a"])


def test_a_prediction_shows_the_top_k_scores_and_every_decided_labels_score() -> None:
    class _Fixed(_RegistersThenFails):
        def predict_with_scores(self, x: Features) -> tuple[set[str], dict[str, float]]:
            scores = {f"l{i}": 1.0 - i / 100 for i in range(50)}
            return {"l0", "l40"}, scores

    runtime = ModelRuntime(_Fixed(), score_top_k=3)
    scored = runtime.predict_one(X)
    assert scored.labels == {"l0", "l40"}
    assert set(scored.scores) == {"l0", "l1", "l2", "l40"}


def test_published_scores_keep_the_models_order_among_equal_scores_and_respect_the_floor() -> None:
    class _Ties(_RegistersThenFails):
        def predict_with_scores(self, x: Features) -> tuple[set[str], dict[str, float]]:
            return {"z"}, {"d": 0.5, "c": 0.9, "b": 0.5, "a": 0.5, "z": 0.01, "y": 0.02}

    scored = ModelRuntime(_Ties(), score_top_k=3, score_floor=0.015).predict_one(X)
    assert list(scored.scores.items()) == [("c", 0.9), ("d", 0.5), ("b", 0.5), ("z", 0.01)]
