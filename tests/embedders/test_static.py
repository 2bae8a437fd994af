"""Static embeddings: the distillation, its on-disk store, weighting and the fast tokenizer path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelflow.operators.embedders import distill as distill_module
from labelflow.operators.embedders import static as static_module
from labelflow.operators.embedders.distill import TokenVectors
from labelflow.operators.embedders.minilm import bundled_model_dir
from labelflow.operators.embedders.paths import CACHE_DIR_ENV, default_cache_dir
from labelflow.operators.embedders.static import StaticEmbedder, zipf_token_weights
from labelflow.operators.embedders.tokenization import load_tokenizer
from labelflow.operators.embedders.wordpiece import MemoizedWordPiece

# Input-embedding builds that only exercise storage and settings read part of the vocabulary.
PARTIAL = 4000


def _single_token_words(tokenizer, ids):
    """Token ids whose text tokenizes back to exactly that one token (plain words, no '##')."""
    found = {}
    for token_id in ids:
        word = tokenizer.id_to_token(token_id)
        if word.isalpha() and tokenizer.encode(word, add_special_tokens=False).ids == [token_id]:
            found[token_id] = word
    return found


def test_contextual_vectors_are_the_transformer_embedding_of_each_token(static_contextual, transformer):
    """With dim=None the PCA only centres and rotates, so distances between distilled token vectors
    equal distances between the transformer's sentence embeddings of the tokens as one-word texts."""
    vectors = static_contextual.token_vectors
    covered = vectors.meta["tokens_distilled"]
    assert static_contextual.dim == 384 and covered > 2100
    tokenizer = load_tokenizer(bundled_model_dir(), None)
    words = _single_token_words(tokenizer, range(2000, 2100))
    ids = list(words)[:12]
    sentence = transformer.embed_array([words[i] for i in ids])
    distilled = vectors.vectors[ids]
    expected = np.linalg.norm(sentence[:, None] - sentence[None], axis=-1)
    got = np.linalg.norm(distilled[:, None] - distilled[None], axis=-1)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert vectors.covered[:covered].all() and not vectors.covered[covered:].any()
    assert not vectors.vectors[covered:].any()


def test_built_once_then_loaded_from_disk(tmp_path, monkeypatch):
    first = StaticEmbedder(cache_dir=tmp_path, method="input", dim=8, vocab_limit=PARTIAL)
    stored = sorted(p.name for p in first.vectors_dir.iterdir())
    assert stored == ["meta.json", "vectors.npz"]  # plain arrays + JSON, no pickle
    with np.load(first.vectors_dir / "vectors.npz", allow_pickle=False) as data:
        assert data["vectors"].shape == (30522, 8)

    def must_not_build(*args, **kwargs):
        raise AssertionError("vectors were rebuilt instead of loaded")

    monkeypatch.setattr(static_module, "distill_token_vectors", must_not_build)
    second = StaticEmbedder(cache_dir=tmp_path, method="input", dim=8, vocab_limit=PARTIAL)
    assert second.identity == first.identity
    text = ["The price of the oil was said to be up."]
    assert np.array_equal(second.embed_array(text), first.embed_array(text))


def test_cache_dir_comes_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    embedder = StaticEmbedder(method="input", dim=4, vocab_limit=PARTIAL)
    assert embedder.vectors_dir.is_relative_to(tmp_path / "elsewhere")
    monkeypatch.delenv(CACHE_DIR_ENV)
    assert default_cache_dir().name == "labelflow"


def test_unknown_format_version_is_refused(tmp_path):
    StaticEmbedder(cache_dir=tmp_path, method="input", dim=4, vocab_limit=PARTIAL)
    (meta_path,) = tmp_path.glob("static/*/meta.json")
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 999
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format 999"):
        TokenVectors.load(meta_path.parent)


def test_settings_change_the_identity(static_cache_dir, static_input):
    variants = [
        StaticEmbedder(cache_dir=static_cache_dir, method="input", dim=64, weighting="uniform"),
        StaticEmbedder(cache_dir=static_cache_dir, method="input", dim=64, max_tokens=10),
        StaticEmbedder(cache_dir=static_cache_dir, method="input", dim=32),
    ]
    identities = {static_input.identity, *(v.identity for v in variants)}
    assert len(identities) == 4


def test_zipf_weights_favour_rare_tokens():
    weights = zipf_token_weights(30522)
    assert weights.dtype == np.float32
    assert np.all(np.diff(weights) >= 0)  # later ids are rarer, so weigh more
    assert 0 < weights[0] < 0.01 and weights[-1] > 0.9


def test_max_tokens_reads_only_the_head(static_cache_dir):
    head_only = StaticEmbedder(cache_dir=static_cache_dir, method="input", dim=64, max_tokens=3)
    assert np.allclose(
        head_only.embed_one("wheat corn rice"), head_only.embed_one("wheat corn rice sugar oil")
    )


def test_uncovered_tokens_do_not_count(static_contextual):
    """Words outside a partial vocabulary are ignored, so a text of only such words embeds to zero."""
    tokenizer = load_tokenizer(bundled_model_dir(), None)
    rare = "wheat exports"
    covered = static_contextual.token_vectors.meta["tokens_distilled"]
    assert min(tokenizer.encode(rare, add_special_tokens=False).ids) >= covered
    assert not static_contextual.embed_one(rare).any()


def test_argument_validation(tmp_path):
    with pytest.raises(ValueError, match="method"):
        StaticEmbedder(cache_dir=tmp_path, method="magic")
    with pytest.raises(ValueError, match="weighting"):
        StaticEmbedder(cache_dir=tmp_path, method="input", weighting="tfidf")
    with pytest.raises(ValueError, match="dim"):
        distill_module._pca(np.ones((10, 4)), 5)


TRICKY = [
    "Café crème, naïve résumé",
    "cafe\u0301 a\u0300\u0301b",
    "中文字符 and 日本語",
    "foo_bar baz__qux",
    "emoji 😀👍🏽 test",
    "ctrl\x00\x01\x1fchars\x7f ok",
    "tab\tnew\nline\r end",
    "İstanbul ŞEHİR ΣΟΦΙΑΣ ΟΔΟΣ",
    "ﬁnance ＡＢＣ",
    "a\u200bb zero width",
    "$1.5 mln-dlr U.S. 3/4",
    "a\x0bb c\x1cd e\x85f g\u2028h i\u2029j k\u3000l",
    "x\x00y \ufffdz \u00adsoft",
]


def test_memoized_wordpiece_equals_the_rust_tokenizer(reuters_texts):
    tokenizer = load_tokenizer(bundled_model_dir(), None)
    wordpiece = MemoizedWordPiece(tokenizer)
    for text in TRICKY + reuters_texts:
        assert wordpiece.ids(text) == tokenizer.encode(text, add_special_tokens=False).ids, repr(text[:60])
    assert len(wordpiece) > 0


def test_memoized_wordpiece_memo_is_bounded():
    tokenizer = load_tokenizer(bundled_model_dir(), None)
    wordpiece = MemoizedWordPiece(tokenizer, max_words=5)
    text = "one two three four five six seven eight"
    assert wordpiece.ids(text) == tokenizer.encode(text, add_special_tokens=False).ids
    assert len(wordpiece) == 5
    assert wordpiece.ids(text) == tokenizer.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("sublinear", [True, False])
def test_document_is_the_weighted_mean_of_its_token_vectors(static_cache_dir, sublinear):
    embedder = StaticEmbedder(
        cache_dir=static_cache_dir, method="input", dim=64, sif=1e-5, sublinear_tf=sublinear
    )
    tokenizer = load_tokenizer(bundled_model_dir(), None)
    wheat, corn = tokenizer.token_to_id("wheat"), tokenizer.token_to_id("corn")
    vectors = embedder.token_vectors.vectors
    weights = zipf_token_weights(vectors.shape[0], 1e-5)
    tf = 1 + np.log(3) if sublinear else 3.0
    expected = tf * weights[wheat] * vectors[wheat] + weights[corn] * vectors[corn]
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(embedder.embed_one("Wheat wheat WHEAT corn"), expected, atol=1e-6)
