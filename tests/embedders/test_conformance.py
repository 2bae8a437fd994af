"""Every embedder passes the same interface checks (operators/embedders/checks.py)."""

from __future__ import annotations

import pytest

from labelflow.operators.embedders.cache import CachedEmbedder
from labelflow.operators.embedders.checks import EMBEDDER_CHECKS, check_batch_equals_one_by_one
from labelflow.operators.embedders.concat import ConcatEmbedder
from labelflow.operators.embedders.hashing import HashingFeaturizer

EMBEDDER_NAMES = (
    "hashing",
    "static-input",
    "static-contextual",
    "transformer",
    "static+hashing",
    "cached-static",
)


@pytest.fixture(scope="module")
def embedders(request, transformer, static_input, static_contextual, tmp_path_factory):
    return {
        "hashing": HashingFeaturizer(),
        "static-input": static_input,
        "static-contextual": static_contextual,
        "transformer": transformer,
        "static+hashing": ConcatEmbedder([HashingFeaturizer(), static_contextual], weights=[1.0, 0.5]),
        "cached-static": CachedEmbedder(static_input, tmp_path_factory.mktemp("embedding-cache")),
    }


@pytest.mark.parametrize("check", EMBEDDER_CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", EMBEDDER_NAMES)
def test_embedder_conforms(embedders, name, check):
    embedder = embedders[name]
    if check is check_batch_equals_one_by_one and name == "transformer":
        # Padding changes the order of float sums inside attention: equal to ~1e-6, not bit-exact.
        check(embedder, atol=1e-4)
    else:
        check(embedder)


def test_identities_are_distinct_and_stable(embedders, static_cache_dir):
    identities = [embedders[name].identity for name in EMBEDDER_NAMES if name != "cached-static"]
    assert len(set(identities)) == len(identities)
    # The cache is transparent: it answers to the identity of what it wraps.
    assert embedders["cached-static"].identity == embedders["static-input"].identity
    assert HashingFeaturizer().identity == embedders["hashing"].identity
