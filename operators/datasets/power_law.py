"""A seeded multi-label stream with a power-law label distribution over a label space of any size.

Built to measure learners on large label spaces (1k to 1M labels) with features that carry the labels,
fast enough to generate a million labelled documents in seconds. Per document:

1. draw the number of labels (1 + Poisson(``labels_per_doc - 1``), at most ``max_labels_per_doc``);
2. draw the first label from a Zipf law over label ranks (rank ``r`` has weight ``1 / (r + 1) ** a``), so a
   few labels are frequent and most are rare, as in EUR-Lex or Wikipedia tags;
3. draw each further label from the first one's *group* (``group_size`` consecutive ranks, correlated
   labels a label-space clusterer should find) with probability ``group_affinity``, else from the Zipf law;
4. the features: each label owns ``features_per_label`` hashed feature ids, present with probability
   ``feature_keep`` (so one document shows most, not all, of its labels' evidence); each group owns as
   many (present whenever one of its labels is); ``noise_features`` background ids come from a Zipf law
   over a shared vocabulary. Values are 1 (a bag of words); learners scale them as they do text.

Feature ids are a fixed hash of (seed, label) into ``n_features`` columns, so the stream needs no
per-label tables: memory is ``O(n_labels)`` floats (the Zipf cumulative weights) whatever the length.
Label names are ``"L<rank>"``: rank 0 is the most frequent label.

>>> stream = PowerLawLabelStream(PowerLawStreamConfig(n_labels=1000, seed=3))
>>> docs = stream.take(200)
>>> len(docs), docs[0].features.dim
(200, 65536)
>>> 3.0 < sum(len(d.labels) for d in docs) / len(docs) < 5.0
True
>>> [d.labels for d in PowerLawLabelStream(PowerLawStreamConfig(n_labels=1000, seed=3)).take(2)] == [
...     d.labels for d in docs[:2]]
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from labelflow.operators.base import SparseVector
from labelflow.operators.mix64 import mix64

_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio constant: spreads consecutive ids over the hash range
_GROUP_SALT = 0x5BD1E995  # keeps group feature ids apart from label feature ids
_NOISE_SALT = 0x27D4EB2F


class PowerLawStreamConfig(BaseModel):
    """Settings of :class:`PowerLawLabelStream`; every field has a default that gives a realistic stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_labels: int = Field(default=10_000, ge=1)
    #: Mean label set size (about 4, as in the large-label benchmarks: EUR-Lex 5.1, Wiki10 ~19, Delicious ~19).
    labels_per_doc: float = Field(default=4.0, ge=1.0)
    max_labels_per_doc: int = Field(default=16, ge=1)
    #: Zipf exponent over label ranks: 1 gives the long tail of real label spaces.
    zipf_exponent: float = Field(default=1.0, gt=0.0)
    group_size: int = Field(default=8, ge=1)
    group_affinity: float = Field(default=0.6, ge=0.0, le=1.0)
    n_features: int = Field(default=2**16, ge=16)
    features_per_label: int = Field(default=4, ge=1)
    feature_keep: float = Field(default=0.8, gt=0.0, le=1.0)
    noise_features: int = Field(default=20, ge=0)
    noise_vocabulary: int = Field(default=20_000, ge=1)
    seed: int = 0


@dataclass(frozen=True)
class PowerLawDocument:
    """One generated document: its sparse features and its label names (first label first)."""

    features: SparseVector
    labels: list[str]

    @property
    def feature_map(self) -> dict[int, float]:
        """The features as a ``{index: value}`` map (the shape of a Document message's sparse features)."""
        return dict(zip(self.features.indices.tolist(), self.features.values.tolist(), strict=False))


class PowerLawLabelStream:
    """An endless, seeded stream of :class:`PowerLawDocument` (see the module docstring for the model)."""

    def __init__(self, config: PowerLawStreamConfig | None = None) -> None:
        self.config = config or PowerLawStreamConfig()
        c = self.config
        self._rng = np.random.default_rng(c.seed)
        weights = 1.0 / np.arange(1, c.n_labels + 1, dtype=np.float64) ** c.zipf_exponent
        self._label_cdf = np.cumsum(weights / weights.sum())
        noise = 1.0 / np.arange(1, c.noise_vocabulary + 1, dtype=np.float64)
        self._noise_cdf = np.cumsum(noise / noise.sum())
        self._seed_key = (c.seed * 0x100000001B3 + 1) & 0xFFFFFFFFFFFFFFFF

    def _hashed(self, ids: np.ndarray, salt: int, per_id: int) -> np.ndarray:
        """``per_id`` feature columns for each of ``ids`` (rows), a fixed function of the seed."""
        keys: np.ndarray = (
            ids.astype(np.uint64)[:, None] * np.uint64(per_id) + np.arange(per_id, dtype=np.uint64)
        ) * _MIX
        keys = keys ^ np.uint64((self._seed_key + salt) & 0xFFFFFFFFFFFFFFFF)
        return (mix64(keys) % np.uint64(self.config.n_features)).astype(np.int64)

    def label_features(self, rank: int) -> np.ndarray:
        """The feature columns that carry label ``rank``."""
        return self._hashed(np.array([rank]), 0, self.config.features_per_label)[0]

    def _labels(self) -> np.ndarray:
        c, rng = self.config, self._rng
        n = min(1 + int(rng.poisson(c.labels_per_doc - 1.0)), c.max_labels_per_doc, c.n_labels)
        first = int(np.searchsorted(self._label_cdf, rng.random(), side="right"))
        labels = [min(first, c.n_labels - 1)]
        group_start = labels[0] - labels[0] % c.group_size
        group_end = min(group_start + c.group_size, c.n_labels)
        attempts = 0
        while len(labels) < n and attempts < 4 * n:
            attempts += 1
            if rng.random() < c.group_affinity and group_end - group_start > 1:
                label = int(rng.integers(group_start, group_end))
            else:
                label = min(int(np.searchsorted(self._label_cdf, rng.random(), side="right")), c.n_labels - 1)
            if label not in labels:
                labels.append(label)
        return np.asarray(labels, dtype=np.int64)

    def next_document(self) -> PowerLawDocument:
        c, rng = self.config, self._rng
        labels = self._labels()
        label_columns = self._hashed(labels, 0, c.features_per_label).ravel()
        kept = label_columns[rng.random(label_columns.shape[0]) < c.feature_keep]
        groups = np.unique(labels // c.group_size)
        group_columns = self._hashed(groups, _GROUP_SALT, c.features_per_label).ravel()
        noise_words = np.searchsorted(self._noise_cdf, rng.random(c.noise_features), side="right")
        noise_columns = self._hashed(noise_words.astype(np.int64), _NOISE_SALT, 1).ravel()
        columns = np.unique(np.concatenate([kept, group_columns, noise_columns]))
        features = SparseVector(columns, np.ones(columns.shape[0], dtype=np.float32), c.n_features)
        return PowerLawDocument(features, [f"L{label}" for label in labels.tolist()])

    def __iter__(self) -> Iterator[PowerLawDocument]:
        while True:
            yield self.next_document()

    def take(self, n: int) -> list[PowerLawDocument]:
        """The next ``n`` documents."""
        return [self.next_document() for _ in range(n)]
