"""Open a labelled stream by file type: ARFF (``.arff``, ``.arff.gz``) or JSON lines (``.jsonl``,
``.jsonl.gz``, ``.json``, ``.ndjson``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from labelflow.operators.io.arff import read_arff
from labelflow.operators.io.instances import Instance, open_text
from labelflow.operators.io.jsonl import read_jsonl

StreamFormat = Literal["arff", "jsonl"]

_SUFFIXES: dict[str, StreamFormat] = {
    ".arff": "arff",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def guess_format(path: Path | str) -> StreamFormat:
    """The stream format named by the file extension (a trailing ``.gz`` is ignored).

    >>> guess_format("data/Bibtex.arff.gz"), guess_format("reuters.jsonl")
    ('arff', 'jsonl')
    """
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = Path(name).suffix
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"cannot tell the format of {Path(path).name!r} from its extension; "
            f"expected one of {sorted(_SUFFIXES)} (optionally .gz), or pass the format explicitly"
        )
    return _SUFFIXES[suffix]


def open_stream(
    path: Path | str,
    *,
    format: StreamFormat | None = None,
    label_xml: Path | str | None = None,
    limit: int | None = None,
) -> Iterable[Instance]:
    """An iterable of :class:`Instance` read lazily from ``path`` (an ``ArffStream`` for ARFF, which
    also exposes ``.header``)."""
    fmt = format or guess_format(path)
    if fmt == "arff":
        return read_arff(path, label_xml=label_xml, limit=limit)
    if fmt == "jsonl":
        if label_xml is not None:
            raise ValueError("label_xml only applies to ARFF files")
        return _ReusableJsonl(Path(path), limit)
    raise ValueError(f"unknown stream format {fmt!r}; use 'arff' or 'jsonl'")


class _ReusableJsonl:
    """A JSONL stream that can be iterated more than once (each pass re-reads the file)."""

    def __init__(self, path: Path, limit: int | None) -> None:
        self.path = path
        self.limit = limit
        read_jsonl(path, limit=limit)  # validates path and limit now, not at first iteration

    @property
    def name(self) -> str:
        name = self.path.name
        for suffix in (".gz", ".jsonl", ".ndjson", ".json"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
        return name

    def __iter__(self) -> Iterator[Instance]:
        return read_jsonl(self.path, limit=self.limit)


def count_instances(path: Path | str, *, format: StreamFormat | None = None) -> int:
    r"""How many instances the file holds, by a quick scan of its lines (no parsing): the progress
    bar's total. JSON lines: non-blank lines; ARFF: non-blank, non-comment lines after ``@data``.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "s.arff"
    >>> _ = path.write_text("@relation r\n@attribute a {0,1}\n@data\n% a comment\n0\n\n1\n")
    >>> count_instances(path)
    2
    """
    fmt = format or guess_format(path)
    count = 0
    in_data = fmt == "jsonl"
    with open_text(Path(path)) as handle:
        for line in handle:
            stripped = line.strip()
            if not stripped:
                continue
            if in_data:
                count += not (fmt == "arff" and stripped.startswith("%"))
            elif stripped[:5].lower() == "@data":
                in_data = True
    return count
