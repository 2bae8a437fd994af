"""The JSON-lines reader against Reuters and EUR-Lex, and against malformed lines."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from labelflow.operators.io.arff import ArffStream
from labelflow.operators.io.jsonl import JsonlError, read_jsonl
from labelflow.operators.io.streams import guess_format, open_stream


def test_reuters_whole_file_matches_the_published_statistics(datasets_dir: Path) -> None:
    path = datasets_dir / "reuters21578_modapte" / "reuters21578_modapte.jsonl"
    n = n_labels = 0
    labels: set[str] = set()
    splits = {"train": 0, "test": 0}
    last_split = "train"
    for doc in read_jsonl(path):
        n += 1
        assert doc.x is None and isinstance(doc.text, str) and doc.text
        assert doc.labels
        n_labels += len(doc.labels)
        labels.update(doc.labels)
        splits[doc.meta["split"]] += 1
        assert set(doc.meta) == {"split", "date"}
        # ModApte: every training document precedes every test document in time.
        assert not (last_split == "test" and doc.meta["split"] == "train")
        last_split = doc.meta["split"]
    assert n == 10789
    assert len(labels) == 90
    # The README's cardinality 1.236 counts 13,331 label entries; two documents list a label twice,
    # and a label set holds it once: 13,329 / 10,789 = 1.2354.
    assert n_labels == 13329
    assert splits == {"train": 7770, "test": 3019}


def test_gzip_stream_and_limit(datasets_dir: Path) -> None:
    docs = list(read_jsonl(datasets_dir / "eurlex57k" / "eurlex57k.jsonl.gz", limit=5))
    assert len(docs) == 5
    assert all(doc.labels and doc.text for doc in docs)
    assert {"split", "type", "year"} <= set(docs[0].meta)
    assert list(read_jsonl(datasets_dir / "eurlex57k" / "eurlex57k.jsonl.gz", limit=0)) == []


def test_optional_fields(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write('{"id": "a", "text": "x", "labels": ["l1", "l1", "l2"]}\n\n')
        fh.write('{"id": 7, "text": "unlabelled"}\n')
        fh.write('{"id": "c", "features": [1, 2.5], "labels": [], "source": "s"}\n')
    a, b, c = read_jsonl(path)
    assert a.labels == ["l1", "l2"]  # a label set: duplicates dropped
    assert b.id == "7" and b.labels is None
    assert c.text is None and c.labels == [] and c.meta == {"source": "s"}
    assert isinstance(c.x, np.ndarray) and c.x.dtype == np.float32 and c.x.tolist() == [1.0, 2.5]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"id": "a", "text": "x"', "invalid JSON"),
        ('["a", "b"]', "expected a JSON object, got list"),
        ('{"text": "x"}', "'id' must be a non-empty string"),
        ('{"id": "", "text": "x"}', "'id' must be a non-empty string"),
        ('{"id": "a", "text": 3}', "'text' must be a string"),
        ('{"id": "a"}', "neither 'text' nor 'features'"),
        ('{"id": "a", "text": "x", "labels": "earn"}', "'labels' must be a list of strings"),
        ('{"id": "a", "text": "x", "labels": [1]}', "'labels' must be a list of strings"),
        ('{"id": "a", "features": ["1"]}', "'features' must be a list of numbers"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "text": "fine", "labels": []}\n' + line + "\n")
    with pytest.raises(JsonlError) as caught:
        list(read_jsonl(path))
    assert caught.value.line == 2
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"{path}:2: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "none.jsonl")


def test_format_guessing_and_open_stream(datasets_dir: Path, tmp_path: Path) -> None:
    assert guess_format("a/b/Bibtex.arff.gz") == "arff"
    assert guess_format("x.JSONL") == "jsonl"
    assert guess_format("x.ndjson.gz") == "jsonl"
    with pytest.raises(ValueError, match="cannot tell the format"):
        guess_format("data.csv")
    arff = open_stream(datasets_dir / "medical" / "Medical.arff", limit=3)
    assert isinstance(arff, ArffStream) and len(list(arff)) == 3
    reuters = open_stream(datasets_dir / "reuters21578_modapte" / "reuters21578_modapte.jsonl", limit=4)
    assert reuters.name == "reuters21578_modapte"
    # Iterable twice, each pass from the start.
    assert [d.id for d in reuters] == [d.id for d in reuters]
    with pytest.raises(ValueError, match="label_xml only applies to ARFF"):
        open_stream(datasets_dir / "reuters21578_modapte" / "reuters21578_modapte.jsonl", label_xml="x.xml")
