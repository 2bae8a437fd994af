#!/usr/bin/env python
"""Can the heads' step size, chosen per stream, or a plainer use of the heads reach the AdaGrad rival? (issue 16)

DECISION_STUDY.md located the default's gap to ``adagrad-ovr`` (numpy AdaGrad one-vs-rest, step 4, one pooled
threshold) in the scores, not the decisions. This study runs, prequentially over every stream in file order,
the default learner and variants of its scores, and reports subset accuracy (S), micro-F1 (μF1) and CPU time
in the model calls against the default's in the same process:

* ``heads at step 4``: the default with ``learning_rate=4`` (the rival's step) instead of 16;
* ``heads raced, 16 vs 4``: the proposal of DECISION_STUDY.md. Two head sets learn side by side (steps 16
  and 4; AdaGrad's accumulators count squared feature values, so both sets share them and only the step
  differs); the set with the lower summed log-loss so far feeds the stacker; once a confidence bound
  separates their mean per-document log-loss the other set is dropped. The rule: the paired difference
  ``d_t`` of the two sets' log-loss on document ``t`` (summed over the labels known before it), its running
  mean and variance, and the time-uniform bound ``|mean| > sqrt(2 var ln(pi^2 t^2 / (3 delta)) / t)``
  (a union bound over t of a normal tail at ``delta / t^2 * 6 / pi^2``), with ``delta = 0.05`` and at least
  30 documents for the variance;
* ``stacker from the heads``: the per-label stacker starts from the heads' log-odds alone (weights 1, 0, 0,
  0 instead of half head, half neighbours), so labels with little evidence keep the heads' scores;
* ``heads alone at step 4, no decoding``: the default learner (decision experts, forced label, thresholds,
  calibration) deciding on its heads' scores alone: stacker fixed at the heads' log-odds, no subset decoding;
* ``stacker step 0.1``: the stacker's step size 0.1 instead of 0.5 (a slower per-label stacker);
* ``stackers raced, 0.5 vs 0.1``: two stackers learn side by side on the same inputs (steps 0.5 and 0.1;
  a stacker is 4 weights per label), the one with the lower summed log-loss so far (over the labels known
  at each prediction) is used, follow the leader with no bound (both keep learning, so nothing is dropped);
* ``bare heads at step 4``: the flat learner with every component but the heads switched off (no
  neighbours, temporal context, stacker learning, subset decoding, drift detectors, forced label): the rival
  inside our learner; ``+ decoding`` and ``+ stacker`` add one component back each;
* ``adagrad-ovr``: the rival.

    .venv/bin/python benchmarks/accuracy/heads_study.py                 # 9 ARFF streams + Reuters
    .venv/bin/python benchmarks/accuracy/heads_study.py --streams emotions bibtex --output /tmp/heads.md
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # BLAS threads slow the small products down

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Hashable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
from decision_study import DEFAULT_STREAMS, _ablation, _meets, report_header, scores  # noqa: E402

from labelflow.operators.base import Features, MultiLabelClassifier  # noqa: E402
from labelflow.operators.learners.linear import LinearHeads  # noqa: E402
from labelflow.operators.learners.partitioned import (  # noqa: E402
    _STACK_START,
    PartitionedClassifier,
    _Forward,
    _learn_stack,
)
from labelflow.operators.learners.registry import make_learner  # noqa: E402
from labelflow.operators.learners.scaling import ScalingClassifier  # noqa: E402

DELTA = 0.05  # the confidence of the race's decision
MIN_DOCUMENTS = 30  # documents before the variance of the log-loss difference is trusted


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0))))


class RacingHeads:
    """Head sets at several step sizes; the leader's scores are used, the others are dropped when beaten.

    Stands in for :class:`LinearHeads` inside :class:`PartitionedClassifier` (the methods it calls).
    """

    # The learner's fused forward and learning steps apply to one LinearHeads; a dimension they cannot
    # match (and no l2) sends them to the component path, which calls products() and learn_gradient() here.
    dim = None
    l2 = 0.0

    def __init__(self, rates: Sequence[float], adagrad_offset: float) -> None:
        self.sets = [LinearHeads(learning_rate=r, adagrad_offset=adagrad_offset) for r in rates]
        self.lead = 0
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.decided_at: int | None = None
        self._last: tuple[Features, list[np.ndarray]] | None = None

    @property
    def learning_rate(self) -> float:
        return self.sets[self.lead].learning_rate

    @property
    def adagrad_offset(self) -> float:
        return self.sets[self.lead].adagrad_offset

    @property
    def weights(self) -> np.ndarray:
        return self.sets[self.lead].weights

    def products(self, x: Features, n_labels: int) -> np.ndarray:
        outs = [heads.products(x, n_labels) for heads in self.sets]
        self._last = (x, outs)
        return outs[self.lead].copy()

    def learn_gradient(self, x: Features, gradient: np.ndarray) -> None:
        if len(self.sets) == 1:
            self.sets[0].learn_gradient(x, gradient)
            return
        assert self._last is not None and self._last[0] is x  # the learner predicts before it learns
        outs = self._last[1]
        m = outs[0].shape[0]
        probabilities = [_sigmoid(o + h.weights[-1, :m]) for h, o in zip(self.sets, outs, strict=True)]
        target = np.rint(gradient[:m] + probabilities[self.lead])  # the gradient is target - leader's p
        for i, heads in enumerate(self.sets):
            own = gradient.copy()
            own[:m] = target - probabilities[i]
            heads.learn_gradient(x, own.astype(np.float32))
        self._last = None
        if not m:
            return
        losses = []
        for p in probabilities:
            p = np.clip(p, 1e-6, 1 - 1e-6)
            losses.append(-float(np.sum(target * np.log(p) + (1 - target) * np.log(1 - p))))
        d = losses[0] - losses[1]
        self.n += 1
        delta = d - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (d - self.mean)
        self.lead = 0 if self.mean <= 0 else 1
        if self.n >= MIN_DOCUMENTS:
            variance = self.m2 / (self.n - 1)
            bound = math.sqrt(2 * variance * math.log(math.pi**2 * self.n**2 / (3 * DELTA)) / self.n)
            if abs(self.mean) > bound:
                self.sets = [self.sets[self.lead]]
                self.lead = 0
                self.decided_at = self.n

    def reset(self, labels: Sequence[int]) -> None:
        for heads in self.sets:
            heads.reset(labels)

    def adopt(self, labels: Sequence[int], other: LinearHeads) -> None:
        self.sets[self.lead].adopt(labels, other)  # background heads learn at the leader's step


class StackFromHeads(PartitionedClassifier):
    """The default flat learner whose stacker rows start from the heads' log-odds alone."""

    _START = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)

    def _grow(self, n_labels: int) -> None:
        before = self._stack.shape[0]
        super()._grow(n_labels)
        self._stack[before:] = self._START

    def reset_cluster_context(self, labels: Sequence[int]) -> None:
        super().reset_cluster_context(labels)
        self._stack[list(labels)] = self._START


def _stacked_from_heads(**flat: Any) -> MultiLabelClassifier:
    model = ScalingClassifier(**flat)
    assert model.flat is not None
    model.flat.__class__ = StackFromHeads
    model.flat._stack[:] = StackFromHeads._START
    return model


class RacedStackers(PartitionedClassifier):
    """The default flat learner with a second stacker at another step; the one with the lower log-loss leads."""

    def race(self, rate: float) -> None:
        self._other = self._stack.copy()
        self._other_g2 = np.zeros_like(self._stack)
        self._other_rate = rate
        self._losses = [0.0, 0.0]  # the leader's, the other's
        self._other_p: tuple[_Forward, np.ndarray] | None = None
        self.swaps = 0

    def _grow(self, n_labels: int) -> None:
        before = self._other.shape[0]
        super()._grow(n_labels)
        if before < self._stack.shape[0]:
            grown = np.tile(_STACK_START, (self._stack.shape[0], 1))
            grown[:before] = self._other
            self._other = grown
            g2 = np.zeros_like(grown)
            g2[:before] = self._other_g2
            self._other_g2 = g2

    def _forward(self, x: Features) -> _Forward:
        forward = super()._forward(x)
        if self._other_p is None or self._other_p[0] is not forward:
            z = (forward.inputs * self._other[: forward.n_labels]).sum(axis=1)
            self._other_p = (forward, _sigmoid(z).astype(np.float32))
        return forward

    def _learn(self, x: Features, forward: _Forward, y: Any) -> None:
        y = list(y)
        n = forward.n_labels
        if n and self._other_p is not None and self._other_p[0] is forward:
            other_p = self._other_p[1]
            target = np.zeros(n, dtype=np.float32)
            target[[i for i in map(self.label_index.get, y) if i is not None and i < n]] = 1.0
            for k, p in enumerate((forward.p, other_p)):
                q = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
                self._losses[k] -= float(np.sum(target * np.log(q) + (1 - target) * np.log(1 - q)))
            _learn_stack(target, other_p, forward.inputs, self._other, self._other_g2, self._other_rate)
        super()._learn(x, forward, y)
        self._other_p = None
        if self._losses[1] < self._losses[0]:
            self._stack, self._other = self._other, self._stack
            self._stack_g2, self._other_g2 = self._other_g2, self._stack_g2
            # the learner steps its leading stacker at _stack_race[2] (its own race is off here)
            self._stack_race[2], self._other_rate = self._other_rate, float(self._stack_race[2])
            self._losses.reverse()
            self.swaps += 1

    def reset_cluster_context(self, labels: Sequence[int]) -> None:
        super().reset_cluster_context(labels)
        self._other[list(labels)] = _STACK_START
        self._other_g2[list(labels)] = 0.0


def _raced_stackers(**flat: Any) -> MultiLabelClassifier:
    # The learner's own second stacker (issue 16, since this study) is off: the study's race replaces it.
    model = ScalingClassifier(**{"second_stack_learning_rate": 0.0, **flat})
    assert model.flat is not None
    model.flat.__class__ = RacedStackers
    model.flat.race(0.1)  # type: ignore[attr-defined]
    return model


def _raced(**flat: Any) -> MultiLabelClassifier:
    model = ScalingClassifier(**flat)
    assert model.flat is not None
    model.flat.heads = RacingHeads((16.0, 4.0), model.flat.adagrad_offset)  # type: ignore[assignment]
    return model


_BARE = {
    "learning_rate": 4.0,
    "neighbours_k": 0,
    "temporal_context": False,
    "stack_learning_rate": 0.0,
    "label_set_prior": 0.0,
    "drift_detectors": (),
    "at_least_one": False,
}
VARIANTS: dict[str, Callable[[], MultiLabelClassifier]] = {
    "default": lambda: make_learner("partitioned"),
    "heads at step 4": lambda: make_learner("partitioned", learning_rate=4.0),
    "heads raced, 16 vs 4": _raced,
    "stacker from the heads": _stacked_from_heads,
    "stacker from the heads, step 4": lambda: _stacked_from_heads(learning_rate=4.0),
    "heads alone at step 4, no decoding": lambda: _stacked_from_heads(
        learning_rate=4.0, stack_learning_rate=0.0, label_set_prior=0.0
    ),
    "stacker step 0.1": lambda: make_learner("partitioned", stack_learning_rate=0.1),
    "stackers raced, 0.5 vs 0.1": _raced_stackers,
    "bare heads at step 4": lambda: make_learner("flat", **_BARE),
    "bare heads at step 4 + decoding": lambda: make_learner("flat", **{**_BARE, "label_set_prior": 0.3}),
    "bare heads at step 4 + stacker": lambda: make_learner("flat", **{**_BARE, "stack_learning_rate": 0.5}),
    "adagrad-ovr": lambda: make_learner("adagrad-ovr"),
}


def run_stream(instances: Sequence[tuple[Any, list[Hashable]]]) -> dict[str, dict[str, Any]]:
    """Every variant over the stream, one after the other in this process."""
    truth = [frozenset(labels) for _, labels in instances]
    for factory in VARIANTS.values():  # compiled kernels are compiled (or loaded) before any timing
        warm = factory()
        for x, labels in instances[:20]:
            warm.predict_one(x)
            warm.learn_one(x, labels)
    out: dict[str, dict[str, Any]] = {}
    for name, factory in VARIANTS.items():
        model = factory()
        predicted = []
        start = time.process_time()
        for x, labels in instances:
            predicted.append(frozenset(model.predict_one(x)))
            model.learn_one(x, labels)
        cpu = time.process_time() - start
        s, f = scores(predicted, truth)
        row: dict[str, Any] = {"S": s, "F": f, "cpu": cpu}
        flat = getattr(model, "flat", None)
        if isinstance(flat, RacedStackers):
            row["stackers"] = (float(flat._stack_race[2]), flat.swaps)
        if isinstance(getattr(flat, "heads", None), RacingHeads):
            heads = flat.heads  # type: ignore[union-attr]
            row["race"] = (heads.decided_at, heads.sets[heads.lead].learning_rate, len(heads.sets))
        out[name] = row
        print(f"  {name}: S {s:.4f} μF1 {f:.4f} cpu {cpu:.1f}s {row.get('race', '')}", file=sys.stderr)
    return out


def build_report(results: dict[str, dict[str, dict[str, Any]]], command: str) -> str:
    lines = report_header(
        "## Heads study: step size per stream, and plainer uses of the heads (issue 16)",
        command,
        "- Variants: the docstring of benchmarks/accuracy/heads_study.py. Cells: S / μF1, and the variant's CPU time in the model calls over the default's in the same "
        "process. `ok` = S and μF1 both >= max(default - 0.005, adagrad-ovr) (the bar of issue 16).",
    )
    streams = list(results)
    lines += ["| variant | " + " | ".join(streams) + " | streams ok |", "|---|" + "---|" * (len(streams) + 1)]
    for name in VARIANTS:
        cells, passes = [], 0
        for stream in streams:
            rows = results[stream]
            row = rows[name]
            ok = name not in ("default", "adagrad-ovr") and _meets(row, rows["default"], rows["adagrad-ovr"])
            passes += ok
            cost = row["cpu"] / rows["default"]["cpu"]
            cells.append(f"{row['S']:.4f} / {row['F']:.4f}, {cost:.2f}x" + (" **ok**" if ok else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {passes}/{len(streams)} |")
    lines += [
        "",
        "The race's outcome per stream (documents until the bound separated the sets; the step kept):",
        "",
    ]
    for stream in streams:
        decided, rate, left = results[stream]["heads raced, 16 vs 4"]["race"]
        where = f"decided after {decided} documents" if decided else "never decided (both sets kept)"
        lines.append(f"- {stream}: {where}, step {rate:g} {'leads' if left > 1 else 'kept'}")
    lines += ["", "The stackers' race per stream (the step leading at the end; changes of leader):", ""]
    for stream in streams:
        rate, swaps = results[stream]["stackers raced, 0.5 vs 0.1"]["stackers"]
        lines.append(f"- {stream}: step {rate:g} leads, {swaps} changes")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", nargs="+", default=list(DEFAULT_STREAMS), choices=DEFAULT_STREAMS)
    parser.add_argument("--datasets-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--output", type=Path, default=HERE / "HEADS_STUDY.md")
    args = parser.parse_args(argv)
    loader = _ablation()
    results = {}
    for stream in args.streams:
        print(stream, file=sys.stderr)
        results[stream] = run_stream(loader.load_stream(stream, args.datasets_dir, None))
    command = "python benchmarks/accuracy/heads_study.py" + ("" if argv is None else " " + " ".join(argv))
    if argv is None and sys.argv[1:]:
        command += " " + " ".join(sys.argv[1:])
    args.output.write_text(build_report(results, command))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
