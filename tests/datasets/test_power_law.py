"""The power-law label stream: seeded, long-tailed, about four labels a document, features that carry them."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from labelflow.operators.datasets.power_law import PowerLawLabelStream, PowerLawStreamConfig


def _docs(n: int, **settings: object):
    return PowerLawLabelStream(PowerLawStreamConfig(**settings)).take(n)  # type: ignore[arg-type]


def test_the_same_seed_gives_the_same_stream_and_another_seed_another() -> None:
    a, b, c = _docs(50, seed=1), _docs(50, seed=1), _docs(50, seed=2)
    assert [d.labels for d in a] == [d.labels for d in b]
    assert all(np.array_equal(x.features.indices, y.features.indices) for x, y in zip(a, b, strict=False))
    assert [d.labels for d in a] != [d.labels for d in c]


def test_label_frequencies_follow_a_power_law() -> None:
    counts = Counter(label for d in _docs(5000, n_labels=10_000, seed=0) for label in d.labels)
    first = counts["L0"]
    # Zipf with exponent 1: rank 0 is far more frequent than rank 99, and most labels seen are rare.
    assert first > 20 * max(counts.get("L99", 0), 1)
    assert sum(1 for n in counts.values() if n <= 2) > 0.5 * len(counts)


def test_about_four_distinct_labels_per_document_within_the_space() -> None:
    docs = _docs(2000, n_labels=1000, seed=0)
    sizes = [len(d.labels) for d in docs]
    assert 3.5 < np.mean(sizes) < 4.5
    assert all(len(set(d.labels)) == len(d.labels) >= 1 for d in docs)
    assert all(0 <= int(label[1:]) < 1000 for d in docs for label in d.labels)


def test_features_carry_the_labels() -> None:
    stream = PowerLawLabelStream(PowerLawStreamConfig(n_labels=1_000_000, seed=5, feature_keep=1.0))
    for doc in stream.take(100):
        present = set(doc.features.indices.tolist())
        for label in doc.labels:
            assert set(stream.label_features(int(label[1:])).tolist()) <= present
        assert np.all(np.diff(doc.features.indices) > 0) and np.all(doc.features.values == 1.0)


def test_a_million_labels_costs_memory_for_the_cumulative_weights_only() -> None:
    stream = PowerLawLabelStream(PowerLawStreamConfig(n_labels=1_000_000, seed=0))
    assert stream._label_cdf.nbytes == 8_000_000
    assert max(int(label[1:]) for d in stream.take(2000) for label in d.labels) > 10_000


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError):
        PowerLawStreamConfig(n_labels=0)
    with pytest.raises(ValidationError):
        PowerLawStreamConfig(labels_per_doc=4.0, unknown=1)  # type: ignore[call-arg]
