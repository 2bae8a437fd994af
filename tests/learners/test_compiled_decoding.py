"""The compiled subset decoder against a plain reference: every candidate of every cluster scored in Python."""

from __future__ import annotations

import numpy as np

from labelflow.operators.learners.powerset import LabelSetDecoder


def reference_decode(decoder: LabelSetDecoder, s: np.ndarray) -> np.ndarray:
    """The decoder's rule written out: per cluster the best of the empty subset, each compiled subset and,
    when it is no subset the cluster has seen, the per-label decision (ties keep the earlier candidate)."""
    beta = decoder.prior_weight
    out = np.zeros(s.shape[0], dtype=bool)
    starts, lengths, labels = decoder._row_starts, decoder._row_lengths, decoder._row_labels
    for c, table in enumerate(decoder._clusters):
        best, chosen = beta * decoder._empty_dependence[c], np.zeros(0, dtype=np.int64)
        for r in np.flatnonzero(decoder._row_cluster == c):
            members = labels[starts[r] : starts[r] + lengths[r]]
            score = np.add.reduceat(s[members], [0])[0] + beta * decoder._row_dependence[r]
            if score > best:
                best, chosen = score, members
        positive = s[table.labels] > 0
        if positive.any() and tuple(np.flatnonzero(positive).tolist()) not in table.rows:
            gain = 0.0
            for label in table.labels[positive]:
                gain += s[label] - beta * decoder._prior_logit[label]
            if gain + beta * decoder._novel_log_p[c] > best:
                chosen = table.labels[positive]
        out[chosen] = True
    return out


def random_partition(rng: np.random.Generator, n: int) -> list[tuple[int, ...]]:
    cuts = np.sort(rng.choice(np.arange(1, n), size=int(rng.integers(0, n // 2)), replace=False))
    return [tuple(sorted(c.tolist())) for c in np.split(rng.permutation(n), cuts)]


def test_compiled_decoding_matches_the_reference_on_random_streams():
    rng = np.random.default_rng(7)
    checked = seen_since_compiled = 0
    for trial in range(12):
        n = int(rng.integers(4, 40))
        decoder = LabelSetDecoder(prior_weight=float(rng.choice([0.3, 1.0])), refresh_every=10)
        decoder.set_partition(random_partition(rng, n))
        previous: list[int] = []
        for step in range(120):
            if step == 60:  # labels added mid-stream: a new partition over more labels
                n += 3
                decoder.set_partition(random_partition(rng, n))
            y = sorted(rng.choice(n, size=int(rng.integers(0, 4)), replace=False).tolist())
            decoder.learn(previous if rng.random() < 0.5 else y)  # repeats: seen subsets gather evidence
            previous = y
            s = rng.normal(size=n) * 2.0
            if step % 3 == 0:
                s = np.round(s)  # ties between candidates (and labels exactly at the threshold)
            decided = decoder.decode_one(s)
            assert np.array_equal(decided, reference_decode(decoder, s)), (trial, step)
            checked += 1
            seen_since_compiled += decoder._structure_changed
        batch = rng.normal(size=(5, n))
        many = decoder.decode_many(batch)
        assert np.array_equal(many, np.array([reference_decode(decoder, row) for row in batch]))
    # Subsets first seen after the last compilation (no candidates until the next) were exercised.
    assert checked == 12 * 120 and seen_since_compiled > 50


def test_clusters_without_seen_subsets_decide_per_label():
    decoder = LabelSetDecoder(prior_weight=1.0)
    decoder.set_partition([(0, 1), (2, 3)])
    for _ in range(30):
        decoder.learn([0])
    decoder.reset_labels([0])  # every table is empty now: no compiled subsets at all
    s = np.array([2.0, -1.0, 3.0, 1.0])
    assert (
        decoder.decode_one(s).tolist() == reference_decode(decoder, s).tolist() == [True, False, True, True]
    )


def test_equally_good_subsets_go_to_the_first_seen():
    decoder = LabelSetDecoder(prior_weight=1.0, fading_factor=1.0)
    decoder.set_partition([(0, 1, 2)])
    for _ in range(20):
        decoder.learn([1])
        decoder.learn([0])
        decoder.learn([2])
    s = np.array([0.5, 0.5, -5.0])  # {0} and {1} score the same; {0, 1} was never seen
    assert decoder.decode_one(s).tolist() == reference_decode(decoder, s).tolist() == [False, True, False]
    assert decoder._row_dependence[0] == decoder._row_dependence[1]


def test_the_layout_updated_in_place_equals_a_rebuilt_one():
    """Subsets first seen are inserted into the flat layout; it must equal the layout rebuilt from every
    table, also where several clusters (some without subsets yet) get a first subset at once."""
    rng = np.random.default_rng(3)
    inserted = 0
    for trial in range(8):
        n = int(rng.integers(6, 30))
        decoder = LabelSetDecoder(prior_weight=1.0, refresh_every=int(rng.integers(1, 12)))
        decoder.set_partition(random_partition(rng, n))
        for step in range(150):
            if step == 75:
                decoder.reset_labels([int(rng.integers(n))])  # a stale layout again: rebuilt next time
            decoder.learn(sorted(rng.choice(n, size=int(rng.integers(0, 5)), replace=False).tolist()))
            incremental = not decoder._layout_stale and bool(decoder._appended)
            decoder.decode_one(rng.normal(size=n))
            if incremental and decoder._compiled_at == decoder.n_learned:
                inserted += 1
                kept = [
                    (name, getattr(decoder, f"_{name}").copy())
                    for name in ("row_labels", "row_starts", "row_lengths", "row_cluster", "cluster_rows")
                ] + [("clusters_with_rows", decoder._clusters_with_rows.copy())]
                counts = np.concatenate(decoder._row_counts)
                decoder._flatten_all()
                for name, value in kept:
                    assert np.array_equal(value, getattr(decoder, f"_{name}")), (trial, step, name)
                    assert value.dtype == getattr(decoder, f"_{name}").dtype, (trial, step, name)
                assert np.array_equal(counts, np.concatenate(decoder._row_counts)), (trial, step)
    assert inserted > 100
