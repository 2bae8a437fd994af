"""The unit every stream reader yields: one document or feature row with its labels."""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from labelflow.operators.base import Features

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(slots=True)
class Instance:
    """One stream item: pre-computed features ``x`` and/or raw ``text``, and its label names.

    ``labels`` is ``None`` for an unlabelled item (predict only) and a list (possibly empty) for a
    labelled one. ``meta`` holds everything else the source carried (e.g. ``split``, ``date``).

    >>> item = Instance(id="d1", x=None, text="wheat prices rise", labels=["grain", "wheat"])
    >>> item.labels, item.meta
    (['grain', 'wheat'], {})
    """

    id: str
    x: Features | None
    text: str | None
    labels: list[str] | None
    meta: dict = field(default_factory=dict)


def open_text(path: Path) -> IO[str]:
    """Open ``path`` for reading UTF-8 text, transparently gunzipping it.

    Compression is detected from the file's first bytes, not its name, so a mis-named file still
    reads correctly.
    """
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")
