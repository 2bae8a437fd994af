"""Distil static token vectors from a sentence transformer (after model2vec, Tulkens & van Dongen 2024).

Every vocabulary token is embedded once; a document is later embedded as the weighted mean of its
tokens' vectors, which is a sparse-matrix product instead of a transformer forward pass. Two ways to
get a token's vector:

* ``"contextual"``: the sentence embedding of the token on its own (``[CLS] token [SEP]`` through
  all layers, mean pooled), i.e. exactly what the transformer embedder returns for that one token.
* ``"input"``: the model's input embedding row for the token (no forward pass; built in about a
  second). The vectors live in another space than the sentence embeddings, yet they classified
  Reuters slightly better (benchmarks/embedding/RESULTS.md), so ``StaticEmbedder`` defaults to them.

The vectors are then centred (removing the direction all token vectors share, which would otherwise
dominate every mean) and rotated onto their principal axes, optionally truncated to fewer dimensions.

The ``model2vec`` package was not used: its ``distill`` extra pins ``transformers<5.4`` and would
downgrade the transformers that sentence-transformers 6 and the bundled model are installed with.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labelflow.operators.embedders.minilm import MODEL_NAME, model_digest
from labelflow.operators.optional import import_optional

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

METHODS = ("contextual", "input")
FORMAT_VERSION = 1


@dataclass
class TokenVectors:
    """Distilled token vectors: ``vectors[token_id]`` (zeros for tokens left out of a partial build)
    and ``covered[token_id]`` saying which tokens were distilled."""

    vectors: np.ndarray  # (vocab_size, dim) float32
    covered: np.ndarray  # (vocab_size,) bool
    meta: dict = field(default_factory=dict)

    def save(self, directory: Path) -> None:
        """Write ``vectors.npz`` + ``meta.json`` into ``directory`` atomically: a crash leaves either
        the complete old directory, or nothing (never a half-written one)."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            with open(tmp / "vectors.npz", "wb") as fh:
                np.savez(fh, vectors=self.vectors, covered=self.covered)
                fh.flush()
                os.fsync(fh.fileno())
            with open(tmp / "meta.json", "w", encoding="utf-8") as fh:
                fh.write(json.dumps(self.meta, sort_keys=True, indent=1))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.replace(tmp, directory)
            except OSError:
                # Another process finished the same build first; theirs is identical.
                if not (directory / "meta.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> TokenVectors:
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{directory} holds token vectors in format {meta.get('format_version')}, "
                f"expected {FORMAT_VERSION}; delete the directory to rebuild"
            )
        with np.load(directory / "vectors.npz", allow_pickle=False) as data:
            return cls(vectors=data["vectors"], covered=data["covered"], meta=meta)


def build_key(model_dir: Path, method: str, dim: int | None, vocab_limit: int | None) -> str:
    """The cache directory name of one distillation: everything that changes its output."""
    dim_part = "full" if dim is None else str(dim)
    vocab_part = "all" if vocab_limit is None else str(vocab_limit)
    return (
        f"{MODEL_NAME}@{model_digest(model_dir)}-{method}-pca{dim_part}-vocab{vocab_part}-v{FORMAT_VERSION}"
    )


def distill_token_vectors(
    model_dir: Path,
    *,
    method: str = "contextual",
    dim: int | None = 256,
    vocab_limit: int | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 1024,
) -> TokenVectors:
    """Embed the vocabulary of the model in ``model_dir`` and reduce it with PCA.

    ``vocab_limit`` distils only the first that many token ids (for tests: the rest stay zero and
    uncovered). ``dim`` is the PCA output dimension (``None``: keep the model's dimension, still
    centred and rotated).
    """
    if method not in METHODS:
        raise ValueError(f"unknown distillation method {method!r}; use one of {METHODS}")
    started = time.perf_counter()
    if method == "input":
        table = _input_embeddings(model_dir)
        device_used = "cpu"  # a table read from disk: no model runs
        vocab_size = table.shape[0]
        n_tokens = _tokens_to_distil(vocab_size, vocab_limit)
        raw = table[:n_tokens].astype(np.float32)
    else:
        import torch

        from labelflow.operators.embedders.transformer import resolve_device

        transformers = import_optional("transformers", extra="transformer")

        torch_device = resolve_device(device)
        model = transformers.AutoModel.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
        model = model.to(torch_device).eval()
        vocab_size = int(model.config.vocab_size)
        n_tokens = _tokens_to_distil(vocab_size, vocab_limit)
        raw = _embed_tokens_alone(model, n_tokens, torch_device, batch_size)
        device_used = str(torch_device)
    reduced = _pca(raw.astype(np.float64), dim)
    vectors = np.zeros((vocab_size, reduced.shape[1]), dtype=np.float32)
    vectors[:n_tokens] = reduced
    covered = np.zeros(vocab_size, dtype=bool)
    covered[:n_tokens] = True
    seconds = time.perf_counter() - started
    log.info("distilled %d token vectors (%s, dim %d) in %.1f s", n_tokens, method, vectors.shape[1], seconds)
    meta = {
        "format_version": FORMAT_VERSION,
        "model": MODEL_NAME,
        "model_digest": model_digest(model_dir),
        "method": method,
        "dim": int(vectors.shape[1]),
        "vocab_size": vocab_size,
        "tokens_distilled": n_tokens,
        "build_seconds": round(seconds, 2),
        "device": device_used,
    }
    return TokenVectors(vectors=vectors, covered=covered, meta=meta)


def _tokens_to_distil(vocab_size: int, vocab_limit: int | None) -> int:
    n_tokens = vocab_size if vocab_limit is None else min(int(vocab_limit), vocab_size)
    if n_tokens < 2:
        raise ValueError(f"vocab_limit must leave at least 2 tokens, got {vocab_limit}")
    return n_tokens


def _input_embeddings(model_dir: Path) -> np.ndarray:
    """The word embedding table straight from the safetensors file (no model is built)."""
    safetensors = import_optional("safetensors", extra="transformer")

    with safetensors.safe_open(str(Path(model_dir) / "model.safetensors"), framework="numpy") as weights:
        names = [name for name in weights.keys() if name.endswith("word_embeddings.weight")]  # noqa: SIM118 (safe_open is not iterable)
        if len(names) != 1:
            raise ValueError(f"{model_dir}: expected one word embedding table, found {names}")
        return weights.get_tensor(names[0])


def _embed_tokens_alone(
    model: PreTrainedModel, n_tokens: int, device: torch.device, batch_size: int
) -> np.ndarray:
    """Sentence embedding (mean pooled, L2-normalised) of each token id as a one-token text."""
    import torch

    cls_id, sep_id = _special_ids(model)
    out = np.empty((n_tokens, int(model.config.hidden_size)), dtype=np.float32)
    last_report = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, n_tokens, batch_size):
            ids = torch.arange(start, min(start + batch_size, n_tokens), device=device)
            batch = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
            hidden = model(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state
            pooled = torch.nn.functional.normalize(hidden.float().mean(dim=1), dim=1)
            out[start : start + len(ids)] = pooled.cpu().numpy()
            if time.perf_counter() - last_report > 10:
                log.info("distilling token vectors: %d / %d", start + len(ids), n_tokens)
                last_report = time.perf_counter()
    return out


def _special_ids(model: PreTrainedModel) -> tuple[int, int]:
    # BERT uncased ids; read from the tokenizer config would need the tokenizer here for two ints.
    config = model.config
    cls_id = getattr(config, "cls_token_id", None) or 101
    sep_id = getattr(config, "sep_token_id", None) or 102
    return int(cls_id), int(sep_id)


def _pca(matrix: np.ndarray, dim: int | None) -> np.ndarray:
    """Centre ``matrix`` and project it on its top ``dim`` principal axes (all axes if ``None``).
    Signs are fixed (largest component of each axis positive) so rebuilds are reproducible."""
    if dim is not None and not 1 <= dim <= matrix.shape[1]:
        raise ValueError(f"dim must be in [1, {matrix.shape[1]}], got {dim}")
    centred = matrix - matrix.mean(axis=0)
    # Eigenvectors of the d x d covariance: the same axes as an SVD of the n x d matrix, and about
    # 20x faster for a 30k x 384 vocabulary (27 s vs 1.4 s on the 2-core benchmark machine).
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    vt = eigenvectors[:, np.argsort(eigenvalues)[::-1]].T
    if dim is not None:
        vt = vt[:dim]
    signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])
    vt = vt * signs[:, None]
    return (centred @ vt.T).astype(np.float32)
