"""The model's fast (Rust) WordPiece tokenizer, loaded from the local model directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

from labelflow.operators.optional import import_optional


def load_tokenizer(model_dir: Path, max_length: int | None) -> Tokenizer:
    """The model's fast (Rust) tokenizer from ``tokenizer.json``: no padding, truncation at
    ``max_length`` tokens including [CLS]/[SEP] (``None``: no truncation)."""
    tokenizers = import_optional("tokenizers", extra="transformer")
    tokenizer = tokenizers.Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    tokenizer.no_padding()
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def encode_batch_fast(
    tokenizer: Tokenizer, texts: list[str], add_special_tokens: bool = True
) -> list[Encoding]:
    """Tokenize ``texts`` in parallel without computing character offsets (about 3x faster than
    ``encode_batch`` on Reuters articles; offsets are never used here)."""
    fast = getattr(tokenizer, "encode_batch_fast", None)  # tokenizers >= 0.21
    if fast is None:
        return tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)
    return fast(texts, add_special_tokens=add_special_tokens)
