#!/usr/bin/env python
"""Text representation study (issue 14): which featurization of text the default learner should use.

Runs the default learner (``make_learner("partitioned")``) prequentially (predict, then learn, every
document in stream order, no warm-up) on Reuters-21578 ModApte (all 10,789 articles), the first
``--eurlex-limit`` documents of EUR-Lex 57k and a seeded synthetic text stream, once per text
representation:

- hashing variants (``HashingFeaturizer``, 2**18 columns): word unigrams or uni+bigrams (or up to
  trigrams), sublinear (``1 + log tf``) or raw term frequency;
- ``static``: the static embedder (MiniLM input token vectors, SIF weights; needs the ``transformer`` extra);
- ``static+hashing``: the static embedder and the registry's default hashing concatenated
  (``ConcatEmbedder``).

Each (representation, stream) runs in its own process. Reported: micro-F1, subset accuracy, macro-F1,
CPU seconds spent featurizing and inside the learner, peak RSS, and the micro-F1 and subset accuracy of the
``adagrad-ovr`` rival of issue 16 on the same representation and stream (``--no-rival``: not run). Writes
``RESULTS.md`` and ``results.json`` into ``--output-dir`` (default: beside this script).
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "OPENBLAS_NUM_THREADS", "1"
)  # see labelflow.stream.cli: BLAS threads slow small products

import argparse
import concurrent.futures
import datetime as dt
import json
import multiprocessing
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/, for the module below

from benchmark_modules import load_benchmark  # noqa: E402

_ACCURACY = load_benchmark("accuracy")
TEXT_DATASETS: dict[str, tuple[str, str]] = _ACCURACY.TEXT_DATASETS
git_commit = _ACCURACY.git_commit
machine_description = _ACCURACY.machine_description

#: Hashing variants: name -> HashingFeaturizer settings (2**18 columns, L2 norm, signed hashing).
HASHING_VARIANTS: dict[str, dict[str, Any]] = {
    "hashing-1gram-rawtf": {"ngram_range": (1, 1), "sublinear_tf": False},
    "hashing-1gram": {"ngram_range": (1, 1), "sublinear_tf": True},
    "hashing-1-2gram-rawtf": {"ngram_range": (1, 2), "sublinear_tf": False},
    "hashing-1-2gram": {"ngram_range": (1, 2), "sublinear_tf": True},
    "hashing-1-3gram": {"ngram_range": (1, 3), "sublinear_tf": True},
}
REPRESENTATIONS = (*HASHING_VARIANTS, "static", "static+hashing")
STREAMS = ("reuters", "eurlex", "synthetic")
RIVAL: str = _ACCURACY.RIVAL  # the simplest strong rival (issue 16), reported beside the default


def datasets_dir() -> Path:
    return Path(os.environ.get("LABELFLOW_DATASETS", REPO.parent / "shared" / "datasets"))


def build_representation(name: str) -> Any:
    from labelflow.operators.embedders.registry import make_embedder

    if name in HASHING_VARIANTS:
        return make_embedder("hashing", **HASHING_VARIANTS[name])
    if name == "static":
        return make_embedder("static")
    if name == "static+hashing":
        from labelflow.operators.embedders.concat import ConcatEmbedder

        return ConcatEmbedder([make_embedder("hashing"), make_embedder("static")])
    raise ValueError(f"unknown representation {name!r}")


def open_text_stream(name: str, limit: int | None) -> Any:
    if name == "synthetic":
        from labelflow.operators.datasets import SyntheticStream, SyntheticStreamConfig
        from labelflow.operators.io.instances import Instance

        stream = SyntheticStream(SyntheticStreamConfig(n_documents=limit or 5000, seed=11))
        return [Instance(d.id, None, d.text, list(d.labels)) for d in stream]
    from labelflow.operators.io.streams import open_stream

    folder, file_name = TEXT_DATASETS[name]
    return open_stream(datasets_dir() / folder / file_name, limit=limit)


class _TimedFeaturizer:
    """The representation with the CPU seconds spent in it counted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cpu_seconds = 0.0

    def embed_many(self, texts: Sequence[str]) -> list[Any]:
        started = time.process_time()
        out = self.inner.embed_many(texts)
        self.cpu_seconds += time.process_time() - started
        return out


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    from labelflow.operators.evaluation.prequential import evaluate_prequential
    from labelflow.operators.learners.registry import make_learner

    featurizer = _TimedFeaturizer(build_representation(spec["representation"]))

    def evaluate(learner: str, featurize: Any) -> Any:
        return evaluate_prequential(
            open_text_stream(spec["dataset"], spec["limit"]),
            make_learner(learner),
            featurize=featurize,
            limit=spec["limit"],
            progress=False,
            p_at_k=(),
            dataset=spec["dataset"],
            segment=None,
        )

    result = evaluate("partitioned", featurizer)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # the default's run only
    rival = evaluate(RIVAL, featurizer.inner) if spec["rival"] else None
    return {
        **spec,
        "identity": featurizer.inner.identity,
        "n": result.n_instances,
        "n_labels": result.n_labels,
        "micro_f1": result.metrics["micro_f1"],
        "subset_accuracy": result.metrics["subset_accuracy"],
        "macro_f1": result.metrics["macro_f1"],
        "featurize_cpu_seconds": featurizer.cpu_seconds,
        "model_cpu_seconds": result.model_cpu_seconds,
        "peak_rss_mb": peak_rss_mb,
        "rival_micro_f1": None if rival is None else rival.metrics["micro_f1"],
        "rival_subset_accuracy": None if rival is None else rival.metrics["subset_accuracy"],
    }


def run_all(specs: list[dict[str, Any]], jobs: int) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    results = []
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, max_tasks_per_child=1) as pool:
        futures = {pool.submit(run_one, spec): spec for spec in specs}
        for future in concurrent.futures.as_completed(futures):
            spec = futures[future]
            try:
                r = future.result()
            except Exception as exc:  # one failed run must not lose the others
                print(f"FAILED {spec}: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            print(
                f"done {r['dataset']:<10} {r['representation']:<22} n={r['n']:<6} μF1={r['micro_f1']:.4f} "
                f"S={r['subset_accuracy']:.4f} featurize={r['featurize_cpu_seconds']:.0f}s "
                f"model={r['model_cpu_seconds']:.0f}s",
                file=sys.stderr,
            )
            results.append(r)
    order = {(s["dataset"], s["representation"]): i for i, s in enumerate(specs)}
    return sorted(results, key=lambda r: order[(r["dataset"], r["representation"])])


def render(results: list[dict[str, Any]], header: dict[str, Any]) -> str:
    lines = [
        "# Text representation study",
        "",
        f"Command: `{header['command']}`  ",
        f"Machine: {header['machine']}  ",
        f"Date: {header['date']}; commit {header['commit']}",
        "",
        "Default learner, prequential (predict, then learn), stream order, no warm-up. Streams: "
        + "; ".join(f"{name}: {text}" for name, text in header["streams"].items())
        + ". CPU seconds: featurizing the stream, and inside the learner's predict and learn calls.",
        "",
    ]
    for dataset in header["streams"]:
        rows = [r for r in results if r["dataset"] == dataset]
        if not rows:
            continue
        best = max(r["micro_f1"] for r in rows)
        lines += [
            f"## {dataset}",
            "",
            "| representation | μF1 | S | macro-F1 | featurize CPU s | learner CPU s | peak RSS MB "
            f"| {RIVAL} μF1 / S |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            micro = f"{r['micro_f1']:.4f}"
            rival = (
                "-"
                if r.get("rival_micro_f1") is None
                else f"{r['rival_micro_f1']:.4f} / {r['rival_subset_accuracy']:.4f}"
            )
            lines.append(
                f"| {r['representation']} | {'**' + micro + '**' if r['micro_f1'] == best else micro} | "
                f"{r['subset_accuracy']:.4f} | {r['macro_f1']:.4f} | {r['featurize_cpu_seconds']:.1f} | "
                f"{r['model_cpu_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {rival} |"
            )
        lines.append("")
    lines += ["Representation identities:", ""]
    seen: set[str] = set()
    for r in results:
        if r["representation"] not in seen:
            seen.add(r["representation"])
            lines.append(f"- `{r['representation']}`: `{r['identity']}`")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--representations", nargs="+", default=list(REPRESENTATIONS), choices=REPRESENTATIONS
    )
    parser.add_argument("--datasets", nargs="+", default=list(STREAMS), choices=STREAMS)
    parser.add_argument("--reuters-limit", type=int, default=None, help="default: the whole stream")
    parser.add_argument("--eurlex-limit", type=int, default=10_000, help="0: the whole stream (57,000)")
    parser.add_argument("--synthetic-n", type=int, default=5_000)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--no-rival", action="store_true", help=f"do not run the {RIVAL} rival")
    parser.add_argument("--output-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)
    limits = {
        "reuters": args.reuters_limit,
        "eurlex": args.eurlex_limit or None,
        "synthetic": args.synthetic_n,
    }
    described = {
        "reuters": "Reuters-21578 ModApte, time order, "
        + (f"first {args.reuters_limit:,} articles" if args.reuters_limit else "all 10,789 articles"),
        "eurlex": "EUR-Lex 57k, file order, "
        + (f"first {args.eurlex_limit:,} documents" if args.eurlex_limit else "all 57,000 documents"),
        "synthetic": f"synthetic text stream (SyntheticStreamConfig(seed=11, n_documents={args.synthetic_n:,}),"
        " 4 scheduled drifts)",
    }
    specs = [
        {"dataset": d, "representation": r, "limit": limits[d], "rival": not args.no_rival}
        for d in args.datasets
        for r in args.representations
    ]
    results = run_all(specs, args.jobs)
    header = {
        "command": "python benchmarks/text/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_description(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "streams": {d: described[d] for d in args.datasets},
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "results.json").write_text(
        json.dumps({"header": header, "results": results}, indent=1)
    )
    (args.output_dir / "RESULTS.md").write_text(render(results, header))
    print(f"wrote {args.output_dir / 'RESULTS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
