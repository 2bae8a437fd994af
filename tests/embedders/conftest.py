"""Embedders built once per test session: the real model, distilled into a temporary cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelflow.operators.embedders.static import StaticEmbedder
from labelflow.operators.embedders.transformer import TransformerEmbedder

# The contextual distillation runs one forward pass per token; the first ~3,200 token ids (common
# words, punctuation, characters) keep it to seconds while exercising the real build path.
SMALL_VOCAB = 3200


@pytest.fixture(scope="session")
def static_cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("labelflow-cache")


@pytest.fixture(scope="session")
def transformer() -> TransformerEmbedder:
    return TransformerEmbedder(device="cpu", max_seq_length=64, batch_size=4)


@pytest.fixture(scope="session")
def static_input(static_cache_dir) -> StaticEmbedder:
    return StaticEmbedder(cache_dir=static_cache_dir, method="input", dim=64)


@pytest.fixture(scope="session")
def static_contextual(static_cache_dir) -> StaticEmbedder:
    return StaticEmbedder(
        cache_dir=static_cache_dir, method="contextual", dim=None, vocab_limit=SMALL_VOCAB, device="cpu"
    )


@pytest.fixture(scope="session")
def reuters_texts(datasets_dir) -> list[str]:
    """The first 200 Reuters articles, in stream order."""
    path = datasets_dir / "reuters21578_modapte" / "reuters21578_modapte.jsonl"
    texts = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            texts.append(json.loads(line)["text"])
            if len(texts) == 200:
                break
    return texts
