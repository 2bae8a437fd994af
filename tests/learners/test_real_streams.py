"""The default learner on slices of real streams: it learns, beats the trivial baselines, and its
partition stays valid. Accuracy targets against published results live in benchmarks/accuracy."""

from __future__ import annotations

import itertools

from labelflow.operators.embedders.hashing import HashingFeaturizer
from labelflow.operators.evaluation.prequential import evaluate_prequential
from labelflow.operators.io.arff import read_arff
from labelflow.operators.io.jsonl import read_jsonl
from labelflow.operators.learners.registry import make_learner


def check_partition(model):
    partition = model.partition
    covered = sorted(label for cluster in partition.clusters for label in cluster)
    assert covered == list(range(len(model.labels)))


def test_medical_stream_beats_baselines(datasets_dir):
    model = make_learner("partitioned")
    result = evaluate_prequential(read_arff(datasets_dir / "medical" / "Medical.arff"), model, progress=False)
    metrics = result.to_json()["metrics"]
    baselines = result.to_json()["baselines"]
    assert metrics["micro_f1"] > 0.6, metrics
    assert metrics["subset_accuracy"] > 2 * baselines["no-change"]["subset_accuracy"]
    check_partition(model)


def test_reuters_slice_with_hashing_features(datasets_dir):
    path = datasets_dir / "reuters21578_modapte" / "reuters21578_modapte.jsonl"
    model = make_learner("partitioned")
    result = evaluate_prequential(
        itertools.islice(read_jsonl(path), 1500), model, featurize=HashingFeaturizer(), progress=False
    )
    out = result.to_json()
    assert out["metrics"]["micro_f1"] > 0.7, out["metrics"]
    assert out["metrics"]["micro_f1"] > out["baselines"]["no-change"]["micro_f1"] + 0.3
    assert out["n_labels"] >= 40  # labels keep appearing through the stream and are all learned
    check_partition(model)
