"""Text to sparse vectors by feature hashing: no vocabulary to fit, the same output forever.

Tokens are runs of unicode word characters (letters, digits, underscore: ``\\w+``), lower-cased by
default; an n-gram is n consecutive tokens of one document. Hashing is stable across processes,
machines and Python versions (never the salted built-in ``hash()``):

* each token is hashed with CRC-32 (``zlib.crc32``, seeded through CRC's start value);
* an n-gram's 64-bit hash combines its tokens' CRCs polynomially (FNV prime, wrapping arithmetic),
  adds n times a constant and goes through the MurmurHash3 64-bit finaliser, so that "new york",
  "york new" and "new" are unrelated values.

The low bits of the 64-bit hash pick the column (``hash % n_features``); with ``alternate_sign``
(default) the top bit picks the sign, so that colliding terms cancel on average instead of adding
up, which keeps inner products unbiased. Term weights are ``1 + log(tf)`` (``sublinear_tf``) or raw
counts, summed per column, and the vector is L2-normalised.

Speed: documents are processed in vectorised batches (one sort per batch groups terms by document,
column and term); token CRCs are memoised. See ``benchmarks/io_speed/RESULTS.md``.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from labelflow.operators.base import Features, SparseVector
from labelflow.operators.embedders.base import Embedder

_TOKEN = re.compile(r"\w+")
_ASCII_NON_WORD = str.maketrans({chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")})
# A batch's texts are tokenized as one string, joined by this character between spaces: a token of its
# own, which the translation keeps (one character for one, so str.translate stays on its fast path) and
# no real token contains (it is not a word character). A batch whose texts hold it is tokenized text by
# text.
_JOINER = "\x00"
_JOINED_NON_WORD = str.maketrans({**_ASCII_NON_WORD, ord(_JOINER): _JOINER})
_JOINER_HASH = 1 << 32  # the joiner's entry among the token hashes: above every CRC-32
_POLY = np.uint64(0x100000001B3)  # the 64-bit FNV prime: an odd multiplier that spreads bits
_LENGTH_SALT = 0x9E3779B97F4A7C15  # the golden-ratio constant; n * salt tells n-gram lengths apart
_SHIFT = np.uint64(33)
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_BATCH = 512  # texts hashed per vectorised pass: amortises numpy calls, bounds temporary memory
_CACHE_LIMIT = 1 << 20  # token hashes remembered (about 100 MB at most); cleared when exceeded


def _mix64(h: np.ndarray) -> np.ndarray:
    """The MurmurHash3 64-bit finaliser: every input bit affects every output bit.

    uint64 array arithmetic wraps modulo 2**64 (numpy never warns for integer arrays)."""
    h = h ^ (h >> _SHIFT)
    h *= _FMIX1
    h ^= h >> _SHIFT
    h *= _FMIX2
    h ^= h >> _SHIFT
    return h


class HashingFeaturizer(Embedder):
    """Hashed bag of word n-grams with sublinear term frequency and L2 norm.

    Parameters
    ----------
    n_features
        Output dimension; a power of two keeps the column a bit mask.
    ngram_range
        Smallest and largest n-gram length, e.g. ``(1, 2)`` for words and word pairs.
    sublinear_tf
        Weight ``1 + log(tf)`` instead of the raw count ``tf``.
    lowercase
        Lower-case the text before tokenizing.
    norm
        ``"l2"`` or ``None``.
    seed
        Start value of the CRC: another seed gives another (equally good) hashing.
    alternate_sign
        Give each term a sign from a hash bit not used for the column.

    Examples
    --------

    >>> featurizer = HashingFeaturizer(n_features=2**10, ngram_range=(1, 1))
    >>> v = featurizer.transform_one("Wheat wheat corn")
    >>> v.dim, v.nnz
    (1024, 2)
    >>> round(float((v.values ** 2).sum()), 6)
    1.0
    >>> featurizer.transform_one("wheat corn wheat").indices.tolist() == v.indices.tolist()
    True
    """

    sparse = True

    def __init__(
        self,
        n_features: int = 2**18,
        ngram_range: tuple[int, int] = (1, 2),
        sublinear_tf: bool = True,
        lowercase: bool = True,
        norm: str | None = "l2",
        seed: int = 0,
        alternate_sign: bool = True,
    ) -> None:
        if not isinstance(n_features, int) or not 1 <= n_features <= 2**31:
            raise ValueError(f"n_features must be an integer in 1..2**31, got {n_features!r}")
        low, high = ngram_range
        if not 1 <= low <= high:
            raise ValueError(f"ngram_range must satisfy 1 <= min <= max, got {ngram_range!r}")
        if norm not in ("l2", None):
            raise ValueError(f"norm must be 'l2' or None, got {norm!r}")
        if not 0 <= seed < 2**32:
            raise ValueError(f"seed must be in 0..2**32-1, got {seed!r}")
        self.n_features = n_features
        self.ngram_range = (low, high)
        self.sublinear_tf = sublinear_tf
        self.lowercase = lowercase
        self.norm = norm
        self.seed = seed
        self.alternate_sign = alternate_sign
        self.dim = n_features
        self._mask = n_features - 1 if n_features & (n_features - 1) == 0 else None
        self._cache = _TokenHashes(seed)
        self.identity = (
            f"hashing(n_features={n_features},ngram_range={low}-{high},sublinear_tf={sublinear_tf},"
            f"lowercase={lowercase},norm={norm},seed={seed},alternate_sign={alternate_sign},"
            "tokens=\\w+,hash=crc32+poly64+fmix64)"
        )

    def __repr__(self) -> str:
        return f"HashingFeaturizer({self.identity})"

    def terms(self, text: str) -> Counter[str]:
        """The n-gram terms of ``text`` with their counts (what gets hashed; for inspection)."""
        tokens = self._tokens(text)
        low, high = self.ngram_range
        counts: Counter[str] = Counter()
        for n in range(low, high + 1):
            if len(tokens) >= n:
                counts.update(map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False)))
        return counts

    def _tokens(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if text.isascii():
            # Same tokens as the regex (ASCII \w is [A-Za-z0-9_]), about twice as fast.
            return text.translate(_ASCII_NON_WORD).split()
        return _TOKEN.findall(text)

    def _token_hashes(self, tokens: list[str]) -> np.ndarray:
        """CRC-32 of each token (memoised: a corpus repeats its vocabulary), as uint64."""
        return np.fromiter(map(self._cache.__getitem__, tokens), dtype=np.uint64, count=len(tokens))

    def _batch_tokens(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The token hashes of all ``texts`` in order, and each text's token count.

        The texts are lower-cased, joined and split as one string (a few C calls for the batch instead
        of a few per text); a text that is not ASCII is tokenized by the regex on its own and stands in
        the joined string as its tokens separated by spaces. The same tokens as ``_tokens`` per text.
        """
        if self.lowercase:
            texts = [text.lower() for text in texts]
        joiner = f" {_JOINER} "
        joined = joiner.join(texts)
        if not joined.isascii():
            if any(_JOINER in text for text in texts):
                return self._tokens_one_by_one(texts)
            joined = joiner.join(text if text.isascii() else " ".join(_TOKEN.findall(text)) for text in texts)
        elif joined.count(_JOINER) != len(texts) - 1:
            return self._tokens_one_by_one(texts)
        hashes = self._token_hashes(joined.translate(_JOINED_NON_WORD).split())
        is_joiner = hashes == np.uint64(_JOINER_HASH)
        ends = np.append(np.flatnonzero(is_joiner), hashes.shape[0])
        lengths = np.diff(ends, prepend=-1) - 1
        return hashes[~is_joiner], lengths

    def _tokens_one_by_one(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``_batch_tokens`` for texts that hold the joiner (already lower-cased where asked)."""
        token_lists = [
            text.translate(_ASCII_NON_WORD).split() if text.isascii() else _TOKEN.findall(text)
            for text in texts
        ]
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(texts))
        return self._token_hashes([token for tokens in token_lists for token in tokens]), lengths

    def transform_one(self, text: str) -> SparseVector:
        """The hashed feature vector of one text (an empty text gives an empty vector)."""
        return self.transform_many([text])[0]

    def transform_many(self, texts: Sequence[str]) -> list[SparseVector]:
        """One vector per text, in order; texts are processed in vectorised batches."""
        if isinstance(texts, str):
            raise TypeError("transform_many expects a sequence of texts, not a single string")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is {type(text).__name__}, expected str")
        out: list[SparseVector] = []
        for start in range(0, len(texts), _BATCH):
            out.extend(self._transform_batch(texts[start : start + _BATCH]))
        return out

    def _transform_batch(self, texts: list[str]) -> list[SparseVector]:
        n_docs = len(texts)
        base, lengths = self._batch_tokens(texts)
        hashes, docs = self._gram_hashes(base, lengths)

        # One sort groups everything. Each n-gram occurrence becomes the 64-bit key
        #   [ document * n_features + column | top bits of the term hash ]
        # so that sorted keys run by document, then column, then term: equal keys are repeats of one
        # term (their count is its tf), equal high parts are terms colliding in one column.
        if self._mask is not None:
            columns = hashes & np.uint64(self._mask)
        else:
            columns = hashes % np.uint64(self.n_features)
        slot_bits = max(1, int(n_docs * self.n_features - 1).bit_length())
        term_bits = 64 - slot_bits
        slots = docs.astype(np.uint64) * np.uint64(self.n_features) + columns
        keys = np.sort((slots << np.uint64(term_bits)) | (hashes >> np.uint64(slot_bits)))
        is_first = np.empty(keys.shape[0], dtype=bool)
        is_first[:1] = True
        np.not_equal(keys[1:], keys[:-1], out=is_first[1:])
        starts = np.flatnonzero(is_first)
        tf = np.diff(np.append(starts, keys.shape[0])).astype(np.float64)
        term_keys = keys[starts]
        weights = 1.0 + np.log(tf) if self.sublinear_tf else tf
        if self.alternate_sign:
            # The sign is the term hash's top bit, the highest bit kept in the key.
            negative = (term_keys >> np.uint64(term_bits - 1)) & np.uint64(1)
            weights = np.where(negative.astype(bool), -weights, weights)
        term_slots = term_keys >> np.uint64(term_bits)
        slot_first = np.empty(term_slots.shape[0], dtype=bool)
        slot_first[:1] = True
        np.not_equal(term_slots[1:], term_slots[:-1], out=slot_first[1:])
        slot_starts = np.flatnonzero(slot_first)
        values = np.add.reduceat(weights, slot_starts) if slot_starts.shape[0] else weights
        unique_slots = term_slots[slot_starts].astype(np.int64)
        key_docs = unique_slots // self.n_features
        key_columns = unique_slots - key_docs * self.n_features
        if self.norm == "l2":
            norms = np.sqrt(np.bincount(key_docs, weights=values * values, minlength=n_docs))
            scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
            values = values * scale[key_docs]
        nonzero = values != 0.0  # colliding terms of opposite sign can cancel exactly
        if not nonzero.all():
            key_docs, key_columns, values = key_docs[nonzero], key_columns[nonzero], values[nonzero]
        values32 = values.astype(np.float32)
        bounds = np.searchsorted(key_docs, np.arange(n_docs + 1))
        return [
            SparseVector(
                key_columns[bounds[i] : bounds[i + 1]], values32[bounds[i] : bounds[i + 1]], self.n_features
            )
            for i in range(n_docs)
        ]

    def _gram_hashes(self, base: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One 64-bit hash per n-gram occurrence, with the index of the document it is in, from the
        token hashes ``base`` of all documents and each document's token count."""
        doc_of_token = np.repeat(np.arange(lengths.shape[0]), lengths)
        # How many tokens follow each token inside its own document (n-grams never cross documents).
        room = np.repeat(np.cumsum(lengths), lengths) - np.arange(base.shape[0]) - 1
        low, high = self.ngram_range
        hash_parts, doc_parts = [], []
        for n in range(low, high + 1):
            if n == 1:
                gram, docs = base, doc_of_token
            else:
                at = np.flatnonzero(room >= n - 1)
                if at.shape[0] == 0:
                    break
                # Polynomial combination of the n token hashes: "new york" != "york new".
                gram = base[at]
                for k in range(1, n):
                    gram = gram * _POLY + base[at + k]
                docs = doc_of_token[at]
            # Salted by n, so that a unigram and a bigram never share a pre-mix value by design.
            hash_parts.append(gram + np.uint64((n * _LENGTH_SALT) % 2**64))
            doc_parts.append(docs)
        if not hash_parts:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        if len(hash_parts) == 1:
            return _mix64(hash_parts[0]), doc_parts[0]
        return _mix64(np.concatenate(hash_parts)), np.concatenate(doc_parts)

    def embed_many(self, texts: Sequence[str]) -> list[Features]:  # the Embedder role
        return list(self.transform_many(texts))


class _TokenHashes(dict[str, int]):
    """Token -> CRC-32 (seeded), computed on first sight; cleared when it outgrows ``_CACHE_LIMIT``.

    The batch joiner maps to ``_JOINER_HASH``, which no CRC-32 equals.
    """

    def __init__(self, seed: int) -> None:
        super().__init__({_JOINER: _JOINER_HASH})
        self.seed = seed

    def __missing__(self, token: str) -> int:
        if len(self) > _CACHE_LIMIT:
            self.clear()
            self[_JOINER] = _JOINER_HASH
        value = self[token] = zlib.crc32(token.encode("utf-8"), self.seed)
        return value
