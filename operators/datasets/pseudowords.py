"""Pronounceable pseudo-words, deterministic from a seed: the vocabulary of synthetic text streams.

Real words would carry meaning from pretrained embedders into a synthetic stream; pseudo-words keep the
stream's structure exactly the one the generator put there.
"""

from __future__ import annotations

import numpy as np

_CONSONANTS = np.array(list("bdfgklmnprstvz"))
_VOWELS = np.array(list("aeiou"))
_SYLLABLES = np.array([c + v for c in _CONSONANTS for v in _VOWELS])


def pseudo_words(
    n: int, rng: np.random.Generator, *, min_syllables: int = 2, max_syllables: int = 4
) -> list[str]:
    """``n`` distinct pseudo-words such as ``"bavitu"``, drawn from ``rng``.

    Words have between ``min_syllables`` and ``max_syllables`` consonant-vowel syllables; the same
    generator state always yields the same words in the same order.

    >>> pseudo_words(3, np.random.default_rng(0))
    ['punonuza', 'gutire', 'livano']
    """
    if n < 0:
        raise ValueError(f"number of pseudo-words must be >= 0, got {n}")
    if not 1 <= min_syllables <= max_syllables:
        raise ValueError(f"need 1 <= min_syllables <= max_syllables, got {min_syllables}, {max_syllables}")
    capacity = sum(len(_SYLLABLES) ** k for k in range(min_syllables, max_syllables + 1))
    if n > capacity // 2:
        # Rejection sampling of duplicates slows down sharply as the space fills up.
        raise ValueError(
            f"{n} distinct pseudo-words requested; at most {capacity // 2} with these syllable counts"
        )
    words: dict[str, None] = {}
    while len(words) < n:
        batch = max(2 * (n - len(words)), 16)
        lengths = rng.integers(min_syllables, max_syllables + 1, size=batch)
        parts = rng.integers(0, len(_SYLLABLES), size=(batch, max_syllables))
        for length, row in zip(lengths.tolist(), parts, strict=True):
            words.setdefault("".join(_SYLLABLES[row[:length]]), None)
            if len(words) == n:
                break
    return list(words)
