"""The ARFF reader against the 9 real benchmark files and against hand-made good and bad files."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from labelflow.operators.base import SparseVector
from labelflow.operators.io.arff import ArffError, read_arff

ARFF_FILES = {
    "emotions": "emotions/emotions.arff",
    "yeast": "yeast/yeast.arff.gz",
    "scene": "scene/Scene.arff.gz",
    "medical": "medical/Medical.arff",
    "slashdot": "slashdot/Slashdot.arff",
    "enron": "enron/Enron.arff",
    "tmc2007_500": "tmc2007_500/tmc2007-500.arff.gz",
    "20ng": "20ng/20NG.arff.gz",
    "bibtex": "bibtex/Bibtex.arff.gz",
}


@pytest.fixture(scope="module")
def index(datasets_dir: Path) -> dict[str, dict]:
    entries = json.loads((datasets_dir / "index.json").read_text())["arff"]
    return {entry["folder"]: entry for entry in entries}


@pytest.mark.parametrize("name", list(ARFF_FILES))
def test_real_file_matches_the_published_statistics(datasets_dir: Path, index: dict, name: str) -> None:
    expected = index[name]
    stream = read_arff(datasets_dir / ARFF_FILES[name])
    header = stream.header
    assert header.n_labels == expected["labels"]
    assert header.n_features == expected["features"]
    assert list(header.label_names) == expected["label_names"]
    assert header.sparse == expected["sparse"]

    n = 0
    positives = np.zeros(header.n_labels, dtype=np.int64)
    position = {label: i for i, label in enumerate(header.label_names)}
    label_sets = set()
    for instance in stream:
        if n < 1000:  # the shape of every row is checked on a prefix (keeps the test fast)
            assert instance.id == str(n) and instance.text is None
            if header.sparse:
                assert isinstance(instance.x, SparseVector)
                assert instance.x.dim == header.n_features
                assert np.all(np.diff(instance.x.indices) > 0)
                assert instance.x.values.dtype == np.float32
            else:
                assert isinstance(instance.x, np.ndarray)
                assert instance.x.shape == (header.n_features,) and instance.x.dtype == np.float32
        n += 1
        # Labels come in label order, without duplicates.
        ids = [position[label] for label in instance.labels]
        assert ids == sorted(set(ids))
        positives[ids] += 1
        label_sets.add(frozenset(ids))
    assert n == expected["instances"]
    assert round(positives.sum() / n, 3) == expected["cardinality"]
    assert int((positives == 0).sum()) == expected["labels_never_positive"]
    assert len(label_sets) == expected["distinct_labelsets"]


@pytest.mark.parametrize("name", list(ARFF_FILES))
def test_vectorised_chunks_equal_the_row_by_row_path(datasets_dir: Path, name: str) -> None:
    # 600 rows cross the 512-row chunk boundary; `_fast = False` sends every row down the careful
    # per-token path (quotes, '?', nominal positions), which must agree with the numpy path.
    fast = list(read_arff(datasets_dir / ARFF_FILES[name], limit=600))
    careful_stream = read_arff(datasets_dir / ARFF_FILES[name], limit=600)
    careful_stream._fast = False
    careful = list(careful_stream)
    assert len(fast) == len(careful) == min(600, len(fast)) > 0
    for a, b in zip(fast, careful, strict=True):
        assert a.labels == b.labels
        assert a.meta == b.meta
        if isinstance(a.x, SparseVector):
            assert np.array_equal(a.x.indices, b.x.indices)
            assert np.array_equal(a.x.values, b.x.values)
        else:
            assert np.array_equal(a.x, b.x)


def test_mulan_labels_follow_the_xml_order(datasets_dir: Path) -> None:
    stream = read_arff(datasets_dir / "yeast" / "yeast.arff.gz")
    assert stream.header.label_source == "MULAN yeast.xml"
    assert stream.header.label_names[3] == "Class6"  # the XML lists Class6 before Class4
    first = next(iter(stream))
    order = {label: i for i, label in enumerate(stream.header.label_names)}
    assert [order[label] for label in first.labels] == sorted(order[label] for label in first.labels)


def test_limit_stops_early(datasets_dir: Path) -> None:
    assert len(list(read_arff(datasets_dir / "tmc2007_500" / "tmc2007-500.arff.gz", limit=7))) == 7
    assert list(read_arff(datasets_dir / "medical" / "Medical.arff", limit=0)) == []


def write(tmp_path: Path, text: str, name: str = "toy.arff") -> Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


MEKA_DENSE = """% a comment before the header
@relation 'toy data: -C -2 -split-percentage 50'

@attribute 'first feature' numeric
@attribute f2 real
@attribute colour {red,green,blue}
@attribute "label one" {0,1}
@attribute l2 {0,1}

@data
% a comment between rows
1.5,2,green,1,0

?,-3e-1,blue,0,1
0,0,red,?,1
"""


def test_dense_rows_with_quotes_missing_values_and_nominal_features(tmp_path: Path) -> None:
    stream = read_arff(write(tmp_path, MEKA_DENSE))
    assert stream.header.relation == "toy data: -C -2 -split-percentage 50"
    assert stream.header.feature_names == ("first feature", "f2", "colour")
    assert stream.header.label_names == ("label one", "l2")
    assert stream.header.label_source == "MEKA -C -2"
    rows = list(stream)
    assert [row.labels for row in rows] == [["label one"], ["l2"], ["l2"]]
    # The nominal feature is the position of its value; a missing feature is 0 by default.
    assert rows[0].x.tolist() == [1.5, 2.0, 1.0]
    assert rows[1].x.tolist() == pytest.approx([0.0, -0.3, 2.0])
    assert [row.meta["line"] for row in rows] == [12, 14, 15]

    nan_rows = list(read_arff(write(tmp_path, MEKA_DENSE), missing="nan"))
    assert math.isnan(nan_rows[1].x[0])


def test_sparse_rows_gzip_crlf_and_first_n_labels(tmp_path: Path) -> None:
    text = (
        '@RELATION "sparse: -C 2"\r\n@ATTRIBUTE a {0,1}\r\n@ATTRIBUTE b {0,1}\r\n'
        "@ATTRIBUTE x NUMERIC\r\n@ATTRIBUTE y NUMERIC\r\n@DATA\r\n"
        "{0 1, 3 2.5}\r\n{}\r\n{ 3 0, 1 1 , 2 -1}\r\n"
    )
    stream = read_arff(write(tmp_path, text, "sparse.arff.gz"))
    assert stream.header.label_names == ("a", "b") and stream.header.sparse
    rows = list(stream)
    assert [row.labels for row in rows] == [["a"], [], ["b"]]
    assert rows[0].x.indices.tolist() == [1] and rows[0].x.values.tolist() == [2.5]
    assert rows[1].x.nnz == 0
    # Unsorted indices are sorted; explicit zeros are dropped.
    assert rows[2].x.indices.tolist() == [0] and rows[2].x.values.tolist() == [-1.0]


def test_sparse_row_with_a_missing_value_takes_the_careful_path(tmp_path: Path) -> None:
    text = "@relation 'm: -C -1'\n@attribute x numeric\n@attribute y numeric\n@attribute l {0,1}\n@data\n{0 ?,1 4,2 1}\n"
    row = next(iter(read_arff(write(tmp_path, text))))
    assert row.x.indices.tolist() == [1] and row.labels == ["l"]


def test_mulan_label_file_beside_the_arff_or_given_explicitly(tmp_path: Path) -> None:
    arff = "@relation plain\n@attribute f numeric\n@attribute tagA {0,1}\n@attribute tagB {0,1}\n@data\n0.5,1,1\n"
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n<labels xmlns="http://mulan.sourceforge.net/labels">'
        '<label name="tagB"></label><label name="tagA"></label></labels>\n'
    )
    path = write(tmp_path, arff, "plain.arff")
    (tmp_path / "plain.xml").write_text(xml)
    stream = read_arff(path)
    assert stream.header.label_names == ("tagB", "tagA")
    assert next(iter(stream)).labels == ["tagB", "tagA"]

    other = tmp_path / "other-labels.xml"
    other.write_text(xml.replace('<label name="tagA"></label>', ""))
    explicit = read_arff(path, label_xml=other)
    assert explicit.header.label_names == ("tagB",)
    assert explicit.header.feature_names == ("f", "tagA")


HEAD = "@relation 'r: -C -1'\n@attribute f numeric\n@attribute l {0,1}\n"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (HEAD + "@data\n1,0\n1,2,0\n", 6, "expected 2 values, found 3"),
        (HEAD + "@data\n1,0\nabc,1\n", 6, "'abc' of numeric attribute 'f'"),
        (HEAD + "@data\n1,0\n1,2\n", 6, "label value 2.0 is not 0 or 1"),
        (HEAD + "@data\n{0 1}\n{5 1}\n", 6, "index 5 out of range"),
        (HEAD + "@data\n{0 1,0 2}\n", 5, "index 0 given twice"),
        (HEAD + "@data\n{0 1\n", 5, "does not end with '}'"),
        (HEAD + "@data\n{0 1},{3}\n", 5, "instance weights"),
        (HEAD + "@data\n{x 1}\n", 5, "'x' is not an integer"),
        (
            "@relation 'r: -C -1'\n@attribute f string\n@attribute l {0,1}\n@data\n",
            2,
            "type 'string' is not supported",
        ),
        ("@relation 'r: -C -1'\n@attribute f numeric\n@attribute f {0,1}\n@data\n", 3, "declared twice"),
        (
            "@relation 'r: -C -1'\n@attribute f numeric\n@attribute l {0,1}\nbogus line\n@data\n",
            4,
            "unexpected header line",
        ),
        ("@relation 'r: -C -1'\n@attribute f wibble\n@attribute l {0,1}\n@data\n", 2, "unknown type"),
    ],
)
def test_malformed_files_name_file_line_and_problem(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ArffError) as caught:
        list(read_arff(path))
    assert caught.value.line == line
    assert caught.value.path == str(path)
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("@attribute f numeric\n@data\n", "no @relation line"),
        ("@relation 'r: -C -1'\n@attribute f numeric\n@attribute l {0,1}\n", "no @data line"),
        (
            "@relation 'r: -C -3'\n@attribute f numeric\n@attribute l {0,1}\n@data\n",
            "-C -3 does not fit 2 attributes",
        ),
        ("@relation 'r: -C -1'\n@attribute f numeric\n@attribute l numeric\n@data\n", "is not nominal {0,1}"),
        ("@relation plain\n@attribute f numeric\n@data\n", "cannot tell which attributes are labels"),
    ],
)
def test_bad_headers_fail_on_open(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ArffError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        read_arff(write(tmp_path, text))


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_arff(tmp_path / "nope.arff")
    path = write(tmp_path, MEKA_DENSE)
    with pytest.raises(ValueError, match="limit"):
        read_arff(path, limit=-1)
    with pytest.raises(ValueError, match="missing"):
        read_arff(path, missing="mean")  # type: ignore[arg-type]
