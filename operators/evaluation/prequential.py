"""Prequential (test-then-train) evaluation of a multi-label classifier over a whole stream.

Every labelled instance is first predicted (scores and the decided label set), then learned; every
instance is scored; there are no resets and no warm-up. Unlabelled instances are predicted and
counted but neither scored nor learned.

In the same pass the evaluator runs the two trivial baselines of the protocol, "no-change" (the
previous instance's label set) and "majority label set" (the most frequent set so far), and records
windowed learning curves and, when the model reports them through ``drain_events()``, the positions of
its label-partition changes.

Timing: "model" time is the wall time spent inside the model's predict and learn calls only;
"features" time is the featurizer (text to vectors); "end-to-end" time is everything, reading and
metrics included. The model rate is reported both over the whole run and as the median of the rates
measured between two curve points (robust to a slow start or a pause of the machine).

The label space is the union of the labels seen so far. For a stream that declares its labels up front
(an ARFF header, exposed as ``stream.header.label_names``) all declared labels are registered from the
start, so that macro averages run over the same labels as in the published results (river's
``MacroAverage`` with every label in ``y_true``).
"""

from __future__ import annotations

import heapq
import itertools
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

import numpy as np

from labelflow.operators.base import Features, MultiLabelClassifier
from labelflow.operators.evaluation.metrics import MultiLabelMetrics, WindowedMultiLabelMetrics
from labelflow.operators.io.instances import Instance
from labelflow.operators.learners.baselines import MajorityLabelSetClassifier, NoChangeClassifier

#: Names of the trivial baselines tracked in every run.
BASELINES = ("no-change", "majority-labelset")

#: The metrics recorded at each curve point (windowed and cumulative).
CURVE_METRICS = ("subset_accuracy", "hamming_loss", "micro_f1", "macro_f1", "example_f1")

Featurizer = Callable[[Sequence[str]], Sequence[Features]]


@dataclass
class PrequentialResult:
    """Everything one prequential run measured; ``to_json()`` gives a plain dict for JSON."""

    dataset: str
    learner: str
    n_instances: int
    n_labels: int
    n_unlabelled: int
    seconds: float
    model_seconds: float
    feature_seconds: float
    metrics: dict[str, float | int]
    baselines: dict[str, dict[str, float | int]]
    segments: dict[str, dict[str, dict[str, float | int]]]
    curves: list[dict[str, Any]]
    partition: dict[str, Any]
    chunk_model_rates: list[float]
    window: int
    record_every: int
    p_at_k: tuple[int, ...]
    peak_rss_mb: float
    drift_events: list[dict[str, Any]] = field(default_factory=list)
    model_cpu_seconds: float = 0.0
    chunk_model_cpu_rates: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def instances_per_second(self) -> float:
        """End-to-end rate: instances over all wall time (reading, features, model, metrics)."""
        return self.n_instances / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_instances_per_second(self) -> float:
        """Instances over the time spent in the model's predict and learn calls."""
        return self.n_instances / self.model_seconds if self.model_seconds > 0 else 0.0

    @property
    def model_instances_per_second_median(self) -> float:
        """Median over curve intervals of (instances / model seconds) in that interval."""
        return (
            statistics.median(self.chunk_model_rates)
            if self.chunk_model_rates
            else self.model_instances_per_second
        )

    @property
    def model_cpu_instances_per_second_median(self) -> float:
        """Median over curve intervals of (instances / CPU seconds of this process in the model calls)."""
        if self.chunk_model_cpu_rates:
            return statistics.median(self.chunk_model_cpu_rates)
        return self.n_instances / self.model_cpu_seconds if self.model_cpu_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "learner": self.learner,
            "n_instances": self.n_instances,
            "n_labels": self.n_labels,
            "n_unlabelled": self.n_unlabelled,
            "seconds": self.seconds,
            "instances_per_second": self.instances_per_second,
            "model_seconds": self.model_seconds,
            "model_instances_per_second": self.model_instances_per_second,
            "model_instances_per_second_median": self.model_instances_per_second_median,
            "model_cpu_seconds": self.model_cpu_seconds,
            "model_cpu_instances_per_second_median": self.model_cpu_instances_per_second_median,
            "feature_seconds": self.feature_seconds,
            "peak_rss_mb": self.peak_rss_mb,
            "metrics": dict(self.metrics),
            "p_at_k": {str(k): self.metrics.get(f"p_at_{k}") for k in self.p_at_k},
            "baselines": {name: dict(report) for name, report in self.baselines.items()},
            "segments": {
                name: {who: dict(r) for who, r in part.items()} for name, part in self.segments.items()
            },
            "partition": dict(self.partition),
            "drift_events": list(self.drift_events),
            "window": self.window,
            "record_every": self.record_every,
            "curves": list(self.curves),
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


class _Scorer:
    """Cumulative + windowed metrics of one predictor, plus its per-segment metrics."""

    def __init__(self, n_labels: int, window: int, p_at_k: Sequence[int]) -> None:
        self.total = MultiLabelMetrics(n_labels, p_at_k=p_at_k)
        self.window = WindowedMultiLabelMetrics(window, n_labels, p_at_k=p_at_k)
        self.segment = MultiLabelMetrics(n_labels, p_at_k=p_at_k)

    def add(self, y_true: set[int], y_pred: set[int], ranking: list[int] | None, in_segment: bool) -> None:
        scored = self.total.score_instance(y_true, y_pred, ranking)
        self.total.add(scored)
        self.window.add(scored)
        if in_segment:
            self.segment.add(scored)


class _LabelIds:
    def __init__(self, names: Iterable[Hashable] = ()) -> None:
        self.ids: dict[Hashable, int] = {}
        for name in names:
            self.ids.setdefault(name, len(self.ids))

    def of(self, names: Iterable[Hashable]) -> set[int]:
        ids = self.ids
        out = set()
        for name in names:
            label_id = ids.get(name)
            if label_id is None:
                label_id = ids[name] = len(ids)
            out.add(label_id)
        return out

    def id(self, name: Hashable) -> int:
        label_id = self.ids.get(name)
        if label_id is None:
            label_id = self.ids[name] = len(self.ids)
        return label_id

    def __len__(self) -> int:
        return len(self.ids)


def _predictor(
    model: MultiLabelClassifier, want_scores: bool
) -> Callable[[Features], tuple[set, dict | None]]:
    """The cheapest way to get (decided set, scores) from this model: scores only when they are used."""
    if want_scores:
        return model.predict_with_scores
    return lambda x: (model.predict_one(x), None)


def _n_clusters(model: Any) -> int | None:
    """The model's current number of label clusters, if it has a notion of one."""
    for owner in (model, getattr(model, "partition", None)):
        if owner is None:
            continue
        value = getattr(owner, "n_clusters", None)
        if callable(value):
            value = value()
        if isinstance(value, int):
            return value
        clusters = getattr(owner, "clusters", None)
        if clusters is not None and not callable(clusters):
            try:
                return len(clusters)
            except TypeError:
                pass
    return None


def _as_featurizer(featurize: Any) -> Featurizer | None:
    if featurize is None:
        return None
    for method in ("embed_many", "transform_many"):
        bound = getattr(featurize, method, None)
        if callable(bound):
            return bound
    if callable(featurize):
        return featurize
    raise TypeError(f"featurize must be a callable or have embed_many/transform_many, got {featurize!r}")


def evaluate_prequential(
    stream: Iterable[Instance],
    model: MultiLabelClassifier,
    *,
    featurize: Featurizer | Any | None = None,
    limit: int | None = None,
    window: int = 1000,
    record_every: int = 100,
    progress: bool = True,
    p_at_k: Sequence[int] = (1, 3, 5),
    dataset: str | None = None,
    learner: str | None = None,
    label_names: Sequence[Hashable] | None = None,
    segment: tuple[str, Any] | None = ("split", "test"),
    batch_size: int = 64,
    total: int | None = None,
) -> PrequentialResult:
    """Run ``model`` test-then-train over ``stream`` and measure it.

    Parameters
    ----------
    stream
        Instances in stream order (``read_arff``, ``read_jsonl``, any iterable of ``Instance``).
    model
        A ``MultiLabelClassifier``; its ``predict_with_scores(x) -> (set, scores)`` when scores are used
        (P@k), its ``predict_one`` otherwise.
    featurize
        Turns texts into feature vectors for instances without ``x``: a callable on a list of texts,
        or an embedder (``embed_many``) or featurizer (``transform_many``). Texts are featurized in
        batches of ``batch_size`` before their instances are predicted.
    limit
        Stop after this many instances.
    window
        Size of the sliding window of the windowed metrics.
    record_every
        A curve point (windowed and cumulative metrics, model rate, partition size) every this many
        instances, and at the end.
    progress
        Show a tqdm progress bar on stderr.
    total
        Instances in the stream, for the progress bar's total and ETA (default: ``len(stream)`` when
        the stream has one; ``limit`` caps it).
    p_at_k
        The k of precision-at-k (from the model's scores); empty to skip asking for scores.
    dataset, learner
        Names recorded in the result (default: ``stream.name`` and the model's class name).
    label_names
        Labels to register before the first instance (default: ``stream.header.label_names`` when
        the stream declares them).
    segment
        ``(meta key, value)``: instances whose ``meta[key] == value`` are also scored separately
        (default: the Reuters ModApte test part, ``split == "test"``); ``None`` to disable.

    Examples
    --------

    >>> from labelflow.operators.learners.baselines import NoChangeClassifier
    >>> stream = [Instance(str(i), [float(i)], None, ["even" if i % 2 == 0 else "odd"]) for i in range(6)]
    >>> result = evaluate_prequential(stream, NoChangeClassifier(), progress=False, p_at_k=())
    >>> result.n_instances, result.metrics["subset_accuracy"], result.baselines["no-change"]["subset_accuracy"]
    (6, 0.0, 0.0)
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if record_every < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    featurizer = _as_featurizer(featurize)
    p_at_k = tuple(sorted(set(p_at_k)))
    k_max = max(p_at_k) if p_at_k else 0
    if label_names is None:
        header = getattr(stream, "header", None)
        label_names = getattr(header, "label_names", None) or ()
    labels = _LabelIds(label_names)
    dataset = dataset or str(getattr(stream, "name", "stream"))
    learner = learner or getattr(model, "name", None) or type(model).__name__

    predict = _predictor(model, want_scores=bool(p_at_k))
    drain = getattr(model, "drain_events", None)
    drain = drain if callable(drain) else None
    scorer = _Scorer(len(labels), window, p_at_k)
    no_change, majority = NoChangeClassifier(), MajorityLabelSetClassifier()
    baseline_scorers = {name: _Scorer(len(labels), window, ()) for name in BASELINES}
    segment_key, segment_value = segment if segment is not None else (None, None)
    n_segment = 0

    if total is None and hasattr(stream, "__len__"):
        total = len(stream)  # type: ignore[arg-type]
    if limit is not None:
        total = limit if total is None else min(total, limit)
    bar = _progress_bar(total, dataset, learner, enabled=progress)

    events: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    chunk_rates: list[float] = []
    n_seen = n_scored = n_unlabelled = 0
    model_seconds = feature_seconds = model_cpu_seconds = 0.0
    interval_model_seconds = interval_model_cpu_seconds = 0.0
    chunk_cpu_rates: list[float] = []
    interval_start = 0

    def drain_events() -> None:
        if drain is None:
            return
        for event in drain() or ():
            position = getattr(event, "position", None)
            record = {
                "position": int(position) if position is not None else n_seen,
                # Drift events say "kind" (performance, label_prior, input, label_structure); a bare
                # StructureChange says "action" (split/merge/new_label) and is a structure change.
                "kind": str(getattr(event, "kind", None) or "label_structure"),
            }
            for name in ("action", "level", "severity", "reason"):
                value = getattr(event, name, None)
                if value:
                    record[name] = str(value)
            events.append(record)

    def record_point() -> None:
        nonlocal interval_model_seconds, interval_model_cpu_seconds, interval_start
        drain_events()
        done = n_seen - interval_start
        rate = done / interval_model_seconds if interval_model_seconds > 0 else None
        if rate is not None:
            chunk_rates.append(rate)
        if interval_model_cpu_seconds > 0:
            chunk_cpu_rates.append(done / interval_model_cpu_seconds)
        point: dict[str, Any] = {
            "position": n_seen,
            "n_labels": len(labels),
            "n_clusters": _n_clusters(model),
            "model_instances_per_second": rate,
            "window": _pick(scorer.window.report()),
            "cumulative": _pick(scorer.total.report()),
            "baselines": {name: _pick(s.window.report()) for name, s in baseline_scorers.items()},
        }
        curves.append(point)
        interval_model_seconds, interval_model_cpu_seconds, interval_start = 0.0, 0.0, n_seen
        bar.set_postfix(
            micro_f1=f"{scorer.total.micro_f1:.3f}",
            subset=f"{scorer.total.subset_accuracy:.3f}",
            refresh=False,
        )

    started = time.perf_counter()
    source = iter(stream) if limit is None else itertools.islice(stream, limit)
    perf = time.perf_counter
    # CPU time of this process inside the model calls: on a shared machine other processes inflate wall
    # time, not this (BLAS is single-threaded in the CLI and benchmarks, so CPU time ~ busy time).
    cpu = time.process_time
    while True:
        chunk = list(itertools.islice(source, batch_size))
        if not chunk:
            break
        xs, spent = _features_of(chunk, featurizer)
        feature_seconds += spent
        for inst, x in zip(chunk, xs, strict=True):
            t0, c0 = perf(), cpu()
            predicted, scores = predict(x)
            if inst.labels is not None:
                model.learn_one(x, inst.labels)
            spent = perf() - t0
            model_seconds += spent
            interval_model_seconds += spent
            cpu_spent = cpu() - c0
            model_cpu_seconds += cpu_spent
            interval_model_cpu_seconds += cpu_spent
            n_seen += 1

            if inst.labels is None:
                n_unlabelled += 1
            else:
                true_ids = labels.of(inst.labels)
                pred_ids = labels.of(predicted)
                ranking = None
                if k_max:
                    ranking = [labels.id(name) for name in _top_k(scores, k_max)]
                in_segment = segment_key is not None and inst.meta.get(segment_key) == segment_value
                n_segment += in_segment
                scorer.add(true_ids, pred_ids, ranking, in_segment)
                for name, baseline in (("no-change", no_change), ("majority-labelset", majority)):
                    baseline_scorers[name].add(
                        true_ids, labels.of(baseline.predict_one(None)), None, in_segment
                    )
                    baseline.learn_one(None, inst.labels)
                n_scored += 1
            bar.update(1)
            if n_seen % record_every == 0:
                record_point()
    if n_seen % record_every != 0 or n_seen == 0:
        record_point()
    seconds = time.perf_counter() - started
    bar.close()

    segments: dict[str, dict[str, dict[str, float | int]]] = {}
    if segment_key is not None and n_segment:
        name = f"{segment_key}={segment_value}"
        segments[name] = {"model": scorer.segment.report()}
        for baseline_name, s in baseline_scorers.items():
            segments[name][baseline_name] = s.segment.report()
    return PrequentialResult(
        dataset=dataset,
        learner=learner,
        n_instances=n_scored,
        n_labels=len(labels),
        n_unlabelled=n_unlabelled,
        seconds=seconds,
        model_seconds=model_seconds,
        feature_seconds=feature_seconds,
        metrics=scorer.total.report(),
        baselines={name: s.total.report() for name, s in baseline_scorers.items()},
        segments=segments,
        curves=curves,
        partition={
            "n_clusters": _n_clusters(model),
            "changes": [event["position"] for event in events if event["kind"] == "label_structure"],
        },
        drift_events=events,
        chunk_model_rates=chunk_rates,
        model_cpu_seconds=model_cpu_seconds,
        chunk_model_cpu_rates=chunk_cpu_rates,
        window=window,
        record_every=record_every,
        p_at_k=p_at_k,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    )


def _top_k(scores: dict[Hashable, float] | None, k: int) -> list[Hashable]:
    """The ``k`` best-scored labels, best first (ties: the earlier label in the dict wins)."""
    if not scores:
        return []
    if len(scores) <= 4 * k:
        return [name for name, _ in heapq.nlargest(k, scores.items(), key=itemgetter(1))]
    # Large label spaces (EUR-Lex: thousands of labels): select in numpy instead of a Python heap.
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    kth = -np.partition(-values, k - 1)[k - 1]  # the k-th largest score
    above = np.flatnonzero(values > kth)
    tied = np.flatnonzero(values == kth)[: k - above.shape[0]]
    chosen = np.concatenate([above, tied])
    order = chosen[np.lexsort((chosen, -values[chosen]))]
    names = list(scores)
    return [names[i] for i in order]


def _pick(report: dict[str, float | int]) -> dict[str, float]:
    return {name: float(report[name]) for name in CURVE_METRICS}


def _features_of(chunk: list[Instance], featurizer: Featurizer | None) -> tuple[list[Features], float]:
    """Feature vectors for a chunk (featurizing the texts of instances without ``x``), with the
    seconds spent featurizing (0 when every instance already has ``x``)."""
    given = [inst.x for inst in chunk]
    present = [x for x in given if x is not None]
    if len(present) == len(given):
        return present, 0.0
    missing = [i for i, x in enumerate(given) if x is None]
    if featurizer is None:
        first = chunk[missing[0]]
        raise ValueError(
            f"instance {first.id!r} has no feature vector and no featurizer was given "
            "(pass featurize=..., e.g. a HashingFeaturizer, for text streams)"
        )
    texts = []
    for i in missing:
        text = chunk[i].text
        if text is None:
            raise ValueError(f"instance {chunk[i].id!r} has neither features nor text")
        texts.append(text)
    started = time.perf_counter()
    vectors = featurizer(texts)
    spent = time.perf_counter() - started
    if len(vectors) != len(texts):
        raise ValueError(f"featurizer returned {len(vectors)} vectors for {len(texts)} texts")
    computed = iter(vectors)
    return [x if x is not None else next(computed) for x in given], spent


class _ProgressBar(Protocol):
    """What the evaluation calls on a progress bar (tqdm's or the silent one)."""

    def update(self, n: int) -> object: ...

    def set_postfix(self, **kwargs: Any) -> object: ...

    def close(self) -> object: ...


def _progress_bar(total: int | None, dataset: str, learner: str, *, enabled: bool) -> _ProgressBar:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=f"{dataset} [{learner}]", unit="doc", file=sys.stderr, mininterval=0.5)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def format_table(result: PrequentialResult) -> str:
    """The final metrics of a run, model beside the two baselines, as an aligned text table."""
    rows = [
        ("subset accuracy", "subset_accuracy"),
        ("Hamming loss", "hamming_loss"),
        ("micro-F1", "micro_f1"),
        ("macro-F1", "macro_f1"),
        ("example-F1", "example_f1"),
    ]
    rows += [(f"P@{k}", f"p_at_{k}") for k in result.p_at_k if f"p_at_{k}" in result.metrics]
    columns = [("model", result.metrics)] + [(name, result.baselines[name]) for name in BASELINES]
    lines = [
        f"{result.dataset}: {result.n_instances} instances, {result.n_labels} labels, learner {result.learner}",
        f"{'':<16}" + "".join(f"{name:>19}" for name, _ in columns),
    ]
    for title, key in rows:
        cells = "".join(f"{_fmt(report.get(key)):>19}" for _, report in columns)
        lines.append(f"{title:<16}{cells}")
    for name, part in result.segments.items():
        lines.append(
            f"segment {name} ({part['model']['n_instances']} instances): micro-F1 "
            + ", ".join(f"{who} {_fmt(r.get('micro_f1'))}" for who, r in part.items())
        )
    lines.append(
        f"speed: model {result.model_instances_per_second:,.0f} inst/s "
        f"(median over intervals {result.model_instances_per_second_median:,.0f}), "
        f"end-to-end {result.instances_per_second:,.0f} inst/s, {result.seconds:.1f} s"
    )
    drift = drift_summary(result.drift_events)
    if drift:
        lines.append(drift)
    if result.partition.get("n_clusters") is not None or result.partition.get("changes"):
        lines.append(
            f"partition: {result.partition.get('n_clusters')} clusters, "
            f"{len(result.partition.get('changes', []))} changes"
        )
    return "\n".join(lines)


def drift_summary(events: Sequence[dict[str, Any]]) -> str:
    """One line on the drift the model detected (warnings counted apart); empty when there was none.

    >>> drift_summary([{"kind": "performance", "position": 120}, {"kind": "input", "position": 900},
    ...                {"kind": "performance", "position": 450, "severity": "warning"}])
    'drift: 2 detections (input 1, performance 1) at 120 ... 900; 1 warning'
    """
    detections = [e for e in events if e.get("severity", "drift") == "drift"]
    warnings = len(events) - len(detections)
    if not events:
        return ""
    by_kind: dict[str, int] = {}
    for event in detections:
        by_kind[event["kind"]] = by_kind.get(event["kind"], 0) + 1
    text = f"drift: {len(detections)} detection{'s' if len(detections) != 1 else ''}"
    if detections:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(by_kind.items()))
        positions = [int(e["position"]) for e in detections]
        text += f" ({kinds}) at {min(positions):,} ... {max(positions):,}"
    if warnings:
        text += f"; {warnings} warning{'s' if warnings != 1 else ''}"
    return text


def _fmt(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}"
