"""The prequential loop: order of calls, every instance scored, baselines, curves, events, segments."""

from __future__ import annotations

import heapq
import itertools
import json
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelflow.operators.base import MultiLabelClassifier
from labelflow.operators.embedders.hashing import HashingFeaturizer
from labelflow.operators.evaluation.prequential import _top_k, evaluate_prequential, format_table
from labelflow.operators.io.arff import read_arff
from labelflow.operators.io.instances import Instance
from labelflow.operators.io.jsonl import read_jsonl
from labelflow.operators.learners.baselines import MajorityLabelSetClassifier, NoChangeClassifier


class SpyModel(MultiLabelClassifier):
    """Predicts the labels it saw last time for the same feature value; logs every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.memory: dict[float, set[str]] = {}

    def learn_one(self, x, y) -> None:
        self.calls.append(("learn", str(float(x[0]))))
        self.memory[float(x[0])] = set(y)

    def predict_proba_one(self, x) -> dict[str, float]:
        self.calls.append(("proba", str(float(x[0]))))
        known = {label for labels in self.memory.values() for label in labels}
        return {label: 1.0 if label in self.memory.get(float(x[0]), ()) else 0.0 for label in sorted(known)}

    def predict_one(self, x) -> set[str]:
        self.calls.append(("predict", str(float(x[0]))))
        return set(self.memory.get(float(x[0]), set()))


@dataclass
class Event:
    position: int
    kind: str = "label_structure"


class JointModel(SpyModel):
    """Has predict_with_scores, drain_events and n_clusters, like the default learner."""

    def __init__(self) -> None:
        super().__init__()
        self.n_learned = 0
        self.pending: list[Event] = []
        self.n_clusters = 1

    def predict_with_scores(self, x):
        self.calls.append(("joint", str(float(x[0]))))
        return {"l0"}, {"l0": 0.9, "l1": 0.2}

    def learn_one(self, x, y) -> None:
        super().learn_one(x, y)
        self.n_learned += 1
        if self.n_learned in (3, 7):
            self.pending.append(Event(self.n_learned))
            self.n_clusters += 1

    def drain_events(self):
        events, self.pending = self.pending, []
        return events


def toy_stream(n: int) -> list[Instance]:
    return [Instance(str(i), np.array([float(i % 3)]), None, [f"l{i % 3}"], {}) for i in range(n)]


def test_each_instance_is_predicted_before_it_is_learned() -> None:
    model = SpyModel()
    result = evaluate_prequential(toy_stream(9), model, progress=False, record_every=4)
    assert result.n_instances == 9
    # predict (decided set) and proba (scores for P@k), then learn, for each instance in order.
    per_instance = [model.calls[i : i + 3] for i in range(0, len(model.calls), 3)]
    assert len(per_instance) == 9
    for i, calls in enumerate(per_instance):
        x = str(float(i % 3))
        assert calls == [("predict", x), ("proba", x), ("learn", x)]
    # The first three are unseen values (wrong), the rest are remembered (right).
    assert result.metrics["subset_accuracy"] == pytest.approx(6 / 9)
    assert [p["position"] for p in result.curves] == [4, 8, 9]


def test_scores_are_not_requested_without_p_at_k() -> None:
    model = SpyModel()
    evaluate_prequential(toy_stream(3), model, progress=False, p_at_k=())
    assert [name for name, _ in model.calls] == ["predict", "learn"] * 3


def test_joint_prediction_events_and_clusters_are_used() -> None:
    model = JointModel()
    result = evaluate_prequential(toy_stream(10), model, progress=False, record_every=5)
    assert {name for name, _ in model.calls} == {"joint", "learn"}
    assert result.partition["changes"] == [3, 7]
    assert result.partition["n_clusters"] == 3
    assert [p["n_clusters"] for p in result.curves] == [2, 3]
    # "l0" is ranked first and is the label of every third instance.
    assert result.metrics["p_at_1"] == pytest.approx(sum(i % 3 == 0 for i in range(10)) / 10)
    assert result.metrics["subset_accuracy"] == pytest.approx(0.4)


def test_a_model_without_events_or_clusters_is_fine() -> None:
    result = evaluate_prequential(toy_stream(4), NoChangeClassifier(), progress=False)
    assert result.partition == {"n_clusters": None, "changes": []} and result.drift_events == []


def test_baselines_run_in_the_same_pass_and_match_the_classes(datasets_dir: Path) -> None:
    stream = read_arff(datasets_dir / "scene" / "Scene.arff.gz")
    as_model = evaluate_prequential(stream, NoChangeClassifier(), progress=False)
    # The no-change baseline alone scores 0.875 subset accuracy on Scene (ordered stream).
    assert as_model.baselines["no-change"]["subset_accuracy"] == pytest.approx(0.8754, abs=1e-4)
    for key in ("subset_accuracy", "hamming_loss", "micro_f1", "macro_f1", "example_f1"):
        assert as_model.metrics[key] == pytest.approx(as_model.baselines["no-change"][key])
    scene_500 = read_arff(datasets_dir / "scene" / "Scene.arff.gz", limit=500)
    majority = evaluate_prequential(scene_500, MajorityLabelSetClassifier(), progress=False, p_at_k=())
    for key in ("subset_accuracy", "micro_f1", "macro_f1"):
        assert majority.metrics[key] == pytest.approx(majority.baselines["majority-labelset"][key])
    assert as_model.n_labels == 6


def test_arff_header_labels_count_in_macro_f1(datasets_dir: Path) -> None:
    # Slashdot declares 22 labels, two of which are never positive: they still count (as 0).
    stream = read_arff(datasets_dir / "slashdot" / "Slashdot.arff", limit=50)
    result = evaluate_prequential(stream, NoChangeClassifier(), progress=False)
    assert result.n_labels == 22


def test_text_stream_with_featurizer_and_the_test_segment(datasets_dir: Path) -> None:
    path = datasets_dir / "reuters21578_modapte" / "reuters21578_modapte.jsonl"
    docs = list(itertools.islice((d for d in read_jsonl(path) if d.meta["split"] == "train"), 60))
    docs += list(itertools.islice((d for d in read_jsonl(path) if d.meta["split"] == "test"), 40))
    result = evaluate_prequential(
        docs, MajorityLabelSetClassifier(), featurize=HashingFeaturizer(), progress=False, dataset="reuters"
    )
    assert result.n_instances == 100 and result.feature_seconds > 0
    segment = result.segments["split=test"]
    assert segment["model"]["n_instances"] == 40
    assert set(segment) == {"model", "no-change", "majority-labelset"}
    assert segment["model"]["micro_f1"] == pytest.approx(segment["majority-labelset"]["micro_f1"])
    no_segment = evaluate_prequential(
        docs[:10],
        MajorityLabelSetClassifier(),
        featurize=HashingFeaturizer().transform_many,
        progress=False,
        segment=None,
    )
    assert no_segment.segments == {}


def test_unlabelled_instances_are_predicted_but_not_scored_or_learned() -> None:
    model = SpyModel()
    stream = toy_stream(4)
    stream[1] = Instance("u", np.array([5.0]), None, None, {})
    result = evaluate_prequential(stream, model, progress=False)
    assert result.n_instances == 3 and result.n_unlabelled == 1
    assert ("learn", "5.0") not in model.calls and ("predict", "5.0") in model.calls


def test_json_has_the_documented_fields_and_serialises(datasets_dir: Path) -> None:
    stream = read_arff(datasets_dir / "enron" / "Enron.arff")
    result = evaluate_prequential(
        stream, NoChangeClassifier(), limit=250, progress=False, record_every=100, window=100
    )
    data = json.loads(json.dumps(result.to_json()))
    for key in (
        "dataset",
        "n_instances",
        "n_labels",
        "seconds",
        "instances_per_second",
        "model_instances_per_second",
        "model_instances_per_second_median",
        "metrics",
        "partition",
        "baselines",
        "curves",
        "p_at_k",
    ):
        assert key in data
    assert set(data["metrics"]) >= {"subset_accuracy", "hamming_loss", "micro_f1", "macro_f1", "example_f1"}
    assert set(data["partition"]) >= {"n_clusters", "changes"}
    assert set(data["baselines"]) == {"no-change", "majority-labelset"}
    assert data["dataset"] == "Enron" and data["n_instances"] == 250 and data["n_labels"] == 53
    assert set(data["p_at_k"]) == {"1", "3", "5"}
    assert 0 < data["model_seconds"] <= data["seconds"]
    assert [p["position"] for p in data["curves"]] == [100, 200, 250]
    # Windowed metrics over the last 100 differ from the cumulative ones by construction.
    assert data["curves"][-1]["window"].keys() == data["curves"][-1]["cumulative"].keys()
    table = format_table(result)
    assert "micro-F1" in table and "no-change" in table and "majority-labelset" in table


def test_clear_errors() -> None:
    text_only = [Instance("t1", None, "some text", ["a"], {})]
    with pytest.raises(ValueError, match="no feature vector and no featurizer"):
        evaluate_prequential(text_only, NoChangeClassifier(), progress=False)
    with pytest.raises(ValueError, match="neither features nor text"):
        empty = [Instance("e", None, None, ["a"], {})]
        evaluate_prequential(empty, NoChangeClassifier(), featurize=HashingFeaturizer(), progress=False)
    with pytest.raises(ValueError, match="window"):
        evaluate_prequential([], NoChangeClassifier(), window=0, progress=False)
    with pytest.raises(TypeError, match="featurize"):
        evaluate_prequential(text_only, NoChangeClassifier(), featurize=42, progress=False)


def test_empty_stream() -> None:
    result = evaluate_prequential([], NoChangeClassifier(), progress=False)
    assert result.n_instances == 0 and result.metrics["micro_f1"] == 0.0 and len(result.curves) == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0, 1), min_size=0, max_size=120),
    st.integers(1, 6),
)
def test_top_k_matches_a_stable_heap_selection(values: list[float], k: int) -> None:
    scores = {f"label{i}": v for i, v in enumerate(values)}
    expected = [name for name, _ in heapq.nlargest(k, scores.items(), key=itemgetter(1))]
    assert _top_k(scores, k) == expected
