"""The Python API: an Application with its own learner, embedder and callbacks, on the real broker."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig
from labelflow.operators.embedders.registry import make_embedder
from labelflow.operators.learners.registry import make_learner
from labelflow.stream import Application
from labelflow.stream.config import Settings
from labelflow.stream.messages import DeadLetter, Prediction
from labelflow.stream.testing import send, wait_for

pytestmark = pytest.mark.broker


def documents(n: int) -> list[dict[str, Any]]:
    stream = SyntheticStream(SyntheticStreamConfig(seed=11, n_documents=n, drift_events=[]))
    return [document.to_dict() for document in stream]


def test_callbacks_see_every_output_and_a_failing_callback_does_not_stop_the_worker(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for()
    learner = make_learner("partitioned")
    app = Application(settings, learner=learner, embedder=make_embedder("hashing", n_features=2**12))
    predictions: list[Prediction] = []
    letters: list[DeadLetter] = []
    lock = threading.Lock()

    @app.on_prediction
    def collect(prediction: Prediction) -> None:
        with lock:
            predictions.append(prediction)

    @app.on_prediction
    def broken(prediction: Prediction) -> None:
        raise RuntimeError("a bug in user code")

    app.on_dead_letter(letters.append)
    docs = documents(120)
    assert app.send(docs) == len(docs)
    send(settings, [(settings.topics.documents, None, b'{"id": "bad", "txt": "misspelt"}')])
    labelled = sum(1 for d in docs if "labels" in d)
    with app:
        wait_for(lambda: len(predictions) >= len(docs) and len(letters) >= 1, 60, "every output")
        wait_for(lambda: app.progress().learned >= labelled, 30, "every labelled document learned")
        progress = app.progress()
    assert {p.id for p in predictions} == {d["id"] for d in docs}
    assert [letter.reason.value for letter in letters] == ["unknown_field"]
    assert progress.learned == labelled > 0 and app.worker.runtime.model is learner
    assert any(settings.checkpoint.dir.glob("ckpt-*"))  # stop() checkpointed the custom learner
    assert app.worker.runtime.identity["learner"].endswith(type(learner).__qualname__)


def test_settings_by_keyword_and_nested_double_underscore() -> None:
    app = Application(brokers="k1:9092", documents_topic="in", batch__size=7, topics__drift="my.drift")
    s = app.settings
    assert (s.brokers, s.topics.documents, s.batch.size, s.topics.drift) == (["k1:9092"], "in", 7, "my.drift")
    again = Application(s, group_id="other")
    assert again.settings.batch.size == 7 and again.settings.group_id == "other"


def test_given_settings_keep_their_secrets() -> None:
    from labelflow.stream.config import load_settings

    settings = load_settings(
        None,
        {
            "security.protocol": "SASL_SSL",
            "security.sasl_mechanism": "PLAIN",
            "security.sasl_username": "user",
            "security.sasl_password": "s3cret",
        },
    )
    for app in (Application(settings), Application(settings, group_id="g2")):
        password = app.settings.security.sasl_password
        assert password is not None and password.get_secret_value() == "s3cret"


def test_a_given_learner_runs_under_the_settings_label_budget() -> None:
    # Instances and registry names build one runtime: the label budget used to be dropped for instances.
    app = Application(learner=make_learner("partitioned"), model__max_labels=5)
    runtime = app.build_runtime()
    assert runtime.max_labels == 5
    assert runtime.identity["learner"].endswith("ScalingClassifier")
