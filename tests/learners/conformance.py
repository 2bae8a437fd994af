"""A generic conformance check for multi-label learners, in the spirit of river's ``check_estimator``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from labelflow.operators.base import MultiLabelClassifier, SparseVector
from labelflow.operators.state import State

LearnerFactory = Callable[[], MultiLabelClassifier]


def dense_stream(n: int, seed: int = 0, dim: int = 8):
    """Two well-separated topics; labels ``a``+``b`` for one, ``c`` for the other."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        topic = int(rng.integers(2))
        x = (rng.normal(size=dim) + 3.0 * topic).astype(np.float32)
        yield x, (["a", "b"] if topic else ["c"])


def sparse_stream(n: int, seed: int = 0, dim: int = 64):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        topic = int(rng.integers(3))
        words = np.unique(rng.integers(0, 10, size=4) + 20 * topic)
        yield SparseVector(words.astype(np.int64), np.ones(len(words), dtype=np.float32), dim), [f"t{topic}"]


def check_learns_separable_stream(factory: LearnerFactory) -> None:
    model = factory()
    stream = list(dense_stream(400))
    for x, y in stream[:300]:
        model.learn_one(x, y)
    correct = sum(model.predict_one(x) == set(y) for x, y in stream[300:])
    assert correct >= 90, f"{type(model).__name__} got {correct}/100 exact on a separable stream"


def check_sparse_input(factory: LearnerFactory) -> None:
    model = factory()
    stream = list(sparse_stream(300))
    for x, y in stream[:250]:
        model.learn_one(x, y)
    correct = sum(model.predict_one(x) == set(y) for x, y in stream[250:])
    assert correct >= 35, f"{type(model).__name__} got {correct}/50 on sparse input"


def check_predicts_before_learning(factory: LearnerFactory) -> None:
    model = factory()
    x = np.zeros(4, dtype=np.float32)
    assert model.predict_one(x) == set()
    assert model.predict_proba_one(x) == {}


def check_empty_label_sets(factory: LearnerFactory) -> None:
    model = factory()
    for x, _ in dense_stream(50):
        model.learn_one(x, [])
    x = next(dense_stream(1, seed=1))[0]
    assert model.predict_one(x) == set()


def check_new_labels_mid_stream(factory: LearnerFactory) -> None:
    model = factory()
    stream = list(dense_stream(300))
    for x, y in stream[:150]:
        model.learn_one(x, [label for label in y if label != "b"])
    assert "b" not in model.labels
    for x, y in stream[150:]:
        model.learn_one(x, y)
    assert "b" in model.labels
    x = (np.full(8, 3.0)).astype(np.float32)
    assert "b" in model.predict_one(x), "a label that appeared mid-stream is never predicted"


def check_deterministic(factory: LearnerFactory) -> None:
    outputs = []
    for _ in range(2):
        model = factory()
        for x, y in dense_stream(120, seed=3):
            model.learn_one(x, y)
        outputs.append(model.predict_proba_one(next(dense_stream(1, seed=9))[0]))
    assert outputs[0] == outputs[1]


def check_state_round_trip(factory: LearnerFactory, tmp_path) -> None:
    model = factory()
    if not hasattr(model, "state"):
        return
    stream = list(dense_stream(200, seed=4))
    for x, y in stream[:100]:
        model.learn_one(x, y)
    model.state().save(tmp_path / "state")
    restored = type(model).from_state(State.load(tmp_path / "state"))
    for x, y in stream[100:]:
        assert restored.predict_proba_one(x) == model.predict_proba_one(x)
        assert restored.predict_one(x) == model.predict_one(x)
        model.learn_one(x, y)
        restored.learn_one(x, y)


def check_batch_matches_one_by_one(factory: LearnerFactory) -> None:
    model = factory()
    stream = list(dense_stream(100, seed=5))
    for x, y in stream[:80]:
        model.learn_one(x, y)
    xs = [x for x, _ in stream[80:]]
    assert model.predict_many(xs) == [model.predict_one(x) for x in xs]


CHECKS = (
    check_learns_separable_stream,
    check_sparse_input,
    check_predicts_before_learning,
    check_empty_label_sets,
    check_new_labels_mid_stream,
    check_deterministic,
    check_batch_matches_one_by_one,
)
