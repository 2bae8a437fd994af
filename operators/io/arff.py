"""A fast streaming reader for multi-label ARFF files (MEKA and MULAN conventions).

Where the labels are:

* MEKA: the ``@relation`` line carries ``-C n`` (the relation name may be quoted and hold other
  options): ``n > 0`` means the first ``n`` attributes are labels, ``n < 0`` the last ``|n|``.
* MULAN: the labels are the attributes named in an XML file, given as ``label_xml`` or found beside
  the ARFF file with the same stem (``yeast.arff.gz`` -> ``yeast.xml``).

Label attributes must be nominal ``{0,1}``; an instance's ``labels`` are the names of the label
attributes whose value is 1. Every other attribute is a feature: numeric/real/integer values as they
are, a nominal feature as the position of its value in the declared list. String, date and
relational attributes are rejected with a clear error.

Missing values (``?``): a missing feature becomes 0.0 by default (``missing="zero"``, the usual
choice for the linear and tree learners of the streaming literature, and "absent" in sparse terms),
or NaN with ``missing="nan"``. A missing label value counts as "not present".

Rows become numpy float32 vectors (dense rows) or :class:`SparseVector` (sparse ``{i v, ...}`` rows,
explicit zeros dropped). Rows are parsed with ``str.split`` and one numpy conversion per row; a
per-token fallback that knows about quotes, ``?`` and nominal values only runs for rows the fast path
cannot read. Any malformed input raises :class:`ArffError` naming the file, the line and the problem.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from labelflow.operators.base import Features, SparseVector
from labelflow.operators.io.instances import Instance, open_text

_MEKA_LABELS = re.compile(r"(?:^|[\s:])-C\s+(-?\d+)\b")
_NUMERIC_TYPES = {"numeric", "real", "integer"}
_UNSUPPORTED_TYPES = ("string", "date", "relational")
# Rows parsed per numpy call: big enough to amortise numpy's per-call cost, small enough to stay lazy.
_CHUNK = 512


class _SlowPath(Exception):
    """A chunk the vectorised parser cannot vouch for; it is re-read one row at a time."""


class ArffError(ValueError):
    """A malformed or unsupported ARFF file; ``str()`` reads ``path:line: problem``."""

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class Attribute:
    """One ``@attribute`` declaration: its name, kind and, for nominal ones, the values."""

    name: str
    kind: Literal["numeric", "nominal"]
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArffHeader:
    """What the header says about the stream.

    ``feature_names`` and ``label_names`` are in attribute order; ``sparse`` tells whether the first
    data row is in sparse ``{...}`` form; ``label_source`` says which convention located the labels.
    """

    relation: str
    attributes: tuple[Attribute, ...]
    feature_names: tuple[str, ...]
    label_names: tuple[str, ...]
    sparse: bool
    label_source: str
    data_line: int  # 1-based line number of the ``@data`` line

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_labels(self) -> int:
        return len(self.label_names)


class ArffStream:
    """A lazily read multi-label ARFF stream: the header is parsed on construction, the rows each
    time the stream is iterated (so iterating twice reads the file twice, never holds it all).

    Parameters
    ----------
    path
        The ``.arff`` or gzip-compressed ``.arff.gz`` file.
    label_xml
        A MULAN label XML file; default: the MEKA ``-C`` option, else ``<stem>.xml`` beside ``path``.
    limit
        Stop after this many rows.
    missing
        ``"zero"`` (default) or ``"nan"``: what a missing feature value ``?`` becomes.

    Examples
    --------

    >>> import tempfile, pathlib
    >>> text = '''@relation 'toy: -C -2'
    ... @attribute f0 numeric
    ... @attribute f1 numeric
    ... @attribute sport {0,1}
    ... @attribute news {0,1}
    ... @data
    ... 0.5,1.5,1,0
    ... {1 2.0,3 1}
    ... '''
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.arff"
    >>> _ = path.write_text(text)
    >>> stream = read_arff(path)
    >>> stream.header.feature_names, stream.header.label_names
    (('f0', 'f1'), ('sport', 'news'))
    >>> [(row.x.tolist() if hasattr(row.x, "tolist") else row.x.to_dense().tolist(), row.labels)
    ...  for row in stream]
    [([0.5, 1.5], ['sport']), ([0.0, 2.0], ['news'])]
    """

    def __init__(
        self,
        path: Path | str,
        *,
        label_xml: Path | str | None = None,
        limit: int | None = None,
        missing: Literal["zero", "nan"] = "zero",
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ARFF file not found: {self.path}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if missing not in ("zero", "nan"):
            raise ValueError(f"missing must be 'zero' or 'nan', got {missing!r}")
        self.limit = limit
        self.missing = missing
        self._missing_value = 0.0 if missing == "zero" else float("nan")
        self.header = _read_header(self.path, Path(label_xml) if label_xml is not None else None)
        self._prepare_columns()

    @property
    def name(self) -> str:
        """The file name without ``.gz`` / ``.arff``: a readable dataset name."""
        return _stem(self.path)

    def _prepare_columns(self) -> None:
        attributes = self.header.attributes
        label_position = {name: i for i, name in enumerate(self.header.label_names)}
        n_attr = len(attributes)
        self._n_attr = n_attr
        self._is_label = np.array([a.name in label_position for a in attributes], dtype=bool)
        # Position of each attribute among the features (or labels); -1 where it is the other kind.
        self._feature_pos = np.full(n_attr, -1, dtype=np.int64)
        self._feature_pos[~self._is_label] = np.arange(int((~self._is_label).sum()))
        self._label_pos = np.array([label_position.get(a.name, -1) for a in attributes], dtype=np.int64)
        self._feature_cols = np.flatnonzero(~self._is_label)
        # Attribute index of each label, in label order (MEKA: attribute order; MULAN: XML order).
        label_columns = {
            label_position[a.name]: i for i, a in enumerate(attributes) if a.name in label_position
        }
        self._label_cols = np.array([label_columns[k] for k in sorted(label_columns)], dtype=np.int64)
        self._label_names = np.array(self.header.label_names, dtype=object)
        # The numeric fast path reads a nominal value "k" as the number k; that equals its position
        # only when the declared values are "0", "1", ... in order. Otherwise every row goes slow.
        self._fast = all(
            a.kind == "numeric" or a.values == tuple(str(i) for i in range(len(a.values))) for a in attributes
        )

    def __iter__(self) -> Iterator[Instance]:
        remaining = self.limit
        if remaining == 0:
            return
        row = 0
        for lines, line_numbers in self._chunks():
            if remaining is not None:
                lines, line_numbers = lines[:remaining], line_numbers[:remaining]
            for x, labels, line_no in self._parse_chunk(lines, line_numbers):
                yield Instance(id=str(row), x=x, text=None, labels=labels, meta={"line": line_no})
                row += 1
            if remaining is not None:
                remaining -= len(lines)
                if remaining <= 0:
                    return

    def _chunks(self) -> Iterator[tuple[list[str], list[int]]]:
        """Data rows in chunks of up to ``_CHUNK`` rows with their 1-based line numbers."""
        with open_text(self.path) as fh:
            for _ in range(self.header.data_line):
                fh.readline()
            line_no = self.header.data_line
            lines: list[str] = []
            numbers: list[int] = []
            for raw in fh:
                line_no += 1
                line = raw.strip()
                if not line or line[0] == "%":
                    continue
                lines.append(line)
                numbers.append(line_no)
                if len(lines) == _CHUNK:
                    yield lines, numbers
                    lines, numbers = [], []
            if lines:
                yield lines, numbers

    def _parse_chunk(
        self, lines: list[str], line_numbers: list[int]
    ) -> list[tuple[Features, list[str], int]]:
        """Parse a chunk of rows in a few numpy calls; any doubt sends it down the per-row path,
        which either reads the odd row correctly or raises an ``ArffError`` naming its line."""
        if self._fast:
            try:
                if all(line[0] == "{" for line in lines):
                    return self._sparse_chunk(lines, line_numbers)
                if all(line[0] != "{" for line in lines):
                    return self._dense_chunk(lines, line_numbers)
            except _SlowPath:
                pass
        out: list[tuple[Features, list[str], int]] = []
        for line, line_no in zip(lines, line_numbers, strict=True):
            x: Features
            if line[0] == "{":
                x, labels = self._parse_sparse(line, line_no)
            else:
                x, labels = self._parse_dense(line, line_no)
            out.append((x, labels, line_no))
        return out

    def _dense_chunk(
        self, lines: list[str], line_numbers: list[int]
    ) -> list[tuple[Features, list[str], int]]:
        tokens = ",".join(lines).split(",")
        if len(tokens) != len(lines) * self._n_attr:
            raise _SlowPath
        try:
            values = np.array(tokens, dtype=np.float64).reshape(len(lines), self._n_attr)
        except ValueError:
            raise _SlowPath from None
        label_values = values[:, self._label_cols]
        if ((label_values != 0.0) & (label_values != 1.0)).any():
            raise _SlowPath
        features = values[:, self._feature_cols].astype(np.float32)
        positive = label_values == 1.0
        names = self._label_names
        return [(features[i], names[positive[i]].tolist(), line_numbers[i]) for i in range(len(lines))]

    def _sparse_chunk(
        self, lines: list[str], line_numbers: list[int]
    ) -> list[tuple[Features, list[str], int]]:
        bodies = []
        counts = np.empty(len(lines), dtype=np.int64)
        for i, line in enumerate(lines):
            if line[-1] != "}":
                raise _SlowPath
            body = line[1:-1]
            if body.strip():
                bodies.append(body)
                counts[i] = body.count(",") + 1
            else:
                counts[i] = 0
        tokens = " ".join(bodies).replace(",", " ").split()
        if len(tokens) != 2 * int(counts.sum()):
            raise _SlowPath
        try:
            pairs = np.array(tokens, dtype=np.float64).reshape(-1, 2)
        except ValueError:
            raise _SlowPath from None
        idx = pairs[:, 0].astype(np.int64)
        vals = pairs[:, 1]
        ends = np.cumsum(counts)
        starts = ends - counts
        if idx.size:
            if not np.array_equal(idx, pairs[:, 0]) or idx.min() < 0 or idx.max() >= self._n_attr:
                raise _SlowPath
            # Strictly increasing within each row: every step up, except where a new row begins.
            step_ok = idx[1:] > idx[:-1]
            step_ok[starts[(starts > 0) & (counts > 0)] - 1] = True
            if not step_ok.all():
                raise _SlowPath
        is_label = self._is_label[idx]
        label_vals = vals[is_label]
        if ((label_vals != 0.0) & (label_vals != 1.0)).any():
            raise _SlowPath
        positive_label = is_label & (vals == 1.0)
        feature = ~is_label & (vals != 0.0)
        # Per-row boundaries into the compacted label and feature arrays.
        row_of = np.repeat(np.arange(len(lines)), counts)
        label_ends = np.cumsum(np.bincount(row_of[positive_label], minlength=len(lines)))
        feature_ends = np.cumsum(np.bincount(row_of[feature], minlength=len(lines)))
        label_ids = self._label_pos[idx[positive_label]]
        # Report each row's labels in label order (MULAN's XML order may differ from column order).
        order = np.argsort(row_of[positive_label] * len(self._label_names) + label_ids, kind="stable")
        label_names = self._label_names[label_ids[order]]
        feature_idx = self._feature_pos[idx[feature]]
        feature_vals = vals[feature].astype(np.float32)
        dim = self.header.n_features
        out: list[tuple[Features, list[str], int]] = []
        l_start = f_start = 0
        for i in range(len(lines)):
            l_end = int(label_ends[i])
            f_end = int(feature_ends[i])
            labels = label_names[l_start:l_end].tolist()
            x = SparseVector(feature_idx[f_start:f_end], feature_vals[f_start:f_end], dim)
            out.append((x, labels, line_numbers[i]))
            l_start, f_start = l_end, f_end
        return out

    # -- one row at a time (odd rows, and the exact error messages) ---------------------------

    def _parse_dense(self, line: str, line_no: int) -> tuple[np.ndarray, list[str]]:
        tokens = line.split(",")
        if len(tokens) != self._n_attr:
            tokens = _split_quoted(line, ",", self.path, line_no)
            if len(tokens) != self._n_attr:
                raise ArffError(self.path, line_no, f"expected {self._n_attr} values, found {len(tokens)}")
        try:
            if not self._fast:
                raise ValueError
            values = np.array(tokens, dtype=np.float64)
        except ValueError:
            values = self._dense_values_slow(tokens, line_no)
        label_values = values[self._label_cols]
        self._check_label_values(label_values, line_no)
        labels = self._label_names[label_values == 1.0].tolist()
        return values[self._feature_cols].astype(np.float32), labels

    def _dense_values_slow(self, tokens: list[str], line_no: int) -> np.ndarray:
        values = np.empty(len(tokens), dtype=np.float64)
        for i, token in enumerate(tokens):
            values[i] = self._value(i, token, line_no)
        return values

    def _parse_sparse(self, line: str, line_no: int) -> tuple[SparseVector, list[str]]:
        if "},{" in line.replace(" ", ""):
            raise ArffError(self.path, line_no, "instance weights ({...},{w}) are not supported")
        if line[-1] != "}":
            raise ArffError(self.path, line_no, "sparse row does not end with '}'")
        body = line[1:-1].strip()
        if body:
            idx, vals = self._sparse_pairs(body, line_no)
        else:
            idx, vals = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        if idx.size > 1 and not np.all(idx[1:] > idx[:-1]):
            order = np.argsort(idx, kind="stable")
            idx, vals = idx[order], vals[order]
            dup = idx[1:] == idx[:-1]
            if dup.any():
                bad = int(idx[1:][dup][0])
                raise ArffError(self.path, line_no, f"attribute index {bad} given twice")
        is_label = self._is_label[idx]
        label_values = vals[is_label]
        self._check_label_values(label_values, line_no)
        label_ids = np.sort(self._label_pos[idx[is_label][label_values == 1.0]])
        labels = self._label_names[label_ids].tolist()
        feat_idx = idx[~is_label]
        feat_vals = vals[~is_label]
        keep = feat_vals != 0.0
        x = SparseVector(
            self._feature_pos[feat_idx[keep]],
            feat_vals[keep].astype(np.float32),
            self.header.n_features,
        )
        return x, labels

    def _sparse_pairs(self, body: str, line_no: int) -> tuple[np.ndarray, np.ndarray]:
        if self._fast:
            tokens = body.replace(",", " ").split()
            if len(tokens) == 2 * (body.count(",") + 1):
                try:
                    pairs = np.array(tokens, dtype=np.float64).reshape(-1, 2)
                except ValueError:
                    pass
                else:
                    idx = pairs[:, 0].astype(np.int64)
                    if np.array_equal(idx, pairs[:, 0]) and idx.min() >= 0 and idx.max() < self._n_attr:
                        return idx, pairs[:, 1]
        return self._sparse_pairs_slow(body, line_no)

    def _sparse_pairs_slow(self, body: str, line_no: int) -> tuple[np.ndarray, np.ndarray]:
        idx: list[int] = []
        vals: list[float] = []
        for item in _split_quoted(body, ",", self.path, line_no):
            parts = item.strip().split(None, 1)
            if len(parts) != 2:
                raise ArffError(self.path, line_no, f"sparse entry {item.strip()!r} is not 'index value'")
            try:
                index = int(parts[0])
            except ValueError:
                raise ArffError(self.path, line_no, f"sparse index {parts[0]!r} is not an integer") from None
            if not 0 <= index < self._n_attr:
                raise ArffError(
                    self.path, line_no, f"attribute index {index} out of range 0..{self._n_attr - 1}"
                )
            idx.append(index)
            vals.append(self._value(index, parts[1].strip(), line_no))
        return np.array(idx, dtype=np.int64), np.array(vals, dtype=np.float64)

    # -- values -------------------------------------------------------------------------------

    def _value(self, column: int, token: str, line_no: int) -> float:
        """One value read the slow, careful way: missing, quoted, nominal or numeric."""
        token = token.strip()
        attribute = self.header.attributes[column]
        if token == "?":
            return 0.0 if self._is_label[column] else self._missing_value
        token = _unquote(token)
        if attribute.kind == "nominal":
            try:
                position = attribute.values.index(token)
            except ValueError:
                raise ArffError(
                    self.path,
                    line_no,
                    f"value {token!r} of attribute {attribute.name!r} is not one of {list(attribute.values)}",
                ) from None
            # A label's value is its name ("0"/"1"); a nominal feature's value is its position.
            return float(token) if self._is_label[column] else float(position)
        try:
            return float(token)
        except ValueError:
            raise ArffError(
                self.path, line_no, f"value {token!r} of numeric attribute {attribute.name!r} is not a number"
            ) from None

    def _check_label_values(self, values: np.ndarray, line_no: int) -> None:
        bad = (values != 0.0) & (values != 1.0)
        if bad.any():
            raise ArffError(self.path, line_no, f"label value {float(values[bad][0])} is not 0 or 1")


def read_arff(
    path: Path | str,
    *,
    label_xml: Path | str | None = None,
    limit: int | None = None,
    missing: Literal["zero", "nan"] = "zero",
) -> ArffStream:
    """Open a multi-label ARFF stream; see :class:`ArffStream` for the parameters and an example."""
    return ArffStream(path, label_xml=label_xml, limit=limit, missing=missing)


# -- header -----------------------------------------------------------------------------------


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".arff"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _read_header(path: Path, label_xml: Path | None) -> ArffHeader:
    relation: str | None = None
    attributes: list[Attribute] = []
    names: set[str] = set()
    data_line: int | None = None
    first_row: str | None = None
    with open_text(path) as fh:
        line_no = 0
        for raw in fh:
            line_no += 1
            line = raw.strip()
            if not line or line[0] == "%":
                continue
            if data_line is not None:
                first_row = line
                break
            keyword = line.split(None, 1)[0].lower()
            if keyword == "@relation":
                relation = _unquote(line[len("@relation") :].strip())
            elif keyword == "@attribute":
                attribute = _parse_attribute(line, path, line_no)
                if attribute.name in names:
                    raise ArffError(path, line_no, f"attribute {attribute.name!r} declared twice")
                names.add(attribute.name)
                attributes.append(attribute)
            elif keyword == "@data":
                data_line = line_no
            else:
                raise ArffError(path, line_no, f"unexpected header line {line[:60]!r}")
    if relation is None:
        raise ArffError(path, None, "no @relation line")
    if data_line is None:
        raise ArffError(path, None, "no @data line")
    if not attributes:
        raise ArffError(path, data_line, "no @attribute declarations before @data")

    label_names, label_source = _locate_labels(path, relation, attributes, label_xml)
    label_set = set(label_names)
    for attribute in attributes:
        if attribute.name in label_set and not (
            attribute.kind == "nominal" and set(attribute.values) == {"0", "1"}
        ):
            raise ArffError(path, None, f"label attribute {attribute.name!r} is not nominal {{0,1}}")
    return ArffHeader(
        relation=relation,
        attributes=tuple(attributes),
        feature_names=tuple(a.name for a in attributes if a.name not in label_set),
        label_names=tuple(label_names),
        sparse=first_row is not None and first_row.startswith("{"),
        label_source=label_source,
        data_line=data_line,
    )


def _locate_labels(
    path: Path, relation: str, attributes: list[Attribute], label_xml: Path | None
) -> tuple[list[str], str]:
    if label_xml is None:
        meka = _MEKA_LABELS.search(relation)
        if meka:
            n = int(meka.group(1))
            if n == 0 or abs(n) > len(attributes):
                raise ArffError(path, None, f"MEKA option -C {n} does not fit {len(attributes)} attributes")
            chosen = attributes[:n] if n > 0 else attributes[n:]
            return [a.name for a in chosen], f"MEKA -C {n}"
        beside = path.with_name(_stem(path) + ".xml")
        if not beside.is_file():
            raise ArffError(
                path,
                None,
                "cannot tell which attributes are labels: no '-C n' option in @relation "
                f"and no MULAN label file {beside.name} beside it (pass label_xml)",
            )
        label_xml = beside
    names = _read_label_xml(label_xml)
    declared = {a.name for a in attributes}
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ArffError(path, None, f"labels in {label_xml} not declared as attributes: {unknown[:5]}")
    return names, f"MULAN {label_xml.name}"


def _read_label_xml(path: Path) -> list[str]:
    """Label names from a MULAN XML file, in document order (nested hierarchies flattened)."""
    if not path.is_file():
        raise FileNotFoundError(f"MULAN label file not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ArffError(path, exc.position[0], f"invalid label XML: {exc}") from None
    names = [
        el.attrib["name"]
        for el in root.iter()
        if el.tag.rsplit("}", 1)[-1] == "label" and "name" in el.attrib
    ]
    if not names:
        raise ArffError(path, None, "label XML names no <label name=...> elements")
    if len(set(names)) != len(names):
        raise ArffError(path, None, "label XML names a label twice")
    return names


def _parse_attribute(line: str, path: Path, line_no: int) -> Attribute:
    rest = line[len("@attribute") :].strip()
    if not rest:
        raise ArffError(path, line_no, "@attribute without a name")
    if rest[0] in "'\"":
        end = _closing_quote(rest, 0)
        if end < 0:
            raise ArffError(path, line_no, "unterminated quoted attribute name")
        name = _unquote(rest[: end + 1])
        type_text = rest[end + 1 :].strip()
    else:
        parts = rest.split(None, 1)
        name = parts[0]
        type_text = parts[1].strip() if len(parts) > 1 else ""
    if not type_text:
        raise ArffError(path, line_no, f"attribute {name!r} has no type")
    if type_text[0] == "{":
        if type_text[-1] != "}":
            raise ArffError(path, line_no, f"nominal attribute {name!r}: missing closing '}}'")
        values = tuple(_unquote(v.strip()) for v in _split_quoted(type_text[1:-1], ",", path, line_no))
        if not values or any(v == "" for v in values):
            raise ArffError(path, line_no, f"nominal attribute {name!r} has an empty value list or value")
        return Attribute(name, "nominal", values)
    kind = type_text.split(None, 1)[0].lower()
    if kind in _NUMERIC_TYPES:
        return Attribute(name, "numeric")
    if kind in _UNSUPPORTED_TYPES:
        raise ArffError(path, line_no, f"attribute {name!r}: type {kind!r} is not supported")
    raise ArffError(path, line_no, f"attribute {name!r}: unknown type {type_text[:40]!r}")


def _closing_quote(text: str, start: int) -> int:
    """Index of the quote closing the one at ``start`` (backslash escapes honoured), or -1."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _split_quoted(text: str, sep: str, path: Path, line_no: int) -> list[str]:
    """Split on ``sep`` outside single or double quotes (the slow path; quotes are kept)."""
    if "'" not in text and '"' not in text:
        return text.split(sep)
    out: list[str] = []
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            end = _closing_quote(text, i)
            if end < 0:
                raise ArffError(path, line_no, "unterminated quote")
            i = end + 1
            continue
        if ch == sep:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out
