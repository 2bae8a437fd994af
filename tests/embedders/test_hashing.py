"""The hashing featurizer: stable, normalised, batch-consistent, and correct on real text."""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelflow.operators.base import SparseVector
from labelflow.operators.embedders.base import Embedder
from labelflow.operators.embedders.hashing import HashingFeaturizer
from labelflow.operators.io.jsonl import read_jsonl


@pytest.fixture(scope="module")
def reuters_1200(datasets_dir: Path) -> list[str]:
    """The first 1,200 Reuters articles (the embedders' shared ``reuters_1200`` are the first 200)."""
    path = datasets_dir / "reuters21578_modapte" / "reuters21578_modapte.jsonl"
    return [doc.text for doc in read_jsonl(path, limit=1200)]


def as_dict(v: SparseVector) -> dict[int, float]:
    return dict(zip(v.indices.tolist(), v.values.tolist(), strict=True))


def test_output_is_a_unit_sparse_vector(reuters_1200: list[str]) -> None:
    featurizer = HashingFeaturizer()
    for text in reuters_1200[:200]:
        v = featurizer.transform_one(text)
        assert isinstance(v, SparseVector) and v.dim == 2**18
        assert v.nnz > 0 and v.indices.dtype == np.int64 and v.values.dtype == np.float32
        assert np.all(np.diff(v.indices) > 0) and np.all(v.values != 0)
        assert math.isclose(float(np.dot(v.values, v.values)), 1.0, rel_tol=1e-5)


def test_batches_equal_one_at_a_time(reuters_1200: list[str]) -> None:
    # 1,200 texts span three internal batches of 512.
    featurizer = HashingFeaturizer()
    many = featurizer.transform_many(reuters_1200)
    assert len(many) == len(reuters_1200)
    for i in (0, 1, 511, 512, 513, 1023, 1024, 1199):
        one = featurizer.transform_one(reuters_1200[i])
        assert np.array_equal(many[i].indices, one.indices)
        assert np.allclose(many[i].values, one.values)
    assert featurizer.embed_many(reuters_1200[:3])[2].nnz == many[2].nnz


# Texts that take the batch tokenizer off its joined-ASCII path: empty, blank, non-ASCII (lower-casing
# that changes length or leaves ASCII: U+0130, the Kelvin sign U+212A, a final sigma) and the joiner.
ODD_TEXTS = [
    "",
    "  ",
    "Größe café 東京 2024",
    "a\x00b c\x00",
    "İstanbul \u212a ΣΑΣ ok",
    "naïve café_1 ok-go",
    "x",
]


@pytest.mark.parametrize(
    ("kwargs", "digest"),
    [
        ({}, "70d5e8b6dbd112f056d900d00f545ff28a9fab7c8fdf66484215a3a33d77c7ef"),
        (
            {"ngram_range": (1, 3), "n_features": 1000, "seed": 7, "lowercase": False},
            "938df3d91a2a43da686a4ebe0d3d080b8a61b4e4bbb0625710c75659c784bdd8",
        ),
    ],
)
def test_vectors_are_the_same_bit_for_bit(
    reuters_1200: list[str], kwargs: dict[str, object], digest: str
) -> None:
    # Digests of the vectors the per-text tokenizer gave (before the batch tokenizer, at 1cadfbd): a
    # model learned on hashing features is only valid with exactly these features.
    featurizer = HashingFeaturizer(**kwargs)  # type: ignore[arg-type]
    h = hashlib.sha256()
    for v in featurizer.transform_many(reuters_1200[:600] + ODD_TEXTS + reuters_1200[600:]):
        h.update(v.indices.tobytes())
        h.update(v.values.tobytes())
        h.update(b"|")
    assert h.hexdigest() == digest


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from("aB1_ \x00.-\tÉéßİ\u212aΣ東"), max_size=30)
        | st.text(alphabet=st.characters(max_codepoint=127), max_size=30),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_batch_tokenizer_equals_one_text_at_a_time(texts: list[str], lowercase: bool) -> None:
    featurizer = HashingFeaturizer(lowercase=lowercase)
    hashes, lengths = featurizer._batch_tokens(texts)
    per_text = [featurizer._tokens(text) for text in texts]
    assert lengths.tolist() == [len(tokens) for tokens in per_text]
    assert hashes.tolist() == featurizer._token_hashes([t for tokens in per_text for t in tokens]).tolist()


def test_weights_are_sublinear_tf_and_signs_come_from_the_hash() -> None:
    unsigned = HashingFeaturizer(ngram_range=(1, 1), alternate_sign=False, norm=None)
    v = as_dict(unsigned.transform_one("corn corn corn wheat"))
    assert sorted(v.values()) == pytest.approx([1.0, 1.0 + math.log(3)])
    raw = HashingFeaturizer(ngram_range=(1, 1), alternate_sign=False, norm=None, sublinear_tf=False)
    assert sorted(as_dict(raw.transform_one("corn corn corn wheat")).values()) == [1.0, 3.0]
    signed = HashingFeaturizer(ngram_range=(1, 1), norm=None)
    values = np.concatenate([signed.transform_one(f"w{i}").values for i in range(200)])
    assert np.all(np.abs(values) == 1.0)
    assert 60 < int((values < 0).sum()) < 140  # about half the terms are negative


def test_ngrams_tokens_and_case() -> None:
    featurizer = HashingFeaturizer(ngram_range=(1, 2))
    assert featurizer.transform_one("New York").nnz == 3  # new, york, "new york"
    assert as_dict(featurizer.transform_one("new york")) == as_dict(featurizer.transform_one("NEW, york!"))
    assert as_dict(featurizer.transform_one("new york")) != as_dict(featurizer.transform_one("york new"))
    assert HashingFeaturizer(ngram_range=(2, 3)).transform_one("a b c").nnz == 3
    assert HashingFeaturizer(lowercase=False, ngram_range=(1, 1)).transform_one("Corn corn").nnz == 2
    for empty in ("", "   ", "!?.,;"):
        assert featurizer.transform_one(empty).nnz == 0
    assert featurizer.terms("Oil prices, oil!") == {"oil": 2, "prices": 1, "oil prices": 1, "prices oil": 1}


def test_unicode_words_are_tokens() -> None:
    featurizer = HashingFeaturizer(ngram_range=(1, 1))
    assert featurizer.transform_one("Größe café 東京 2024").nnz == 4
    assert as_dict(featurizer.transform_one("CAFÉ")) == as_dict(featurizer.transform_one("café"))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=80))
def test_ascii_fast_tokenizer_equals_the_regex(text: str) -> None:
    featurizer = HashingFeaturizer()
    assert featurizer._tokens(text) == re.findall(r"\w+", text.lower())


def test_small_and_odd_dimensions() -> None:
    one_column = HashingFeaturizer(n_features=1, alternate_sign=False, ngram_range=(1, 1))
    v = one_column.transform_one("a b c")
    assert v.indices.tolist() == [0] and v.values.tolist() == [1.0]
    odd = HashingFeaturizer(n_features=1000)
    assert int(odd.transform_one("grain exports rose sharply").indices.max()) < 1000


def test_the_hash_is_stable_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    # Python's own hash() is salted per process; the featurizer must not depend on it.
    text = "Wheat and corn exports rose 3.5 pct in March, the agriculture department said."
    script = (
        "import json; from labelflow.operators.embedders.hashing import HashingFeaturizer as H;"
        f"v = H().transform_one({text!r}); print(json.dumps([v.indices.tolist(), v.values.tolist()]))"
    )
    outputs = []
    for seed in ("1", "2"):
        run = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        )
        outputs.append(json.loads(run.stdout))
    here = HashingFeaturizer().transform_one(text)
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == here.indices.tolist()
    # A different seed gives a different (equally valid) hashing.
    assert HashingFeaturizer(seed=7).transform_one(text).indices.tolist() != here.indices.tolist()


def test_embedder_role_and_bad_arguments() -> None:
    featurizer = HashingFeaturizer(n_features=2**10)
    assert isinstance(featurizer, Embedder) and featurizer.sparse and featurizer.dim == 1024
    assert "n_features=1024" in featurizer.identity
    assert HashingFeaturizer(seed=1).identity != HashingFeaturizer(seed=2).identity
    with pytest.raises(TypeError, match="single string"):
        featurizer.transform_many("oops")
    with pytest.raises(TypeError, match="text 1 is NoneType"):
        featurizer.transform_many(["ok", None])  # type: ignore[list-item]
    for bad in ({"n_features": 0}, {"ngram_range": (2, 1)}, {"norm": "l1"}, {"seed": -1}):
        with pytest.raises(ValueError):
            HashingFeaturizer(**bad)
