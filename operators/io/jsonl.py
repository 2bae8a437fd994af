"""A streaming reader for JSON-lines document streams (plain or gzip-compressed).

Each line is one JSON object ``{"id": str, "text": str, "labels": [str, ...], ...}``. ``labels`` may
be absent or ``null`` (an unlabelled document: predicted, never learned). Instead of ``text`` a line
may carry ``features``, a list of numbers (a pre-computed dense vector). Every other field goes to
``Instance.meta`` (e.g. Reuters' ``split`` and ``date``). Blank lines are skipped; anything else that
is not such an object raises :class:`JsonlError` naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from labelflow.operators.io.instances import Instance, open_text

_KNOWN = ("id", "text", "labels", "features")


class JsonlError(ValueError):
    """A malformed JSON-lines record; ``str()`` reads ``path:line: problem``."""

    def __init__(self, path: Path | str, line: int, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(f"{self.path}:{line}: {problem}")


def read_jsonl(path: Path | str, *, limit: int | None = None) -> Iterator[Instance]:
    """Yield the documents of a ``.jsonl`` or ``.jsonl.gz`` file lazily, in file order.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "docs.jsonl"
    >>> _ = path.write_text('{"id": "a", "text": "corn up", "labels": ["corn"], "split": "train"}\\n')
    >>> [(d.id, d.text, d.labels, d.meta) for d in read_jsonl(path)]
    [('a', 'corn up', ['corn'], {'split': 'train'})]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSONL file not found: {path}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return _read(path, limit)


def _read(path: Path, limit: int | None) -> Iterator[Instance]:
    if limit == 0:
        return
    count = 0
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            yield _parse(line, path, line_no)
            count += 1
            if limit is not None and count >= limit:
                return


def _parse(line: str, path: Path, line_no: int) -> Instance:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise JsonlError(path, line_no, f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(record, dict):
        raise JsonlError(path, line_no, f"expected a JSON object, got {type(record).__name__}")

    doc_id = record.get("id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id:
        raise JsonlError(path, line_no, "'id' must be a non-empty string")

    text = record.get("text")
    if text is not None and not isinstance(text, str):
        raise JsonlError(path, line_no, f"'text' must be a string, got {type(text).__name__}")

    x = None
    features = record.get("features")
    if features is not None:
        if not isinstance(features, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in features
        ):
            raise JsonlError(path, line_no, "'features' must be a list of numbers")
        x = np.asarray(features, dtype=np.float32)
    if text is None and x is None:
        raise JsonlError(path, line_no, "record has neither 'text' nor 'features'")

    labels = record.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise JsonlError(path, line_no, "'labels' must be a list of strings")
        # Duplicates in the source would count twice in the metrics; a label set is a set.
        labels = list(dict.fromkeys(labels))

    meta = {key: value for key, value in record.items() if key not in _KNOWN}
    return Instance(id=doc_id, x=x, text=text, labels=labels, meta=meta)
