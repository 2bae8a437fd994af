#!/usr/bin/env python
"""Can the decision layer reach the AdaGrad rival's micro-F1 without losing subset accuracy? (issue 16)

Issue 16 asks, on every stream, for the default learner's subset accuracy (S) and micro-F1 (μF1) to be at
least today's (within 0.005) and at least those of ``adagrad-ovr`` (numpy AdaGrad one-vs-rest, step 4, one
pooled threshold). Today the rival has the higher μF1 on emotions, slashdot, enron, tmc2007_500 and
bibtex. This study runs, prequentially in one pass per stream, the default learner, the default with its
heads at step 4 (``learning_rate=4``: the rival's step) and the rival, records every prediction, and then
replays the default's decision experts (follow the leader under micro-F1, the rule of
operators/learners/decision_experts.py: the first of equals leads, a challenger must be strictly better)
with one more candidate each:

* ``+rival``: the rival's own decision (a "plain heads" expert: heads at step 4 with a pooled cut);
* ``+average``: the default's and the rival's probabilities averaged in log-odds, cut at the pooled
  micro-F1 threshold learned online (``AdaptiveThresholds``) on the average;
* ``+intersection``: the labels both the default and the rival decide;

each also "S-guarded": the leader changes only to an expert with at least the leader's exact matches.
And ``at step 4, +average``: the default at step 4 with its experts and the average of its stack with
its own heads (which are then the rival's: no second set of heads needed).

Those candidates need a second set of heads at step 4 inside the learner (the rival's cost). The
candidates below are computed inside the default learner, from its scaled features and its own arrays
(``*`` in their names: the learner's forced label added when the cut leaves none, as the learner forces one):

* ``+heads' cut*``: the default's own heads (step 16) alone, their probabilities cut at a pooled micro-F1
  threshold (``AdaptiveThresholds``, the rival's cut): no second set of heads, the cut's update only;
* ``+step-4 heads' cut*``: a second head set at step 4 learning beside the default's on the same scaled
  features (AdaGrad's accumulators count squared feature values, so it could share them), cut the same
  way: the rival inside the learner;
* ``+average with step-4 heads*``: the default's stacked probabilities and that head set's averaged in
  log-odds, cut the same way.

For these the table says the CPU time of the candidate's extra work over the default's own model calls in
the same process (``cost``: (default + extra) / default; the extra step-4 heads are timed with their
products, sigmoid, cut and step, as they would run inside the learner). The table marks each stream against the issue's bar (``ok`` when S and μF1 are both at
least max(today - 0.005, rival)).

    .venv/bin/python benchmarks/accuracy/decision_study.py                 # 9 ARFF streams + Reuters
    .venv/bin/python benchmarks/accuracy/decision_study.py --streams emotions yeast --output /tmp/study.md
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # BLAS threads slow the small products down

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Hashable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/, for the module below

from benchmark_modules import load_benchmark  # noqa: E402

DEFAULT_STREAMS = (
    "emotions",
    "yeast",
    "scene",
    "medical",
    "slashdot",
    "enron",
    "tmc2007_500",
    "20ng",
    "bibtex",
    "reuters",
)
TOLERANCE = 0.005  # issue 16: "at least today's (within 0.005)"
_TIE = 1e-12  # as DecisionExperts: a challenger must be better than the leader by more than rounding


def _ablation() -> ModuleType:
    """The ablation benchmark's stream loader (same streams, same featurization)."""
    return load_benchmark("ablation")


@dataclass
class Record:
    """What one pass over a stream leaves: per document, every candidate's label set and the truth."""

    truth: list[frozenset] = field(default_factory=list)
    sets: dict[str, list[frozenset]] = field(default_factory=dict)
    experts: dict[str, list[list[frozenset]]] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)  # CPU ratio per inner candidate

    def add(self, name: str, labels: frozenset) -> None:
        self.sets.setdefault(name, []).append(labels)


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def run_stream(instances: Sequence[tuple[Any, list[Hashable]]]) -> Record:
    """One prequential pass of the default, the default at step 4 and the rival, side by side."""
    from labelflow.operators.learners.registry import make_learner
    from labelflow.operators.learners.thresholds import AdaptiveThresholds

    default = make_learner("partitioned")
    inner = InnerCandidates()
    step4 = make_learner("partitioned", learning_rate=4.0)
    rival = make_learner("adagrad-ovr")
    average_cut, average_cut4 = AdaptiveThresholds(), AdaptiveThresholds()
    record = Record()
    last: frozenset = frozenset()
    majority: frozenset = frozenset()
    counts: dict[frozenset, int] = {}
    base: list[list[frozenset]] = []
    base4: list[list[frozenset]] = []
    extra: dict[str, list[frozenset]] = {
        "+rival": [],
        "+average": [],
        "+intersection": [],
        **{name: [] for name in INNER_CANDIDATES},
    }
    extra4: list[frozenset] = []
    for x, labels in instances:
        truth = frozenset(labels)
        start = time.process_time()
        published, scores = default.predict_with_scores(x)  # type: ignore[attr-defined]
        inner.default_cpu += time.process_time() - start
        inner.predict(default, extra)
        own, _ = default.model.predict_with_scores(x)  # type: ignore[attr-defined]  # the learner's decision
        published4, scores4 = step4.predict_with_scores(x)  # type: ignore[attr-defined]
        own4, _ = step4.model.predict_with_scores(x)  # type: ignore[attr-defined]
        rival_set, rival_scores = rival.predict_with_scores(x)  # type: ignore[attr-defined]
        names = list(scores)  # both learners index labels in order of first appearance
        p = np.array(list(scores.values()), dtype=np.float32)
        q = np.array([rival_scores[name] for name in names], dtype=np.float32)
        mixed = (1.0 / (1.0 + np.exp(-(_log_odds(p) + _log_odds(q)) / 2))).astype(np.float32)
        cut = average_cut.values(len(names))
        average = frozenset(names[i] for i in np.flatnonzero(mixed > cut))
        half = frozenset(name for name, s in scores.items() if s >= 0.5)
        base.append([frozenset(own), half, last, majority])
        # At step 4 the default's heads are the rival's (same scaling, same steps): averaging its stack
        # with them needs no second set of heads.
        p4 = np.array([scores4[name] for name in names], dtype=np.float32)
        mixed4 = (1.0 / (1.0 + np.exp(-(_log_odds(p4) + _log_odds(q)) / 2))).astype(np.float32)
        cut4 = average_cut4.values(len(names))
        half4 = frozenset(name for name, s in scores4.items() if s >= 0.5)
        base4.append([frozenset(own4), half4, last, majority])
        extra4.append(frozenset(names[i] for i in np.flatnonzero(mixed4 > cut4)))
        extra["+rival"].append(frozenset(rival_set))
        extra["+average"].append(average)
        extra["+intersection"].append(frozenset(own) & frozenset(rival_set))
        record.truth.append(truth)
        record.add("default", frozenset(published))
        record.add("default, heads at step 4", frozenset(published4))
        record.add("adagrad-ovr", frozenset(rival_set))
        if names:
            truth_mask = np.array([name in truth for name in names], dtype=np.float32)
            average_cut.update(mixed, truth_mask)
            average_cut4.update(mixed4, truth_mask)
        start = time.process_time()
        default.learn_one(x, labels)
        inner.default_cpu += time.process_time() - start
        inner.learn(default, truth)
        for model in (step4, rival):
            model.learn_one(x, labels)
        last = truth
        counts[truth] = counts.get(truth, 0) + 1
        if counts[truth] > counts.get(majority, 0):
            majority = truth
    for name, candidate in extra.items():
        record.experts[name] = [[*b, c] for b, c in zip(base, candidate, strict=True)]
    record.experts["at step 4, +average"] = [[*b, c] for b, c in zip(base4, extra4, strict=True)]
    record.cost = inner.costs()
    return record


#: Candidates computed inside the default learner (see the module), and their cut's source.
INNER_CANDIDATES = ("+heads' cut*", "+step-4 heads' cut*", "+average with step-4 heads*")


class InnerCandidates:
    """The candidates of :data:`INNER_CANDIDATES` for the default learner's current document, and the CPU
    time of their extra work beside the default's own model calls (``default_cpu``, summed by the caller)."""

    def __init__(self) -> None:
        from labelflow.operators.learners.linear import LinearHeads
        from labelflow.operators.learners.thresholds import AdaptiveThresholds

        self.heads4 = LinearHeads(learning_rate=4.0)  # adagrad_offset 1, as the default's and the rival's
        self.cuts = {name: AdaptiveThresholds() for name in INNER_CANDIDATES}
        self.default_cpu = 0.0
        self.cpu = dict.fromkeys(INNER_CANDIDATES, 0.0)
        self._seen: tuple[Any, int, dict[str, np.ndarray]] | None = None

    def predict(self, default: Any, out: dict[str, list[frozenset]]) -> None:
        """Append each candidate's label set for the document ``default`` has just predicted."""
        flat = default.flat
        forward = flat._cached[1]  # what the flat learner computed for this document
        n, names = forward.n_labels, flat.label_index.names_view
        force = bool(n) and flat._force_one()
        start = time.process_time()
        sources = {INNER_CANDIDATES[0]: forward.head_p}
        mid = time.process_time()
        heads = self.heads4
        q = (
            1.0 / (1.0 + np.exp(-np.clip(heads.products(forward.scaled, n) + heads.weights[-1, :n], -30, 30)))
            if n and heads.dim is not None
            else np.full(n, 0.5, dtype=np.float32)
        ).astype(np.float32)
        sources[INNER_CANDIDATES[1]] = q
        end = time.process_time()
        sources[INNER_CANDIDATES[2]] = (
            1.0 / (1.0 + np.exp(-(_log_odds(forward.p) + _log_odds(q)) / 2))
        ).astype(np.float32)
        spent = {INNER_CANDIDATES[0]: mid - start, INNER_CANDIDATES[1]: end - mid}
        spent[INNER_CANDIDATES[2]] = spent[INNER_CANDIDATES[1]] + time.process_time() - end
        for name, p in sources.items():
            start = time.process_time()
            cut = self.cuts[name].values(n)
            chosen = np.flatnonzero(p > cut).tolist()
            if force and not chosen:
                chosen = [int(np.argmax(_log_odds(p) - _log_odds(cut)))]
            out[name].append(frozenset([names[i] for i in chosen]))
            self.cpu[name] += spent[name] + time.process_time() - start
        self._seen = (forward.scaled, n, sources)

    def learn(self, default: Any, truth: frozenset) -> None:
        """Learn the document last predicted, with true labels ``truth`` (after ``default`` learned it)."""
        assert self._seen is not None
        scaled, n, sources = self._seen
        flat = default.flat
        ids = [i for i in map(flat.label_index.get, truth) if i is not None]
        start = time.process_time()
        target = np.zeros(len(flat.label_index), dtype=np.float32)
        target[ids] = 1.0
        q = sources[INNER_CANDIDATES[1]]
        gradient = target - np.concatenate([q, np.full(target.shape[0] - n, 0.5, dtype=np.float32)])
        self.heads4.learn_gradient(scaled, gradient)
        heads_cpu = time.process_time() - start
        self.cpu[INNER_CANDIDATES[1]] += heads_cpu
        self.cpu[INNER_CANDIDATES[2]] += heads_cpu
        if n:
            for name, p in sources.items():
                start = time.process_time()
                self.cuts[name].update(p, target[:n])
                self.cpu[name] += time.process_time() - start

    def costs(self) -> dict[str, float]:
        """Per candidate, (default + its extra work) / default, in CPU time."""
        return {name: 1.0 + cpu / self.default_cpu for name, cpu in self.cpu.items()}


def follow_the_leader(
    candidates: list[list[frozenset]], truth: list[frozenset], *, guarded: bool = False
) -> tuple[list[frozenset], int]:
    """DecisionExperts' rule under micro-F1 over the given candidates (the first is the learner's own).

    ``guarded``: the leader changes only to an expert with at least the leader's exact matches so far
    (the μF1 leader among those not worse in subset accuracy).
    """
    n = len(candidates[0])
    counts = np.zeros((n, 3))
    exact = np.zeros(n)
    leader, switches, published = 0, 0, []
    for sets, labels in zip(candidates, truth, strict=True):
        published.append(sets[leader])
        for e, c in enumerate(sets):
            hits = len(c & labels)
            counts[e] += (hits, len(c) - hits, len(labels) - hits)
            exact[e] += c == labels
        denominator = 2 * counts[:, 0] + counts[:, 1] + counts[:, 2]
        loss = 1.0 - np.where(denominator > 0, 2 * counts[:, 0] / np.maximum(denominator, 1e-12), 0.0)
        if guarded:
            loss = np.where(exact >= exact[leader], loss, np.inf)
        best = int(np.argmin(loss))
        if loss[best] < loss[leader] - _TIE:
            leader, switches = best, switches + 1
    return published, switches


def scores(predicted: Sequence[frozenset], truth: Sequence[frozenset]) -> tuple[float, float]:
    """(subset accuracy, micro-F1)."""
    exact = tp = fp = fn = 0
    for p, t in zip(predicted, truth, strict=True):
        hits = len(p & t)
        exact += p == t
        tp, fp, fn = tp + hits, fp + len(p) - hits, fn + len(t) - hits
    return exact / len(truth), (2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)


def evaluate(record: Record) -> dict[str, dict[str, float]]:
    out = {
        name: dict(zip(("S", "F"), scores(sets, record.truth), strict=True))
        for name, sets in record.sets.items()
    }
    for guarded in (False, True):
        for name, candidates in record.experts.items():
            published, switches = follow_the_leader(candidates, record.truth, guarded=guarded)
            s, f = scores(published, record.truth)
            key = f"experts {name}" + (", S-guarded" if guarded else "")
            out[key] = {"S": s, "F": f, "switches": switches}
            if name in record.cost:
                out[key]["cost"] = record.cost[name]
    return out


def _meets(row: dict[str, float], today: dict[str, float], rival: dict[str, float]) -> bool:
    return all(row[k] >= max(today[k] - TOLERANCE, rival[k]) for k in ("S", "F"))


def report_header(title: str, command: str, description: str) -> list[str]:
    """A study's title and its run description (command, machine, date, commit) as Markdown lines."""
    from labelflow.operators.evaluation.machine import describe_machine

    commit = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    return [
        title,
        "",
        f"- Command: `{command}`",
        f"- Machine: {describe_machine()}; load average {os.getloadavg()[0]:.1f} at the end (shared machine)",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Git commit: {commit}",
        description,
        "",
    ]


def build_report(results: dict[str, dict[str, dict[str, float]]], command: str) -> str:
    lines = report_header(
        "# Decision study: candidates beside the decision experts against the AdaGrad rival (issue 16)",
        command,
        "- Protocol: prequential, file order, every document predicted then learned; S = subset accuracy, "
        "μF1 = micro-F1. `ok` = S and μF1 both >= max(default - 0.005, adagrad-ovr) (the bar of issue 16). "
        "`experts +X`: the default's decision experts (follow the leader under micro-F1) replayed with "
        "candidate X added; sw = changes of leader. Cells: S / μF1.",
    )
    streams = list(results)
    lines += ["| variant | " + " | ".join(streams) + " | streams ok |", "|---|" + "---|" * (len(streams) + 1)]
    for name in next(iter(results.values())):
        cells, passes = [], 0
        for stream in streams:
            rows = results[stream]
            row = rows[name]
            ok = name != "adagrad-ovr" and _meets(row, rows["default"], rows["adagrad-ovr"])
            passes += ok
            switches = f" ({int(row['switches'])} sw)" if "switches" in row else ""
            if "cost" in row:
                switches += f", {row['cost']:.2f}x"
            cells.append(f"{row['S']:.4f} / {row['F']:.4f}{switches}{' **ok**' if ok else ''}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {passes}/{len(streams)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", nargs="+", default=list(DEFAULT_STREAMS))
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--output", type=Path, default=HERE / "DECISION_STUDY.md")
    args = parser.parse_args(argv)
    ablation = _ablation()
    results = {}
    for stream in args.streams:
        record = run_stream(ablation.load_stream(stream, args.datasets, None))
        results[stream] = evaluate(record)
        print(
            stream, {k: (round(v["S"], 4), round(v["F"], 4)) for k, v in results[stream].items()}, flush=True
        )
    command = "python benchmarks/accuracy/decision_study.py" + (
        "" if argv is None and sys.argv[1:] == [] else " " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    args.output.write_text(build_report(results, command) + _later_sections(args.output))
    return 0


def _later_sections(path: Path) -> str:
    """The file's sections after the generated table (``## `` headings: follow-up studies), kept on a rerun."""
    if not path.exists():
        return ""
    text = path.read_text()
    start = text.find("\n## ")
    return "" if start < 0 else text[start:]


if __name__ == "__main__":
    raise SystemExit(main())
