"""Fixtures of the runtime's tests: a small test-double model for fast unit tests of pure runtime logic
(the broker and per-test settings are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

from labelflow.operators.base import Features, MultiLabelClassifier, SparseVector
from labelflow.operators.drift.events import GLOBAL_LEVEL, DriftEvent
from labelflow.operators.embedders.registry import make_embedder
from labelflow.operators.labels.partition import Partition
from labelflow.operators.state import State
from labelflow.stream.model_runtime import ModelRuntime


def _dense(x: Features, dim: int) -> np.ndarray:
    if isinstance(x, SparseVector):
        out = np.zeros(dim, dtype=np.float32)
        np.add.at(out, x.indices % dim, x.values)
        return out
    return np.resize(np.asarray(x, dtype=np.float32), dim)


class PerceptronModel(MultiLabelClassifier):
    """A deterministic stand-in for the default learner (unit tests of runtime logic only).

    One logistic unit per label over features folded into ``dim`` columns; it honours the contract the
    runtime relies on (predict_with_scores, labels, partition, drain_events, state, from_state) and
    emits a structure event per new label. ``fail_on`` names a label whose learning raises.
    """

    def __init__(self, dim: int = 256, fail_on: str | None = None) -> None:
        self.dim = dim
        self.fail_on = fail_on
        self._labels: list[str] = []
        self.w = np.zeros((0, dim), dtype=np.float32)
        self.b = np.zeros(0, dtype=np.float32)
        self.n_learned = 0
        self.learned_ids: list[int] = []
        self._events: list[DriftEvent] = []

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    @property
    def partition(self) -> Partition:
        return Partition.from_clusters(len(self._labels), [[i] for i in range(len(self._labels))])

    def drain_events(self) -> list[DriftEvent]:
        events, self._events = self._events, []
        return events

    def _p(self, x: Features) -> np.ndarray:
        if not self._labels:
            return np.zeros(0, dtype=np.float32)
        z = self.w @ _dense(x, self.dim) + self.b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def predict_with_scores(self, x: Features) -> tuple[set[str], dict[str, float]]:
        scores = {label: float(v) for label, v in zip(self._labels, self._p(x), strict=True)}
        return {label for label, v in scores.items() if v >= 0.5}, scores

    def predict_proba_one(self, x: Features) -> dict[str, float]:
        return self.predict_with_scores(x)[1]

    def learn_one(self, x: Features, y: Iterable[Any]) -> None:
        names = [str(label) for label in y]
        if self.fail_on is not None and self.fail_on in names:
            raise ValueError(f"refusing to learn {self.fail_on}")
        for label in names:
            if label not in self._labels:
                self._labels.append(label)
                self.w = np.vstack([self.w, np.zeros((1, self.dim), dtype=np.float32)])
                self.b = np.append(self.b, np.float32(-1.0))
                self._events.append(
                    DriftEvent(
                        kind="label_structure",
                        level=GLOBAL_LEVEL,
                        labels=(label,),
                        detector="double",
                        statistic=1.0,
                        threshold=0.0,
                        position=self.n_learned,
                        action="new_label",
                    )
                )
        target = np.array([label in names for label in self._labels], dtype=np.float32)
        error = target - self._p(x)
        self.w += np.outer(error, _dense(x, self.dim))
        self.b += error
        self.n_learned += 1

    def state(self) -> State:
        return State(
            meta={"format": "double/1", "dim": self.dim, "labels": self._labels, "n_learned": self.n_learned},
            arrays={"w": self.w, "b": self.b},
        )

    @classmethod
    def from_state(cls, state: State) -> PerceptronModel:
        if state.meta.get("format") != "double/1":
            raise ValueError("not a PerceptronModel state")
        model = cls(dim=state.meta["dim"])
        model._labels = list(state.meta["labels"])
        model.n_learned = state.meta["n_learned"]
        model.w = state.arrays["w"].astype(np.float32)
        model.b = state.arrays["b"].astype(np.float32)
        return model


@pytest.fixture
def double_runtime() -> Callable[..., ModelRuntime]:
    """Factory of a ModelRuntime around the test double and a small real hashing embedder."""

    def make(**model_kwargs: Any) -> ModelRuntime:
        return ModelRuntime(
            PerceptronModel(**model_kwargs),
            make_embedder("hashing", n_features=2**10),
            identity={"learner": "double"},
        )

    return make
