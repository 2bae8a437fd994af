"""Drift detectors on streams with known drifts: detection delay, missed drifts, false alarms, cost.

Sections of the report (written as Markdown to stdout, or to ``--out``):

1. Synthetic text streams (``labelflow.operators.datasets``), one scheduled drift each, at document
   ``POSITION`` of ``POSITION + HORIZON`` documents, over ``--seeds`` seeds, every kind of drift in the
   sudden, gradual (width 2,000) and recurring (period 1,500; every switch counts) variants. For each
   drift kind, each detector that can see it:

   - ``label_prior``: ``LabelPriorDriftDetector`` on the label sets; a detection must name an affected
     label (for a new label: the new label);
   - ``label_dependence``: ``LabelDependenceDriftDetector`` on the label-id sets, fed in batches of 32
     as the learner feeds it;
   - ``input``: ``InputDriftDetector`` on hashing features (2**18, unigrams) of the texts;
   - ``performance``: ``PerformanceDriftDetector`` on the 0/1 subset error (predicted label set !=
     true set) of an online linear model (``LinearHeads`` on the same hashing features, threshold 0.5,
     predict then learn);
   - ``label_structure``: ``LabelStructureDriftAdapter`` over the ``LabelClusterer``'s changes (splits
     and merges; ``new_label`` registrations are not detections); only ``severity="drift"`` events
     count, the changes of a partition still forming are warnings (the runtime does not count them
     either).

   Section 1b: the performance detector on Bernoulli error streams whose rate jumps.

   Delay = position of the first detection at or after the drift minus the drift position; a drift with
   no detection within ``HORIZON`` (recurring: within one period) is missed. Events before the drift
   are false alarms (counted in section 2's spirit, reported per stream).
2. False alarms on stationary streams, per 100,000 instances: the synthetic stream without drifts
   (label sets, hashing features, the learner's error, the clusterer), plus numeric streams (Bernoulli
   errors at several rates, Gaussian and Student-t vectors).
3. Cost per instance of each detector (CPU seconds of this process, median of ``--repeats`` runs), batch
   and one-by-one, and the generator's speed.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/drift/detectors.py [--seeds 20] [--variant-seeds 5]
        [--error-runs 50] [--stationary 1000000] [--stationary-text 500000] [--out FILE]

``--quick`` runs a small version (a minute) to check that the script works. The full run takes about
5 minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelflow.operators.datasets import DRIFT_KINDS, DriftEventConfig, SyntheticStream, SyntheticStreamConfig
from labelflow.operators.drift import (
    InputDriftDetector,
    LabelDependenceDriftDetector,
    LabelPriorDriftDetector,
    LabelStructureDriftAdapter,
    PerformanceDriftDetector,
)
from labelflow.operators.embedders.hashing import HashingFeaturizer
from labelflow.operators.evaluation.machine import cpu_model
from labelflow.operators.labels.clustering import LabelClusterer
from labelflow.operators.learners.linear import LinearHeads

POSITION = 3000
HORIZON = 3000
GRADUAL_WIDTH = 2000
RECURRING_PERIOD = 1500
BATCH = 256  # micro-batch size for the batch-capable detectors, as a worker would use
LABEL_BATCH = 32  # label sets per update_many call of the label dependence detector, as the learner feeds it

FEATURIZER = HashingFeaturizer(n_features=2**18, ngram_range=(1, 1))


# ---------------------------------------------------------------------- running detectors on a stream


@dataclass
class StreamRun:
    """Detections (positions) per detector on one stream, plus what the stream is."""

    n: int
    detections: dict[str, list[tuple[int, tuple[str, ...]]]] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)  # warning-severity events (not detections)


def run_detectors(docs, labels: list[str], which: Iterable[str]) -> StreamRun:
    which = set(which)
    run = StreamRun(n=len(docs))
    texts = [d.text for d in docs]
    features = FEATURIZER.embed_many(texts) if which & {"input", "performance"} else None

    if "label_prior" in which:
        detector = LabelPriorDriftDetector()
        found = []
        for d in docs:
            event = detector.update(d.labels, position=d.position)
            if event is not None:
                found.append((event.position, event.labels))
        run.detections["label_prior"] = found

    if "label_dependence" in which:
        index = {name: i for i, name in enumerate(labels)}
        detector = LabelDependenceDriftDetector()
        found = []
        for start in range(0, len(docs), LABEL_BATCH):
            chunk = docs[start : start + LABEL_BATCH]
            events = detector.update_many(
                [[index[label] for label in d.labels] for d in chunk],
                positions=[d.position for d in chunk],
                label_names=labels,
            )
            found += [(event.position, event.labels) for event in events]
        run.detections["label_dependence"] = found

    if "input" in which:
        detector = InputDriftDetector()
        found = []
        for start in range(0, len(features), BATCH):
            chunk = features[start : start + BATCH]
            for event in detector.update_many(chunk, positions=list(range(start, start + len(chunk)))):
                found.append((event.position, event.labels))
        run.detections["input"] = found

    if "performance" in which:
        errors = learner_errors(docs, features, labels)
        detector = PerformanceDriftDetector()
        found = [(e.position, e.labels) for e in detector.update_many(errors) if e.severity == "drift"]
        run.detections["performance"] = found

    if "label_structure" in which:
        index = {name: i for i, name in enumerate(labels)}
        clusterer = LabelClusterer()
        adapter = LabelStructureDriftAdapter(skip_actions=["new_label"])
        found = []
        warnings = 0
        for d in docs:
            clusterer.learn_one(index[label] for label in d.labels)
            for change in clusterer.drain_events():
                # The clusterer counts learned instances from 1: document d.position is instance d.position + 1.
                event = adapter.update(change, position=change.position - 1, label_names=labels)
                if event is None:
                    continue
                if event.severity == "drift":
                    found.append((event.position, event.labels))
                else:  # a change of the partition while it forms
                    warnings += 1
        run.detections["label_structure"] = found
        run.warnings["label_structure"] = warnings
    return run


def learner_errors(docs, features, labels: list[str]) -> np.ndarray:
    """0/1 subset error of an online linear model, predicted before learning each document."""
    index = {name: i for i, name in enumerate(labels)}
    heads = LinearHeads()
    errors = np.zeros(len(docs))
    for t, (d, x) in enumerate(zip(docs, features, strict=True)):
        y = np.zeros(len(index), dtype=np.float32)
        y[[index[label] for label in d.labels]] = 1.0
        p = heads.probabilities(x, n_labels=len(index))
        errors[t] = float(np.any((p >= 0.5) != (y == 1.0)))
        heads.learn(x, y, p)
    return errors


# ---------------------------------------------------------------------- section 1: known drifts


DETECTORS_FOR_KIND = {
    "label_prior": ("label_prior", "input", "performance", "label_dependence"),
    "label_correlation": ("label_dependence", "label_structure", "label_prior"),
    "new_label": ("label_prior", "label_dependence", "label_structure", "performance"),
    "vocabulary": ("input", "performance"),
}


def drift_config(kind: str, mode: str, seed: int) -> SyntheticStreamConfig:
    extra = {"gradual": {"width": GRADUAL_WIDTH}, "recurring": {"period": RECURRING_PERIOD}}.get(mode, {})
    n = (
        POSITION
        + HORIZON
        + (GRADUAL_WIDTH if mode == "gradual" else 0)
        + (3 * RECURRING_PERIOD if mode == "recurring" else 0)
    )
    return SyntheticStreamConfig(
        seed=seed,
        n_documents=n,
        drift_events=[DriftEventConfig(kind=kind, position=POSITION, mode=mode, **extra)],
    )


@dataclass
class DelayStats:
    delays: list[int] = field(default_factory=list)
    missed: int = 0
    false_alarms: int = 0
    pre_drift_instances: int = 0

    def row(self) -> list[str]:
        total = len(self.delays) + self.missed
        median = f"{statistics.median(self.delays):.0f}" if self.delays else "-"
        q90 = f"{np.quantile(self.delays, 0.9):.0f}" if self.delays else "-"
        return [f"{len(self.delays)}/{total}", median, q90]


def evaluate_known_drifts(seeds: dict[str, int]) -> dict[tuple[str, str, str], DelayStats]:
    results: dict[tuple[str, str, str], DelayStats] = {}
    for mode, n_seeds in seeds.items():
        for kind in DRIFT_KINDS:
            detectors = DETECTORS_FOR_KIND[kind]
            for seed in range(n_seeds):
                stream = SyntheticStream(drift_config(kind, mode, seed))
                docs = list(stream)
                run = run_detectors(docs, stream.labels, detectors)
                switches = [d for d in stream.drift_events]
                affected = set(switches[0].details["labels"])
                for name in detectors:
                    stats = results.setdefault((mode, kind, name), DelayStats())
                    found = run.detections[name]
                    stats.false_alarms += sum(1 for pos, _ in found if pos < POSITION)
                    stats.pre_drift_instances += POSITION
                    for i, switch in enumerate(switches):
                        end = switches[i + 1].position if i + 1 < len(switches) else switch.position + HORIZON
                        end = min(end, len(docs))
                        hits = [
                            pos
                            for pos, labels in found
                            if switch.position <= pos < end
                            and (name != "label_prior" or not labels or affected & set(labels))
                        ]
                        if hits:
                            stats.delays.append(hits[0] - switch.position)
                        else:
                            stats.missed += 1
    return results


ERROR_JUMPS = ((0.05, 0.15), (0.1, 0.2), (0.1, 0.3), (0.2, 0.4), (0.3, 0.5))


def evaluate_error_jumps(runs: int, seed: int = 2000) -> list[list[str]]:
    """Sudden rises of a Bernoulli error rate at POSITION: the performance detector's own benchmark."""
    rng = np.random.default_rng(seed)
    rows = []
    for before, after in ERROR_JUMPS:
        drift, warning = DelayStats(), DelayStats()
        for _ in range(runs):
            errors = np.concatenate([rng.random(POSITION) < before, rng.random(HORIZON) < after]).astype(
                float
            )
            events = PerformanceDriftDetector().update_many(errors)
            for stats, severity in ((drift, "drift"), (warning, "warning")):
                hits = [e.position for e in events if e.severity == severity]
                stats.false_alarms += sum(1 for p in hits if p < POSITION)
                stats.pre_drift_instances += POSITION
                late = [p for p in hits if p >= POSITION]
                if late:
                    stats.delays.append(late[0] - POSITION)
                else:
                    stats.missed += 1
        rows.append(
            [
                f"{before} -> {after}",
                *drift.row(),
                warning.row()[1],
                f"{1e5 * drift.false_alarms / drift.pre_drift_instances:.1f}",
            ]
        )
    return rows


# ---------------------------------------------------------------------- section 2: stationary streams


def stationary_false_alarms(
    n_instances: int, n_documents: int, seed: int = 1000
) -> tuple[list[tuple[str, str, int, int]], dict[str, int]]:
    """Rows (detector, stream, false alarms, instances), and the warnings per detector on the text streams."""
    rows = []
    rng = np.random.default_rng(seed)
    # Synthetic text stream without drift, in pieces of 100,000 documents with their own seeds.
    piece = min(100_000, n_documents)
    text_counts = {
        name: 0 for name in ("label_prior", "label_dependence", "input", "performance", "label_structure")
    }
    text_warnings: dict[str, int] = {}
    text_total = 0
    for k in range(max(1, n_documents // piece)):
        stream = SyntheticStream(SyntheticStreamConfig(seed=seed + k, n_documents=piece, drift_events=[]))
        docs = list(stream)
        run = run_detectors(docs, stream.labels, text_counts)
        for name in text_counts:
            # The learner's error falls while it learns; the first 2,000 documents (learning from scratch)
            # are not a stationary error stream and are not counted for the performance detector.
            text_counts[name] += sum(
                1 for pos, _ in run.detections[name] if name != "performance" or pos >= 2000
            )
        for name, count in run.warnings.items():
            text_warnings[name] = text_warnings.get(name, 0) + count
        text_total += piece
    for name, count in text_counts.items():
        rows.append(
            (name, f"synthetic text, no drift ({text_total // 100_000} x 100k docs)", count, text_total)
        )

    for rate in (0.02, 0.1, 0.3, 0.5):
        detector = PerformanceDriftDetector()
        events = detector.update_many((rng.random(n_instances) < rate).astype(float))
        rows.append(
            (
                "performance",
                f"Bernoulli errors, rate {rate}",
                sum(e.severity == "drift" for e in events),
                n_instances,
            )
        )
    for label, sample in (
        ("Gaussian, 64 dims", lambda k: rng.normal(size=(k, 64))),
        ("Student-t (3 dof), 32 dims", lambda k: rng.standard_t(3, size=(k, 32))),
    ):
        detector = InputDriftDetector()
        count = 0
        for _ in range(n_instances // 10_000):
            x = sample(10_000).astype(np.float32)
            for start in range(0, len(x), BATCH):
                count += len(detector.update_many(x[start : start + BATCH]))
        rows.append(("input", label, count, (n_instances // 10_000) * 10_000))
    return rows, text_warnings


# ---------------------------------------------------------------------- section 3: cost


def cpu_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def costs(repeats: int) -> list[tuple[str, str, float]]:
    rng = np.random.default_rng(7)
    stream = SyntheticStream(SyntheticStreamConfig(seed=3, n_documents=20_000, drift_events=[]))
    docs = list(stream)
    label_sets = [d.labels for d in docs]
    sparse = FEATURIZER.embed_many([d.text for d in docs])
    dense = rng.normal(size=(20_000, 384)).astype(np.float32)
    errors = (rng.random(200_000) < 0.1).astype(float)
    rows = []

    def batches(detector, xs):
        for start in range(0, len(xs), BATCH):
            detector.update_many(xs[start : start + BATCH])

    def singles(detector, xs):
        for x in xs:
            detector.update(x)

    rows.append(
        (
            "PerformanceDriftDetector",
            "batches of 256",
            cpu_time(lambda: batches(PerformanceDriftDetector(), errors), repeats) / len(errors),
        )
    )
    rows.append(
        (
            "PerformanceDriftDetector",
            "one by one",
            cpu_time(lambda: singles(PerformanceDriftDetector(), errors[:50_000].tolist()), repeats) / 50_000,
        )
    )
    rows.append(
        (
            "LabelPriorDriftDetector",
            "one by one",
            cpu_time(lambda: singles(LabelPriorDriftDetector(), label_sets), repeats) / len(label_sets),
        )
    )
    index = {name: i for i, name in enumerate(stream.labels)}
    label_ids = [[index[label] for label in y] for y in label_sets]
    # A wide label space: 4,000 labels with Zipf frequencies, 1-7 per set; the 64 most frequent are tracked.
    weights = 1.0 / np.arange(1, 4001)
    wide = [
        rng.choice(4000, size=rng.integers(1, 8), replace=False, p=weights / weights.sum()).tolist()
        for _ in range(20_000)
    ]

    def label_batches(detector, xs):
        for start in range(0, len(xs), LABEL_BATCH):
            detector.update_many(xs[start : start + LABEL_BATCH])

    rows.append(
        (
            "LabelDependenceDriftDetector",
            f"label ids, batches of {LABEL_BATCH}",
            cpu_time(lambda: label_batches(LabelDependenceDriftDetector(), label_ids), repeats)
            / len(label_ids),
        )
    )
    rows.append(
        (
            "LabelDependenceDriftDetector",
            "label ids, one by one",
            cpu_time(lambda: singles(LabelDependenceDriftDetector(), label_ids), repeats) / len(label_ids),
        )
    )
    rows.append(
        (
            "LabelDependenceDriftDetector",
            f"4,000 labels (Zipf), batches of {LABEL_BATCH}",
            cpu_time(lambda: label_batches(LabelDependenceDriftDetector(), wide), repeats) / len(wide),
        )
    )
    rows.append(
        (
            "InputDriftDetector",
            "hashing features, batches of 256",
            cpu_time(lambda: batches(InputDriftDetector(), sparse), repeats) / len(sparse),
        )
    )
    rows.append(
        (
            "InputDriftDetector",
            "hashing features, one by one",
            cpu_time(lambda: singles(InputDriftDetector(), sparse[:5000]), repeats) / 5000,
        )
    )
    rows.append(
        (
            "InputDriftDetector",
            "dense 384-dim, batches of 256",
            cpu_time(lambda: batches(InputDriftDetector(), dense), repeats) / len(dense),
        )
    )
    rows.append(
        (
            "InputDriftDetector",
            "dense 384-dim, one by one",
            cpu_time(lambda: singles(InputDriftDetector(), list(dense[:5000])), repeats) / 5000,
        )
    )
    return rows


def generator_speed(repeats: int) -> tuple[float, float]:
    """Documents per second (CPU and wall clock, medians) generating the demo config at 100,000 documents."""
    config = SyntheticStreamConfig(n_documents=100_000)
    cpu, wall = [], []
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for _ in SyntheticStream(config):
            pass
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return config.n_documents / statistics.median(cpu), config.n_documents / statistics.median(wall)


# ---------------------------------------------------------------------- report


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, default=20, help="streams per drift kind, sudden drifts (default 20)"
    )
    parser.add_argument(
        "--variant-seeds",
        type=int,
        default=5,
        help="streams per drift kind, gradual and recurring (default 5)",
    )
    parser.add_argument("--error-runs", type=int, default=50, help="runs per error-rate jump (default 50)")
    parser.add_argument(
        "--stationary",
        type=int,
        default=1_000_000,
        help="instances per numeric stationary stream (default 1,000,000)",
    )
    parser.add_argument(
        "--stationary-text",
        type=int,
        default=500_000,
        help="documents of stationary synthetic text (default 500,000)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each cost measurement (median)")
    parser.add_argument("--modes", default="sudden,gradual,recurring", help="drift modes (default all three)")
    parser.add_argument(
        "--quick", action="store_true", help="a small run to check the script (about a minute)"
    )
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: stdout)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.variant_seeds, args.error_runs = 2, 1, 5
        args.stationary, args.stationary_text, args.repeats = 100_000, 100_000, 1
    modes = tuple(args.modes.split(","))
    seeds = {mode: args.seeds if mode == "sudden" else args.variant_seeds for mode in modes}
    command = "OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/drift/detectors.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )

    started = time.perf_counter()
    known = evaluate_known_drifts(seeds)
    jumps = evaluate_error_jumps(args.error_runs)
    stationary, stationary_warnings = stationary_false_alarms(args.stationary, args.stationary_text)
    cost_rows = costs(args.repeats)
    generator_cpu, generator_wall = generator_speed(args.repeats)
    elapsed = time.perf_counter() - started

    out = [
        "# Drift detectors: delay, missed drifts, false alarms, cost",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores ({cpu_model()}), "
        f"Python {platform.python_version()}, numpy {np.__version__}; shared with other jobs (load average "
        f"{os.getloadavg()[0]:.1f} at the end)  ",
        f"Date: {datetime.date.today().isoformat()}; run time {elapsed / 60:.1f} min  ",
        "Detectors at their default parameters. Script and definitions: `benchmarks/drift/detectors.py`.",
        "",
        "## 1. Synthetic text streams with one scheduled drift",
        "",
        f"Drift at document {POSITION}; detection window {HORIZON} documents (recurring: one period of "
        f"{RECURRING_PERIOD}, every switch is a drift); gradual drifts ramp over {GRADUAL_WIDTH} documents and "
        f"the delay counts from the ramp's start. Seeds per row: {seeds}. Detected = drifts detected / "
        "drifts; delays in documents (median, 90th percentile over detected drifts). False alarms = "
        "detections before the drift, per 100,000 pre-drift documents (few documents: a coarse figure; "
        "section 2 has the real false-alarm rates).",
        "",
    ]
    rows = []
    for (mode, kind, name), stats in known.items():
        fa = 1e5 * stats.false_alarms / stats.pre_drift_instances
        rows.append([mode, kind, name, *stats.row(), f"{fa:.1f}"])
    out.append(
        table(
            [
                "mode",
                "drift kind",
                "detector",
                "detected",
                "median delay",
                "p90 delay",
                "false alarms / 100k",
            ],
            rows,
        )
    )
    out += [
        "",
        "Reading the table: each kind of drift has a detector meant for it: `label_prior` for prior shifts and "
        "new labels, `input` for vocabulary shifts, `label_dependence` (`LabelDependenceDriftDetector`, "
        "tests of the label pairs' co-occurrence on the label sets) for correlation changes. Rows of other "
        "detectors show what else notices the drift. `label_dependence` reports a pair only when both of its "
        "conditional rates, `P(b | a)` and `P(a | b)`, changed: a prior shift (a label's documents become "
        "more or less common, in the same company) moves at most one of them, which is why it stays silent "
        "on the `label_prior` and `new_label` drifts. `label_structure` rows count the label clusterer's "
        "changes of a settled partition "
        '(`severity="drift"`); its changes while the partition forms (labels younger than 3,000 documents '
        "or rarer than 30 in its memory) are warnings, counted neither as detections nor as false alarms. "
        "The clusterer follows a correlation change once its faded counts have moved, a thousand documents "
        "or more later; `label_dependence` is the detector. `performance` rows: the online "
        "linear model recovers from these drifts within about 200 documents (its subset error jumps from "
        "about 0.28 to 0.45-0.5 for about 100 documents), below what the performance detector confirms at its "
        "default confidence; it is meant for sustained quality loss (section 1b).",
    ]
    out += [
        "",
        "### 1b. Performance drift: sudden rises of an error rate",
        "",
        f"Bernoulli errors, the rate jumps at {POSITION}; {args.error_runs} runs per row; delays of the drift "
        "event and of the warning before it.",
        "",
        table(
            [
                "error rate",
                "detected",
                "median delay",
                "p90 delay",
                "median warning delay",
                "false alarms / 100k",
            ],
            jumps,
        ),
        "",
        "## 2. False alarms on stationary streams",
        "",
        "Synthetic text: the generator without drifts; `performance` watches the subset error of the online "
        "linear model after its first 2,000 documents; `label_structure` counts the clusterer's splits and "
        "merges of a settled partition (drift severity); the "
        f"{stationary_warnings.get('label_structure', 0)} changes it made while its partitions formed were "
        "warnings, not counted.",
        "",
    ]
    out.append(
        table(
            ["detector", "stream", "false alarms", "instances", "per 100k"],
            [
                [name, what, str(count), f"{n:,}", f"{1e5 * count / n:.2f}"]
                for name, what, count, n in stationary
            ],
        )
    )
    out += [
        "",
        "## 3. Cost",
        "",
        "CPU time of this process per instance (median of repeats), so other jobs on the machine inflate it "
        "less than wall-clock time would. BLAS threads: set `OPENBLAS_NUM_THREADS=1` (see the command); "
        "multi-threaded BLAS on small matrices is many times slower on a busy machine.",
        "",
    ]
    out.append(
        table(
            ["detector", "how", "microseconds / instance"],
            [[a, b, f"{c * 1e6:.1f}"] for a, b, c in cost_rows],
        )
    )
    out += [
        "",
        f"Synthetic stream generator (demo config, 100,000 documents): {generator_cpu:,.0f} documents/s of CPU time, "
        f"{generator_wall:,.0f} documents/s wall clock (median of {args.repeats}).",
        "",
    ]
    report = "\n".join(out)
    if args.out:
        args.out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
