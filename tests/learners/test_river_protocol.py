"""labelflow learners in river's own evaluation loop, through RiverMultiLabel (no subclassing)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from river import evaluate, metrics

from labelflow.operators.embedders.registry import make_embedder
from labelflow.operators.io.streams import open_stream
from labelflow.operators.learners.registry import make_learner
from labelflow.operators.learners.river_protocol import RiverMultiLabel

N_ROWS = 800


def scene_as_river(datasets_dir: Path, n: int) -> tuple[list[tuple[dict, dict]], list[str]]:
    stream = open_stream(datasets_dir / "scene" / "Scene.arff.gz", format="arff")
    rows = list(itertools.islice(iter(stream), n))
    names = sorted({str(label) for row in rows for label in row.labels})
    dataset = []
    for row in rows:
        x = np.asarray(row.x)
        positive = {str(label) for label in row.labels}
        dataset.append(({i: float(v) for i, v in enumerate(x)}, {name: name in positive for name in names}))
    return dataset, names


def test_progressive_val_score_runs_the_default_learner(datasets_dir: Path) -> None:
    dataset, _ = scene_as_river(datasets_dir, N_ROWS)
    model = RiverMultiLabel(make_learner("partitioned"), n_features=len(dataset[0][0]))
    metric = metrics.multioutput.MicroAverage(metrics.F1())
    assert metric.works_with(model)
    result = evaluate.progressive_val_score(dataset, model, metric)
    assert result is metric and metric.get() > 0.5  # Scene: far above the no-change level of ~0.3

    # river's loop is prequential: the same as predicting then learning by hand with a fresh learner.
    by_hand = RiverMultiLabel(make_learner("partitioned"), n_features=len(dataset[0][0]))
    reference = metrics.multioutput.MicroAverage(metrics.F1())
    for x, y in dataset:
        y_pred = by_hand.predict_one(x)
        if y_pred:  # river skips the empty prediction of a model that knows no label yet
            reference.update(y, y_pred)
        by_hand.learn_one(x, y)
    assert reference.get() == pytest.approx(metric.get())


def test_text_inputs_go_through_an_embedder_and_unknown_labels_read_false() -> None:
    model = RiverMultiLabel(make_learner("partitioned"), embedder=make_embedder("hashing", n_features=2**12))
    for _ in range(30):
        model.learn_one("wheat harvest and grain exports", {"grain": True, "crude": False})
        model.learn_one("crude oil output and opec quotas", {"grain": False, "crude": True})
    assert model.predict_one("grain exports")["grain"] is True
    assert model.predict_one("grain exports")["never-seen"] is False
    proba = model.predict_proba_one("opec crude quotas")
    assert proba["crude"][True] > proba["grain"][True] and proba["crude"][False] == 1 - proba["crude"][True]


def test_text_without_an_embedder_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="embedder"):
        RiverMultiLabel(make_learner("partitioned")).predict_one("some text")
