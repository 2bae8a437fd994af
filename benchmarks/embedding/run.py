"""Embedder benchmark: documents/s per embedder and batch size, Reuters prequential quality, memory.

Every measurement runs in a child process of its own, so that peak memory (RSS, and GPU memory on a
GPU) belongs to that embedder alone and one embedder's threads or caches cannot slow the next.

Throughput: the first ``--docs`` Reuters articles (time order) are embedded once (the "first pass":
cold memos, lazy initialisation), then ``--repeats`` times per batch size; the table gives the median
rate and the range. Only the embedder is timed (no learner).

Quality: prequential (test-then-train) over the whole Reuters stream in time order with the default
learner ``make_learner("partitioned")``; the embedder is the featurizer. The transformer goes
through the on-disk embedding cache (``CachedEmbedder``): fill it once with ``--fill-cache``
(10,789 articles at about 19 documents/s on a 2-core CPU: ~10 minutes; seconds on a GPU).

Examples::

    # CPU throughput of every embedder, and Reuters quality (after --fill-cache):
    python benchmarks/embedding/run.py --device cpu --quality
    # GPU throughput of the transformer at several batch sizes:
    python benchmarks/embedding/run.py --device cuda --embedders transformer --batch-sizes 64,256,1024
    # One-time: embed all of Reuters with the transformer into the cache:
    python benchmarks/embedding/run.py --fill-cache --device cpu

Results: a JSON file (``--out``) and a Markdown table on stdout (also saved beside the JSON).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFAULT_REUTERS = (
    Path(os.environ.get("LABELFLOW_DATASETS", REPO.parent / "shared" / "datasets"))
    / "reuters21578_modapte"
    / "reuters21578_modapte.jsonl"
)

log = logging.getLogger("benchmarks.embedding")

#: Benchmark names -> (registry name, extra arguments). "static" has the StaticEmbedder defaults; the
#: other static rows each change one of them (the ablation its defaults were chosen from).
SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "hashing": ("hashing", {}),
    "static": ("static", {}),
    "static-contextual": ("static", {"method": "contextual"}),
    "static-256": ("static", {"dim": 256}),
    "static-linear-tf": ("static", {"sublinear_tf": False}),
    "static-sif1e-4": ("static", {"sif": 1e-4}),
    "static-uniform": ("static", {"weighting": "uniform"}),
    "static+hashing": ("static+hashing", {}),
    "transformer": ("transformer", {}),
}
DEFAULT_EMBEDDERS = ("hashing", "static", "transformer")


# --------------------------------------------------------------------------------------------- build


def build_embedder(name: str, args: argparse.Namespace, *, batch_size: int | None = None):
    """The embedder a benchmark name stands for, configured from the command line."""
    from labelflow.operators.embedders.registry import make_embedder

    if name not in SPECS:
        raise SystemExit(f"unknown embedder {name!r}; choose from {', '.join(SPECS)}")
    registry_name, kwargs = SPECS[name]
    kwargs = dict(kwargs)
    static_kwargs = {"device": args.device}
    if args.cache_dir:
        static_kwargs["cache_dir"] = args.cache_dir
    if args.model_dir:
        static_kwargs["model_dir"] = args.model_dir
    if registry_name == "static":
        return make_embedder("static", **{**static_kwargs, **kwargs})
    if registry_name == "static+hashing":
        # Not a registry entry: measured no better than hashing alone (RESULTS.md).
        from labelflow.operators.embedders.concat import ConcatEmbedder

        return ConcatEmbedder([make_embedder("hashing"), make_embedder("static", **static_kwargs)])
    if registry_name == "transformer":
        kwargs.update(
            device=args.device,
            dtype=args.dtype,
            max_seq_length=args.max_seq_length,
            batch_size=batch_size or args.transformer_batch_size,
        )
        if args.model_dir:
            kwargs["model_dir"] = args.model_dir
    return make_embedder(registry_name, **kwargs)


def read_texts(path: Path, limit: int | None) -> list[str]:
    from labelflow.operators.io.jsonl import read_jsonl

    return [inst.text or "" for inst in read_jsonl(path, limit=limit)]


def embed_all(embedder, texts: list[str], batch_size: int) -> None:
    method = getattr(embedder, "embed_array", None) or embedder.embed_many
    for start in range(0, len(texts), batch_size):
        method(texts[start : start + batch_size])


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _memory(device: str) -> dict[str, float]:
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if device.startswith("cuda"):
        import torch

        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


# ------------------------------------------------------------------------------------------ children


def child_throughput(name: str, args: argparse.Namespace) -> dict[str, Any]:
    device = _resolved_device(args.device)
    is_transformer = SPECS[name][0] == "transformer"
    n_docs = args.transformer_docs if is_transformer and device == "cpu" else args.docs
    texts = read_texts(Path(args.reuters), n_docs)
    started = time.perf_counter()
    embedder = build_embedder(name, args)
    load_s = time.perf_counter() - started

    first_batch = args.transformer_batch_size if is_transformer else 256
    started = time.perf_counter()
    embed_all(embedder, texts, first_batch)
    _sync(device)
    first_pass = len(texts) / (time.perf_counter() - started)

    rows = []
    for batch_size in args.batch_sizes:
        if is_transformer:
            embedder.batch_size = batch_size
        rates = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            embed_all(embedder, texts, batch_size)
            _sync(device)
            rates.append(len(texts) / (time.perf_counter() - started))
        rows.append(
            {
                "batch_size": batch_size,
                "docs_per_s_median": statistics.median(rates),
                "docs_per_s_min": min(rates),
                "docs_per_s_max": max(rates),
                "rates": rates,
            }
        )
        log.info(
            "%s batch %d: %.0f docs/s (median of %d)",
            name,
            batch_size,
            rows[-1]["docs_per_s_median"],
            len(rates),
        )
    return {
        "embedder": name,
        "identity": embedder.identity,
        "dim": embedder.dim,
        "sparse": embedder.sparse,
        "n_docs": len(texts),
        "load_s": load_s,
        "first_pass_docs_per_s": first_pass,
        "first_pass_batch_size": first_batch,
        "batches": rows,
        **_memory(device),
    }


def child_quality(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from labelflow.operators.embedders.cache import CachedEmbedder
    from labelflow.operators.evaluation.prequential import evaluate_prequential
    from labelflow.operators.io.jsonl import read_jsonl
    from labelflow.operators.learners.registry import make_learner

    device = _resolved_device(args.device)
    embedder = build_embedder(name, args)
    featurizer = embedder
    if SPECS[name][0] == "transformer":
        featurizer = CachedEmbedder(embedder, _embedding_cache_dir(args))
    model = make_learner("partitioned")
    result = evaluate_prequential(
        read_jsonl(Path(args.reuters), limit=args.quality_limit),
        model,
        featurize=featurizer,
        progress=False,
        dataset="reuters21578_modapte",
        learner="partitioned",
    )
    if isinstance(featurizer, CachedEmbedder):
        featurizer.flush()
    report = result.to_json()
    report.pop("curves", None)
    return {
        "embedder": name,
        "identity": embedder.identity,
        "cache": (
            {"hits": featurizer.hits, "misses": featurizer.misses}
            if isinstance(featurizer, CachedEmbedder)
            else None
        ),
        "result": report,
        **_memory(device),
    }


def fill_cache(args: argparse.Namespace) -> None:
    """Embed every Reuters article with the transformer into the on-disk cache (resumable)."""
    from labelflow.operators.embedders.cache import CachedEmbedder

    texts = read_texts(Path(args.reuters), None)
    embedder = build_embedder("transformer", args)
    chunk = args.fill_chunk
    with CachedEmbedder(embedder, _embedding_cache_dir(args), shard_rows=chunk) as cached:
        started = time.perf_counter()
        for start in range(0, len(texts), chunk):
            cached.embed_array(texts[start : start + chunk])
            cached.flush()  # a shard per chunk: an interruption loses at most one chunk
            done = start + chunk
            log.info(
                "cache: %d / %d (%d new, %.1f docs/s)",
                min(done, len(texts)),
                len(texts),
                cached.misses,
                cached.misses / max(time.perf_counter() - started, 1e-9),
            )
    log.info("cache %s holds %d vectors", cached.directory, len(cached))


def _embedding_cache_dir(args: argparse.Namespace) -> Path:
    from labelflow.operators.embedders.paths import default_cache_dir

    return (Path(args.cache_dir) if args.cache_dir else default_cache_dir()) / "embeddings"


def _resolved_device(device: str) -> str:
    from labelflow.operators.embedders.transformer import resolve_device

    return str(resolve_device(device))


# ------------------------------------------------------------------------------------------- parent


def run_child(kind: str, name: str, argv: list[str]) -> dict[str, Any]:
    """One measurement in a fresh process; a failure is recorded (with the end of its stderr) so the
    other measurements still run and are saved."""
    command = [sys.executable, __file__, *argv, f"--child-{kind}", name]
    log.info("running %s for %s", kind, name)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        log.error("%s benchmark of %s failed (exit %d)", kind, name, done.returncode)
        return {
            "embedder": name,
            "error": done.stderr.strip().splitlines()[-1]
            if done.stderr.strip()
            else f"exit {done.returncode}",
        }
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine_info(device: str) -> dict[str, Any]:
    import torch

    from labelflow.operators.evaluation.machine import cpu_model

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "device": _resolved_device(device),
    }
    if info["device"].startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def render_markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    machine = meta["machine"]
    where = f"{machine['cpu']}, {machine['cpu_count']} CPUs"
    if "gpu" in machine:
        where += f", GPU {machine['gpu']}"
    lines = [
        f"Command: `{meta['command']}`  ",
        f"Machine: {where}; device `{machine['device']}`; Python {machine['python']}, torch {machine['torch']}  ",
        f"Date: {meta['date']}; load average at start {meta['loadavg_start']}, at end {meta['loadavg_end']}",
        "",
    ]
    if results.get("throughput"):
        lines += [
            "| embedder | dim | docs | batch | docs/s (median) | range | first pass docs/s | load s | peak RSS MB | GPU peak MB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for entry in results["throughput"]:
            if "error" in entry:
                lines.append(f"| {entry['embedder']} | failed: {entry['error']} |||||||||")
                continue
            for row in entry["batches"]:
                gpu = f"{entry['gpu_peak_mb']:.0f}" if "gpu_peak_mb" in entry else "-"
                lines.append(
                    f"| {entry['embedder']} | {entry['dim']} | {entry['n_docs']} | {row['batch_size']} "
                    f"| {row['docs_per_s_median']:,.0f} | {row['docs_per_s_min']:,.0f}-{row['docs_per_s_max']:,.0f} "
                    f"| {entry['first_pass_docs_per_s']:,.0f} | {entry['load_s']:.1f} | {entry['peak_rss_mb']:.0f} | {gpu} |"
                )
        lines.append("")
    if results.get("quality"):
        lines += [
            "| embedder | micro-F1 | macro-F1 | subset acc. | example-F1 | test-part micro-F1 | embed docs/s | learner docs/s | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        baselines = None
        for entry in results["quality"]:
            if "error" in entry:
                lines.append(f"| {entry['embedder']} | failed: {entry['error']} ||||||||")
                continue
            r = entry["result"]
            m = r["metrics"]
            test = r.get("segments", {}).get("split=test", {}).get("model", {})
            embed_rate = r["n_instances"] / r["feature_seconds"] if r["feature_seconds"] > 0 else float("nan")
            note = " (cached)" if entry.get("cache") else ""
            lines.append(
                f"| {entry['embedder']} | {m['micro_f1']:.4f} | {m['macro_f1']:.4f} | {m['subset_accuracy']:.4f} "
                f"| {m['example_f1']:.4f} | {test.get('micro_f1', float('nan')):.4f} | {embed_rate:,.0f}{note} "
                f"| {r['model_instances_per_second']:,.0f} | {entry['peak_rss_mb']:.0f} |"
            )
            baselines = r["baselines"]
        for name, m in (baselines or {}).items():
            lines.append(
                f"| baseline: {name} | {m['micro_f1']:.4f} | {m['macro_f1']:.4f} | {m['subset_accuracy']:.4f} "
                f"| {m['example_f1']:.4f} | | | | |"
            )
        lines.append("")
    return "\n".join(lines)


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    parser.add_argument("--dtype", default="auto", help="transformer dtype: auto, float32, float16, bfloat16")
    parser.add_argument(
        "--embedders", default=",".join(DEFAULT_EMBEDDERS), help=f"comma list of {', '.join(SPECS)}"
    )
    parser.add_argument("--batch-sizes", default="1,32,256", help="comma list of batch sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--docs", type=int, default=4000, help="Reuters articles per throughput pass")
    parser.add_argument(
        "--transformer-docs", type=int, default=128, help="articles per pass for the transformer on a CPU"
    )
    parser.add_argument("--transformer-batch-size", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput part")
    parser.add_argument("--quality", action="store_true", help="also run Reuters prequential quality")
    parser.add_argument("--quality-limit", type=int, default=None, help="first N articles only (smoke runs)")
    parser.add_argument(
        "--fill-cache", action="store_true", help="only embed Reuters into the transformer cache"
    )
    parser.add_argument(
        "--fill-chunk", type=int, default=256, help="articles per cache shard in --fill-cache"
    )
    parser.add_argument(
        "--cache-dir", default=None, help="default: $LABELFLOW_CACHE_DIR or ~/.cache/labelflow"
    )
    parser.add_argument(
        "--model-dir", default=None, help="transformer directory (default: the bundled MiniLM)"
    )
    parser.add_argument("--reuters", default=str(DEFAULT_REUTERS))
    parser.add_argument(
        "--out", default=None, help="results JSON (default: benchmarks/embedding/results/<device>.json)"
    )
    parser.add_argument("--child-throughput", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-quality", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",") if b]
    args.embedder_names = [e for e in args.embedders.split(",") if e]
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if args.child_throughput:
        print(json.dumps(child_throughput(args.child_throughput, args)))
        return
    if args.child_quality:
        print(json.dumps(child_quality(args.child_quality, args)))
        return
    if args.fill_cache:
        fill_cache(args)
        return
    for name in args.embedder_names:
        if name not in SPECS:
            raise SystemExit(f"unknown embedder {name!r}; choose from {', '.join(SPECS)}")
    results: dict[str, Any] = {
        "meta": {
            "command": "python benchmarks/embedding/run.py " + " ".join(argv),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine_info(args.device),
            "loadavg_start": _loadavg(),
            "loadavg_end": _loadavg(),
        },
        "throughput": [],
        "quality": [],
    }
    out = (
        Path(args.out)
        if args.out
        else HERE / "results" / f"{results['meta']['machine']['device'].split(':')[0]}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = [] if args.no_throughput else [("throughput", name) for name in args.embedder_names]
    parts += [("quality", name) for name in args.embedder_names] if args.quality else []
    for kind, name in parts:
        results[kind].append(run_child(kind, name, argv))
        results["meta"]["loadavg_end"] = _loadavg()
        out.write_text(json.dumps(results, indent=1))  # after every part: an abort keeps the rest
    markdown = render_markdown(results)
    out.with_suffix(".md").write_text(markdown + "\n")
    print(markdown)
    log.info("wrote %s and %s", out, out.with_suffix(".md"))
    failed = [
        f"{kind} of {entry['embedder']}"
        for kind in ("throughput", "quality")
        for entry in results[kind]
        if "error" in entry
    ]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
