"""Replay after a restore is deterministic: the default model, checkpointed to disk mid-stream, restored
and fed the rest of the stream in other batch cuts, ends with exactly the model of an uninterrupted run
(every array bit for bit, and its metadata). No broker: the processor is the worker's logic, and the
checkpoint round trip goes through the same files a worker writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig
from labelflow.operators.state import State
from labelflow.stream.checkpoint import Checkpoint, CheckpointStore
from labelflow.stream.config import Settings, load_settings
from labelflow.stream.feed import FeedPlan, feed
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.processor import BatchProcessor, InputRecord
from labelflow.stream.runtime_state import RuntimeState

N_DOCUMENTS = 3_000


def stream_records() -> list[InputRecord]:
    documents = (
        d.to_dict() for d in SyntheticStream(SyntheticStreamConfig(seed=21, n_documents=N_DOCUMENTS))
    )
    plan = FeedPlan(labelled_fraction=0.5, feedback_fraction=0.3, feedback_delay=100, seed=21)
    offsets = {"t.documents": 0, "t.labels": 0}
    records = []
    for kind, message in feed(documents, plan):
        topic = "t.documents" if kind == "document" else "t.labels"
        value = json.dumps(message).encode()
        records.append(
            InputRecord(topic, 0, offsets[topic], message["id"].encode(), value, 1_700_000_000_000)
        )
        offsets[topic] += 1
    return records


def settings() -> Settings:
    return load_settings(
        None,
        {
            "topics.documents": "t.documents",
            "topics.labels": "t.labels",
            "model.embedder_kwargs": {"n_features": 2**14},
        },
    )


def run(
    s: Settings, runtime: ModelRuntime, state: RuntimeState, records: list[InputRecord], size: int
) -> None:
    processor = BatchProcessor(s, runtime, state.store, state.counters, state.quality, "test")
    for start in range(0, len(records), size):
        processor.process(records[start : start + size])


def differing_arrays(a: State, b: State) -> list[str]:
    names = sorted(set(a.arrays) | set(b.arrays))
    return [
        name
        for name in names
        if name not in a.arrays
        or name not in b.arrays
        or a.arrays[name].shape != b.arrays[name].shape
        or not np.array_equal(a.arrays[name], b.arrays[name], equal_nan=a.arrays[name].dtype.kind == "f")
    ]


def test_a_restored_model_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    s = settings()
    records = stream_records()
    cut = len(records) * 2 // 5

    straight = ModelRuntime.from_settings(s.model)
    straight_state = RuntimeState.new(s)
    run(s, straight, straight_state, records, 100)

    first = ModelRuntime.from_settings(s.model)
    first_state = RuntimeState.new(s)
    run(s, first, first_state, records[:cut], 100)
    store = CheckpointStore(tmp_path)
    store.save(Checkpoint(first.state(), first_state.state(), {}, first.identity))

    checkpoint = store.latest()
    assert checkpoint is not None
    restored = ModelRuntime.from_settings(s.model)
    restored.restore(checkpoint.model)
    restored_state = RuntimeState.from_state(checkpoint.runtime, s)
    run(s, restored, restored_state, records[cut:], 37)  # other batch cuts than the straight run

    a, b = straight.state(), restored.state()
    assert differing_arrays(a, b) == [], f"{len(differing_arrays(a, b))} of {len(a.arrays)} arrays differ"
    assert json.dumps(a.meta, sort_keys=True) == json.dumps(b.meta, sort_keys=True)
    assert restored_state.counters.as_dict() == straight_state.counters.as_dict()
    assert restored_state.quality.micro_f1_cumulative == straight_state.quality.micro_f1_cumulative
