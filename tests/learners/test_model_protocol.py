"""The model protocol the runtime relies on: defaults of MultiLabelClassifier and their limits."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytest

from labelflow.operators.base import Features, Label, MultiLabelClassifier, StateNotSupportedError
from labelflow.operators.learners.baselines import MajorityLabelSetClassifier
from labelflow.operators.state import Stateful
from labelflow.stream.model_runtime import ModelRuntime, ModelSetupError


class _Constant(MultiLabelClassifier):
    def learn_one(self, x: Features, y: Iterable[Label]) -> None:
        pass

    def predict_proba_one(self, x: Features) -> dict[Label, float]:
        return {"a": 0.9, "b": 0.1}


def test_defaults_predict_with_scores_and_report_no_partition_events_or_state() -> None:
    model = _Constant()
    x = np.zeros(2, dtype=np.float32)
    assert model.predict_with_scores(x) == ({"a"}, {"a": 0.9, "b": 0.1})
    assert model.predict_with_scores_many([x, x]) == [({"a"}, {"a": 0.9, "b": 0.1})] * 2
    assert model.partition is None and model.drain_events() == []
    with pytest.raises(StateNotSupportedError):
        model.state()


def test_the_runtime_reports_a_model_without_state_as_a_setup_error() -> None:
    runtime = ModelRuntime(MajorityLabelSetClassifier())
    with pytest.raises(ModelSetupError, match="cannot be checkpointed"):
        runtime.state()
    assert runtime.n_clusters == 0 and runtime.partition_version == 0


def test_a_state_mixin_listed_after_the_classifier_is_refused() -> None:
    # Its state() would be hidden by the classifier's default (the checkpoint would fail at run time).
    with pytest.raises(TypeError, match="before MultiLabelClassifier"):

        class _Hidden(MultiLabelClassifier, Stateful):
            def learn_one(self, x: Features, y: Iterable[Label]) -> None:
                pass

            def predict_proba_one(self, x: Features) -> dict[Label, float]:
                return {}
