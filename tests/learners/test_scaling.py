"""The default learner hands over from the flat learner to the label tree as the label space grows."""

from __future__ import annotations

import numpy as np

from labelflow.operators.base import SparseVector
from labelflow.operators.datasets.power_law import PowerLawLabelStream, PowerLawStreamConfig
from labelflow.operators.learners.partitioned import PartitionedClassifier
from labelflow.operators.learners.scaling import ScalingClassifier
from labelflow.operators.state import State

from .conformance import check_state_round_trip, dense_stream


def test_small_label_spaces_stay_flat_and_predict_as_the_flat_learner() -> None:
    scaling, flat = ScalingClassifier(), PartitionedClassifier()
    stream = list(dense_stream(200, seed=2))
    # Scores are the flat learner's, calibrated; the published set is the decision experts' choice given
    # the flat learner's decision and the calibrated scores.
    calibrate = scaling.calibrator.calibrate
    for x, y in stream[:150]:
        decided, scores = flat.predict_with_scores(x)
        published = calibrate(scores)
        assert scaling.predict_with_scores(x) == (scaling.decisions.decide(decided, published), published)
        scaling.learn_one(x, y)
        flat.learn_one(x, y)
    assert scaling.active == "flat" and scaling.tree is None
    xs = [x for x, _ in stream[150:]]
    expected = [
        (scaling.decisions.decide(d, calibrate(s)), calibrate(s))
        for d, s in flat.predict_with_scores_many(xs)
    ]
    assert scaling.predict_with_scores_many(xs) == expected


def test_the_tree_shadows_then_takes_over_and_keeps_predicting(tmp_path) -> None:
    stream = PowerLawLabelStream(PowerLawStreamConfig(n_labels=2000, seed=4, n_features=2**12))
    model = ScalingClassifier(flat_max_labels=200, tree={"bits": 16})
    seen: set[str] = set()
    shadowed_at = handed_over_at = None
    for _i, doc in enumerate(stream.take(1500)):
        model.learn_one(doc.features, doc.labels)
        seen.update(doc.labels)
        if shadowed_at is None and model.tree is not None:
            shadowed_at = len(seen)
        if handed_over_at is None and model.flat is None:
            handed_over_at = len(seen)
    assert shadowed_at is not None and 100 <= shadowed_at < 110
    assert handed_over_at is not None and 200 <= handed_over_at < 210
    assert model.active == "tree" and set(model.labels) == seen
    x = stream.take(1)[0].features
    decided, scores = model.predict_with_scores(x)
    assert scores and decided <= set(scores) and len(scores) <= 10 + len(decided)
    model.state().save(tmp_path / "m")
    restored = ScalingClassifier.from_state(State.load(tmp_path / "m"))
    assert restored.active == "tree" and restored.predict_with_scores(x) == (decided, scores)


def test_wide_features_hand_over_by_memory_before_the_label_count() -> None:
    model = ScalingClassifier(flat_heads_budget=100 * 4 * (2**12 + 1), tree={"bits": 16})
    x = SparseVector(np.array([1, 5]), np.ones(2, dtype=np.float32), 2**12)
    for i in range(120):
        model.learn_one(x, [f"l{i}"])
    assert model.active == "tree"


def test_state_round_trip_while_both_learn(tmp_path) -> None:
    check_state_round_trip(lambda: ScalingClassifier(flat_max_labels=4, tree={"bits": 16}), tmp_path)
    model = ScalingClassifier(flat_max_labels=5, tree={"bits": 16})
    for x, y in dense_stream(50):
        model.learn_one(x, y)
    assert model.active == "flat" and model.tree is not None  # 3 labels: past half of 5, shadowing


def test_a_document_whose_new_labels_pass_the_limits_goes_to_the_tree_unlearned_by_the_flat_learner() -> None:
    # The flat learner allocates heads for every new label of a document before the size check ran
    # after it: one document of 1,000 new labels at 2**18 features was a 1.25 GB peak against the
    # 256 MB budget. Now the hand-over comes first.
    model = ScalingClassifier(flat_max_labels=64, tree={"bits": 16})
    dim = 2**10
    rng = np.random.default_rng(0)

    def document() -> SparseVector:
        indices = np.unique(rng.integers(0, dim, 20))
        return SparseVector(indices, np.ones(indices.size, dtype=np.float32), dim)

    for i in range(20):
        model.learn_one(document(), {f"a{i % 5}"})
    flat = model.flat
    assert flat is not None and model.tree is None and len(flat.label_index) == 5
    many = {f"b{j}" for j in range(200)}
    x = document()
    model.learn_one(x, many)
    assert model.active == "tree" and model.flat is None
    assert len(flat.label_index) == 5  # the flat learner never held the 200 new labels
    assert set(model.labels) >= many | {f"a{i}" for i in range(5)}
    assert set(model.predict_proba_one(x)) & many  # the tree learned the document
