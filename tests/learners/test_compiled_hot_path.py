"""The default learner's compiled per-document kernels against the vectorized numpy forms they replace.

Each reference below is the numpy code the kernel replaced. Where a kernel promises the same float32 (or
float64) operations in the same order the results must be equal to the bit; where it sums in another
order than BLAS or uses LLVM's log and exp instead of numpy's, to float32 rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelflow.operators.base import SparseVector
from labelflow.operators.learners import feature_scaling, linear, partitioned, thresholds
from labelflow.operators.learners.registry import make_learner

RNG_SEEDS = (0, 1, 2)
MAX_LOG_ODDS = float(np.log((1 - 1e-4) / 1e-4))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.minimum(np.maximum(p, 1e-4), 1 - 1e-4)
    return np.log(p / (1.0 - p))


def _bounded(z: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(z, -MAX_LOG_ODDS), MAX_LOG_ODDS)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(z, -30.0), 30.0)))


def test_standardize_and_welford_match_numpy():
    for seed in RNG_SEEDS:
        rng = np.random.default_rng(seed)
        x = (rng.normal(size=37) * 4).astype(np.float32)
        mean, m2 = rng.normal(size=37), rng.random(37) * 9
        m2[3] = 0.0  # a constant feature standardises to 0
        n, clip = 11, 5.0
        std = np.sqrt(m2 / (n - 1))
        z = np.where(std > 1e-12, (x - mean) / np.maximum(std, 1e-12), 0.0)
        np.minimum(np.maximum(z, -clip, out=z), clip, out=z)
        expected = (z / math.sqrt(x.shape[0])).astype(np.float32)
        out = np.empty(37, dtype=np.float32)
        feature_scaling._standardized(x, mean, m2, n, clip, out)
        assert np.array_equal(out, expected)

        ref_mean, ref_m2 = mean.copy(), m2.copy()
        delta = x - ref_mean
        ref_mean += delta / (n + 1)
        ref_m2 += delta * (x - ref_mean)
        feature_scaling._welford_step(x, mean, m2, n + 1)
        assert np.array_equal(mean, ref_mean) and np.array_equal(m2, ref_m2)


def _reference_adagrad(
    w: np.ndarray,
    g2: np.ndarray,
    idx: np.ndarray,
    values: np.ndarray,
    gradient: np.ndarray,
    restarted: list[tuple[np.ndarray, np.ndarray]],
    lr: float,
    offset: float,
) -> None:
    """LinearHeads.learn's numpy form (no l2)."""
    n = gradient.shape[0]

    def rates(accumulated: np.ndarray) -> np.ndarray:
        return lr / np.sqrt(offset + accumulated)

    g2[idx] += values * values
    g2[-1] += 1.0
    accumulated, bias_accumulated = g2[idx], g2[-1]
    block = w[idx, :n]
    subs = [(labels, block[:, labels], snapshot) for labels, snapshot in restarted]
    block += np.outer(rates(accumulated) * values, gradient)
    bias_rate = rates(bias_accumulated)
    w[-1, :n] += bias_rate * gradient
    for labels, sub, snapshot in subs:
        sub += np.outer(rates(accumulated - snapshot[idx]) * values, gradient[labels])
        block[:, labels] = sub
        w[-1, labels] += (rates(bias_accumulated - snapshot[-1]) - bias_rate) * gradient[labels]
    w[idx, :n] = block


@pytest.mark.parametrize("restarts", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_adagrad_step_matches_numpy(sparse: bool, restarts: bool):
    rng = np.random.default_rng(3)
    dim, n, capacity = 40, 9, 16
    w = rng.normal(size=(dim + 1, capacity)).astype(np.float32)
    g2 = (rng.random(dim + 1) * 50).astype(np.float32)
    gradient = (rng.random(n) * 2 - 1).astype(np.float32)
    restarted = (
        [
            (np.array([1, 4]), (g2 * rng.random(dim + 1)).astype(np.float32)),
            (np.array([7]), (g2 * rng.random(dim + 1)).astype(np.float32)),
        ]
        if restarts
        else []
    )
    if sparse:
        idx = np.sort(rng.choice(dim, size=12, replace=False)).astype(np.int64)
        values = rng.normal(size=12).astype(np.float32)
        rows, given = idx, values
    else:
        dense = rng.normal(size=dim).astype(np.float32)
        dense[[2, 5]] = 0.0
        idx = np.flatnonzero(dense)
        values = dense[idx]
        rows, given = np.zeros(0, dtype=np.int64), dense
    ref_w, ref_g2 = w.copy(), g2.copy()
    _reference_adagrad(ref_w, ref_g2, idx, values, gradient, restarted, 0.7, 1.0)
    group = np.full(n, -1, dtype=np.int64)
    for i, (labels, _) in enumerate(restarted):
        group[labels] = i
    snapshots = np.stack([s for _, s in restarted]) if restarted else np.zeros((0, 0), dtype=np.float32)
    linear._adagrad_step(
        w, g2, rows, given, gradient, 0.7, 1.0, group if restarts else np.zeros(0, dtype=np.int64), snapshots
    )
    assert np.array_equal(w, ref_w) and np.array_equal(g2, ref_g2)


def test_count_scores_matches_bincount():
    rng = np.random.default_rng(4)
    bins, width = 40, 16
    lengths = np.array([5, 5, 7, 9], dtype=np.int64)
    scores = rng.random(lengths.sum()).astype(np.float32)
    scores[0] = 1.0  # the top score falls in the last bin
    truth = (rng.random(lengths.sum()) < 0.3).astype(np.float32)
    weights = np.array([1.0, 1.001, 1.002, 1.003])
    positive, negative = rng.random((bins, width)), rng.random((bins, width))
    ref_pos, ref_neg = positive.copy(), negative.copy()
    columns = np.concatenate([np.arange(n) for n in lengths])
    cells = np.minimum((scores * bins).astype(np.int64), bins - 1) * width + columns
    repeated = np.repeat(weights, lengths)
    hit = truth > 0
    ref_pos += np.bincount(cells[hit], weights=repeated[hit], minlength=bins * width).reshape(bins, width)
    ref_neg += np.bincount(cells[~hit], weights=repeated[~hit], minlength=bins * width).reshape(bins, width)
    thresholds._count_scores(scores, truth, lengths, weights, positive, negative)
    assert np.array_equal(positive, ref_pos) and np.array_equal(negative, ref_neg)


@pytest.mark.parametrize("with_votes", [False, True])
def test_stacker_forward_and_update_match_numpy(with_votes: bool):
    rng = np.random.default_rng(5)
    n = 23
    head_z = (rng.normal(size=n) * 12).astype(np.float32)
    votes = rng.random(n).astype(np.float32)
    votes[0], votes[1] = 0.0, 1.0  # clipped to [1e-4, 1 - 1e-4]
    recent = (rng.random(n + 5) < 0.4).astype(np.float32)
    stack = rng.normal(size=(n + 5, 4)).astype(np.float32)
    threshold_log_odds = rng.normal(size=n).astype(np.float32)
    bias = rng.normal(size=n + 3).astype(np.float32)
    products = head_z
    head_z = products + bias[:n]  # the heads' logits: their products plus the bias

    inputs = np.empty((n, 4), dtype=np.float32)
    inputs[:, 0] = _bounded(head_z)
    inputs[:, 1] = _logit(votes) if with_votes else 0.0
    inputs[:, 2] = recent[:n]
    inputs[:, 3] = 1.0
    z = np.einsum("...ij,ij->...i", inputs, stack[:n])
    head_p, p = _sigmoid(np.stack([head_z, z]))
    shifted = _bounded(z) - threshold_log_odds

    block = np.empty((5, n), dtype=np.float32)
    block[partitioned._HEAD_Z] = products
    got_inputs = np.empty((n, 4), dtype=np.float32)
    no = partitioned._NO_ARRAY
    partitioned._stack_forward(
        block, bias, votes if with_votes else no, recent, stack, threshold_log_odds, got_inputs
    )
    # LLVM's float32 log and exp may differ from numpy's in the last bit; everything else is exact
    assert np.array_equal(got_inputs[:, [0, 2, 3]], inputs[:, [0, 2, 3]])
    np.testing.assert_allclose(got_inputs[:, 1], inputs[:, 1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(block[partitioned._Z], z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(block[partitioned._SHIFTED], shifted, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(block[partitioned._HEAD_P], head_p, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(block[partitioned._P], p, rtol=1e-5, atol=1e-7)
    unthresholded = np.empty((5, n), dtype=np.float32)
    unthresholded[partitioned._HEAD_Z] = products
    partitioned._stack_forward(unthresholded, bias, votes if with_votes else no, no, stack, no, got_inputs)
    assert np.array_equal(got_inputs[:, 2], np.zeros(n, dtype=np.float32))  # no temporal context
    assert np.array_equal(unthresholded[partitioned._SHIFTED], _bounded(unthresholded[partitioned._Z]))
    p = block[partitioned._P]
    inputs = got_inputs
    inputs[:, 2] = recent[:n]

    target = (rng.random(n) < 0.3).astype(np.float32)
    g2 = (rng.random((n + 5, 4)) * 3).astype(np.float32)
    ref_stack, ref_g2 = stack.copy(), g2.copy()
    gradient = (target - p)[:, None] * inputs
    ref_g2[:n] += gradient * gradient
    ref_stack[:n] += 0.5 * gradient / np.sqrt(1.0 + ref_g2[:n])
    label_ids = np.flatnonzero(target)
    n_now = n + 2  # two labels first seen with this instance
    label_ids = np.append(label_ids, n + 1)
    got_target, gradient = np.zeros(n_now, dtype=np.float32), np.empty(n_now, dtype=np.float32)
    got_recent = recent.copy()
    race = np.array([0.0, 0.0, 0.5, 0.0])  # one stacker (the second is tests/learners/test_stacker_race.py's)
    no_second = np.zeros((0, 4), dtype=np.float32)
    assert not partitioned._learn_labels(
        label_ids, p, inputs, head_p, stack, g2, got_recent, got_target, gradient, no_second, no_second, race
    )
    assert np.array_equal(stack, ref_stack) and np.array_equal(g2, ref_g2)
    assert np.array_equal(got_target, np.append(target, [0.0, 1.0]).astype(np.float32))
    assert np.array_equal(got_recent[:n_now], got_target) and np.array_equal(
        got_recent[n_now:], recent[n_now:]
    )
    padded = np.concatenate([head_p, np.full(2, 0.5, dtype=np.float32)])
    assert np.array_equal(gradient, (got_target - padded).astype(np.float32))


@pytest.mark.parametrize("idf", [False, True])
def test_sparse_scaling_and_products_match_numpy(idf: bool):
    rng = np.random.default_rng(7)
    indices = np.sort(rng.choice(300, size=40, replace=False)).astype(np.int64)
    values = rng.random(40).astype(np.float32)
    df = rng.integers(0, 90, size=300).astype(np.float32)
    n = 97
    expected = values * (np.log((1.0 + n) / (1.0 + df[indices])) + 1.0) if idf else values
    expected = expected / float(np.sqrt(np.dot(expected, expected)))
    got = np.empty(40, dtype=np.float32)
    feature_scaling._idf_unit(indices, values, df, n, idf, got)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    feature_scaling._idf_unit(indices, np.zeros(40, dtype=np.float32), df, n, idf, got)
    assert not got.any()  # a zero vector stays zero
    counted = df.copy()
    feature_scaling._count_documents(indices, counted)
    df[indices] += 1.0
    assert np.array_equal(counted, df)

    weights = rng.normal(size=(301, 16)).astype(np.float32)
    products = np.empty(11, dtype=np.float32)
    linear._sparse_products(indices, got, weights, products)
    np.testing.assert_allclose(products, got @ weights[indices, :11], rtol=1e-5, atol=1e-6)


def _labelled_stream(n: int, sparse: bool):
    rng = np.random.default_rng(6)
    for i in range(n):
        topic = int(rng.integers(3))
        labels = [f"t{topic}"] + ([f"t{(topic + 1) % 3}"] if rng.random() < 0.3 else [])
        if i > n // 2:
            labels.append("late")  # a label first seen mid-stream
        if sparse:
            indices = np.sort(rng.choice(50, size=6, replace=False)).astype(np.int64)
            indices[0] = topic
            yield SparseVector(indices, rng.random(6).astype(np.float32) + 0.1, 50), labels
        else:
            yield (rng.normal(size=8) + 2.0 * topic).astype(np.float32), labels


@pytest.mark.parametrize("sparse", [False, True])
def test_learn_many_gives_the_model_learning_one_by_one_gives(sparse: bool):
    data = list(_labelled_stream(300, sparse))
    one, many = make_learner("partitioned"), make_learner("partitioned")
    for x, y in data:
        one.predict_with_scores(x)
        one.learn_one(x, y)
    for start in range(0, len(data), 32):
        chunk = data[start : start + 32]
        many.predict_with_scores_many([x for x, _ in chunk])
        many.learn_many([x for x, _ in chunk], [y for _, y in chunk])
    a, b = one.state(), many.state()
    assert a.meta == b.meta
    assert a.arrays.keys() == b.arrays.keys()
    for key, value in a.arrays.items():
        assert np.array_equal(value, b.arrays[key], equal_nan=value.dtype.kind == "f"), key
    probe = data[-1][0]
    assert one.predict_with_scores(probe) == many.predict_with_scores(probe)


def test_numpy_sum_and_pooled_cut_match_numpy():
    rng = np.random.default_rng(8)
    for n in [0, 1, 7, 8, 9, 15, 16, 17, 127, 128, 129, 159, 257, 300, 1000, 4097]:
        values = rng.random(n) * 1e3
        assert thresholds._numpy_sum(values) == values.sum()
    for n in [1, 5, 14, 159, 300]:
        bins = 40
        positive = rng.random((bins, n + 3)) * (rng.random((bins, n + 3)) < 0.3)
        negative = rng.random((bins, n + 3)) * 5
        pos, neg = positive[:, :n], negative[:, :n]
        tp = np.cumsum(pos[::-1], axis=0)[::-1]
        fp = np.cumsum(neg[::-1], axis=0)[::-1]
        tp_all, fp_all = tp.sum(axis=1), fp.sum(axis=1)
        f1_all = 2 * tp_all / np.maximum(2 * tp_all + fp_all + (tp[0].sum() - tp_all), 1e-300)
        assert thresholds._pooled_cut(positive, negative, n) == int(np.argmax(f1_all))
    flat = np.zeros((40, 4))  # no evidence: every cut ties, the first wins as with argmax
    assert thresholds._pooled_cut(flat, flat, 4) == 0


def _forward_arrays(forward: partitioned._Forward) -> list[np.ndarray]:
    embedded, scaled = forward.embedded, forward.scaled
    parts = [*embedded] if isinstance(embedded, tuple) else [embedded]
    parts += [scaled.indices, scaled.values] if isinstance(scaled, SparseVector) else [scaled]
    return [*parts, forward.inputs, forward.z, forward.p, forward.head_p, forward.shifted]


def _instances(dim: int, n: int, seed: int) -> list[tuple[np.ndarray | SparseVector, list[str]]]:
    """Sparse instances of ``dim`` features (0: dense ones of 8), 4 topics, a label first seen late."""
    rng = np.random.default_rng(seed)
    data: list[tuple[np.ndarray | SparseVector, list[str]]] = []
    for i in range(n):
        late = ["late"] if i > n * 2 // 3 else []
        if dim:
            indices = np.sort(rng.choice(dim, size=12, replace=False)).astype(np.int64)
            x = SparseVector(indices, rng.random(12).astype(np.float32) + 0.1, dim)
            data.append((x, [f"t{int(indices[0]) % 4}", *late]))
        else:
            topic = int(rng.integers(4))
            data.append(((rng.normal(size=8) + 2.0 * topic).astype(np.float32), [f"t{topic}", *late]))
    return data


# 0: dense; 5000 is wider than the neighbours' sketch: sketched
@pytest.mark.parametrize("dim", [0, 50, 5000])
def test_fused_forward_equals_the_components_forward(dim: int):
    model = partitioned.PartitionedClassifier()
    fused = 0
    for i, (x, labels) in enumerate(_instances(dim, 150, 8)):
        n = len(model.label_index)
        if n:
            model._grow(n)
            general = model._forward_components(x, n)
            if isinstance(x, SparseVector):
                one_call = model._forward_sparse(x, n)
            else:
                one_call = model._forward_dense(x, n)
            if one_call is not None:
                fused += 1
                for a, b in zip(_forward_arrays(general), _forward_arrays(one_call), strict=True):
                    assert np.array_equal(a, b), i
        model.predict_with_scores(x)
        model.learn_one(x, labels)
    assert fused > 140  # all but the first instances (nothing learned yet) and the first of a new label


@pytest.mark.parametrize("dim", [0, 50, 5000])
def test_fused_learning_gives_the_model_the_components_give(dim: int, monkeypatch: pytest.MonkeyPatch):
    data = _instances(dim, 200, 9)
    fused = partitioned.PartitionedClassifier()
    learned = []
    original = partitioned.PartitionedClassifier._learn_fused

    def counted(*args: object) -> bool:
        learned.append(original(*args))  # type: ignore[arg-type]
        return learned[-1]

    monkeypatch.setattr(partitioned.PartitionedClassifier, "_learn_fused", counted)
    for x, y in data:
        fused.predict_with_scores(x)
        fused.learn_one(x, y)
    assert sum(learned) > 190
    monkeypatch.setattr(partitioned.PartitionedClassifier, "_learn_fused", lambda *args: False)
    monkeypatch.setattr(partitioned.PartitionedClassifier, "_forward_sparse", lambda *args: None)
    monkeypatch.setattr(partitioned.PartitionedClassifier, "_forward_dense", lambda *args: None)
    components = partitioned.PartitionedClassifier()
    for x, y in data:
        components.predict_with_scores(x)
        components.learn_one(x, y)
    a, b = fused.state(), components.state()
    assert a.meta == b.meta
    assert a.arrays.keys() == b.arrays.keys()
    for key, value in a.arrays.items():
        assert np.array_equal(value, b.arrays[key], equal_nan=value.dtype.kind == "f"), key


@pytest.mark.parametrize("sparse", [False, True])
def test_learning_from_the_heads_own_probabilities_in_one_call_is_learn(sparse: bool):
    rng = np.random.default_rng(12)
    one_call, reference = linear.LinearHeads(learning_rate=16.0), linear.LinearHeads(learning_rate=16.0)
    for step in range(120):
        if sparse:
            indices = np.sort(rng.choice(400, size=15, replace=False)).astype(np.int64)
            x: np.ndarray | SparseVector = SparseVector(indices, rng.random(15).astype(np.float32), 400)
        else:
            scale = 300.0 if step % 5 == 0 else 8.0  # some logits far past the +-30 bound
            x = (rng.normal(size=9) * scale).astype(np.float32)
        y = (rng.random(5 + step // 40) < 0.4).astype(np.float32)  # labels join on the way
        one_call.learn_logistic(x, y)
        reference.learn(x, y, reference.probabilities(x, y.shape[0]))
        if step == 60:
            for heads in (one_call, reference):
                heads.reset([1, 3])  # restarted step sizes
    assert np.array_equal(one_call.weights, reference.weights)
    assert np.array_equal(one_call._g2, reference._g2)
    assert np.abs(reference.weights).max() > 1.0
    # The per-label arithmetic alone, across the bound: the numpy form's gradient to the bit.
    products = np.linspace(-80, 80, 161).astype(np.float32)
    bias = rng.normal(size=161).astype(np.float32)
    y = (rng.random(161) < 0.5).astype(np.float32)
    p = 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(products + bias, -30.0), 30.0)))
    z, gradient = products.copy(), np.empty(161, dtype=np.float32)
    linear._negated_bounded_logits(z, bias)
    linear._logistic_gradient(y, np.exp(z), gradient)
    assert np.array_equal(gradient, (y - p).astype(np.float32))
