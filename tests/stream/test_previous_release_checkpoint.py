"""A checkpoint written by the previous release (commit 6d2b808, before the declared state convention)
restores into the current code, writes back the same state (plus settings added since), and predicts what that release predicted.

The fixture and its predictions come from tests/fixtures/make_previous_release_checkpoint.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labelflow.operators.base import SparseVector
from labelflow.operators.learners.registry import make_learner
from labelflow.operators.state import State
from labelflow.stream.checkpoint import Checkpoint, CheckpointStore
from labelflow.stream.config import ModelSettings
from labelflow.stream.feedback_store import FeedbackStore
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.quality import QualityTracker

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "previous_release"
N_FEATURES = 64  # tests/fixtures/make_previous_release_checkpoint.py


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((FIXTURE / "predictions.json").read_text())


@pytest.fixture(scope="module")
def runtime() -> ModelRuntime:
    """A worker's default model setup, with the fixture's hashing width."""
    return ModelRuntime.from_settings(ModelSettings(embedder_kwargs={"n_features": N_FEATURES}))


@pytest.fixture(scope="module")
def checkpoint(runtime: ModelRuntime) -> Checkpoint:
    """The checkpoint as a worker finds it at start: matched against the worker's model identity."""
    found = CheckpointStore(FIXTURE / "checkpoints").latest(identity=runtime.identity)
    assert found is not None
    return found


# Arrays added since, so that a restored model continues bit for bit as the running one would have
# (pending threshold updates, the label-set decoder's per-cluster tables, drift detectors' prefix sums).
ADDED_ARRAYS = {
    "pending_lengths",
    "pending_scores",
    "pending_truth",
    "pending_weights",
    "table_n_sets",
    "table_set_lengths",
    "table_set_labels",
    "table_counts",
    "prefix",
    "prefix_squares",
    # the flat learner's second stacker and their race (issue 16): padded from the leading stacker
    "second_stack",
    "second_stack_g2",
    "stack_race",
}


def _assert_same_state(written: State, stored: State) -> None:
    """``written`` holds every entry of ``stored`` unchanged (it may add settings and the arrays above)."""
    _assert_contains(json.loads(json.dumps(written.meta)), stored.meta, "meta")
    assert set(stored.arrays) <= set(written.arrays)
    added = {
        key for key in set(written.arrays) - set(stored.arrays) if key.rsplit("/", 1)[-1] not in ADDED_ARRAYS
    }
    assert added == set(), sorted(added)
    for key, value in stored.arrays.items():
        assert written.arrays[key].dtype == value.dtype, key
        np.testing.assert_array_equal(written.arrays[key], value, err_msg=key)


def _assert_contains(written: object, stored: object, where: str) -> None:
    if isinstance(stored, dict) and isinstance(written, dict):
        for key, value in stored.items():
            assert key in written, f"{where}.{key} is missing"
            _assert_contains(written[key], value, f"{where}.{key}")
    else:
        assert written == stored, where


def test_the_model_predicts_as_the_previous_release_did(
    runtime: ModelRuntime, checkpoint: Checkpoint, expected: dict
) -> None:
    runtime.restore(checkpoint.model)
    assert runtime.embedder is not None
    for item in expected["predictions"]:
        decided, scores = runtime.model.predict_with_scores(runtime.embedder.embed_one(item["text"]))
        assert sorted(map(str, decided)) == item["labels"]
        assert sorted(map(str, scores)) == sorted(item["scores"])
        for label, p in scores.items():
            assert p == pytest.approx(item["scores"][str(label)], rel=1e-6, abs=1e-9)


def test_the_restored_model_writes_the_state_it_was_restored_from(checkpoint: Checkpoint) -> None:
    restored = make_learner("partitioned").from_state(checkpoint.model)
    assert restored.flat is not None  # the previous release's default learner is the flat part
    _assert_same_state(restored.flat.state(), checkpoint.model)


def test_the_restored_model_races_a_second_stacker_from_its_own(
    runtime: ModelRuntime, checkpoint: Checkpoint, expected: dict
) -> None:
    """The previous release had one stacker: the second starts as its copy, with no loss, and both learn on."""
    restored = make_learner("partitioned").from_state(checkpoint.model)
    flat = restored.flat
    assert flat is not None
    np.testing.assert_array_equal(flat._second_stack, flat._stack)
    np.testing.assert_array_equal(flat._second_stack_g2, np.zeros_like(flat._stack))
    np.testing.assert_array_equal(flat._stack_race, [0.0, 0.0, 0.5, 0.2])
    assert runtime.embedder is not None
    leader = flat._stack.copy()
    for item in expected["predictions"][:5]:
        restored.learn_one(runtime.embedder.embed_one(item["text"]), item["labels"])
    assert flat._stack_race[0] > 0 and flat._stack_race[1] > 0  # both stackers scored every document
    assert not np.array_equal(flat._second_stack, leader)  # and the second learned


def test_the_runtime_state_restores(checkpoint: Checkpoint) -> None:
    runtime = checkpoint.runtime
    assert runtime.meta["kind"] == "labelflow.worker_runtime"
    store_state, quality_state = runtime.detach("feedback"), runtime.detach("quality")
    store = FeedbackStore.from_state(store_state, max_entries=10, ttl_s=3600.0, remember_ids=20)
    quality = QualityTracker.from_state(quality_state, window=100)
    assert store.waiting_documents == 3
    assert quality.scored == 300 and quality.size == 100
    # The feedback store writes a newer, binary format (version 2, issue 13): what it holds is the same.
    assert store_state.meta["version"] == 1 and store.state().meta["version"] == 2
    again = FeedbackStore.from_state(store.state(), max_entries=10, ttl_s=3600.0, remember_ids=20)
    for doc_id in store_state.meta["documents"]["ids"]:
        before, after = store.take_document(doc_id), again.take_document(doc_id)
        assert before is not None and after is not None
        assert (before.predicted, before.stored_at) == (after.predicted, after.stored_at)
        x, y = before.features, after.features
        if isinstance(x, SparseVector):
            assert isinstance(y, SparseVector) and x.dim == y.dim
            assert np.array_equal(x.indices, y.indices) and np.array_equal(x.values, y.values)
        else:
            assert np.array_equal(x, y)
    assert all(again.was_learned(doc_id) for doc_id in store_state.meta["learned_ids"])
    _assert_same_state(quality.state(), quality_state)
