#!/usr/bin/env python
"""Prequential accuracy benchmark: our learner vs. the published results and in-house baselines.

Runs the learner (default "partitioned") test-then-train over the 9 ARFF benchmark streams and
Reuters-21578 (hashing features), its simplest strong rival "adagrad-ovr" (numpy AdaGrad one-vs-rest
with a pooled threshold) on every full stream, and the in-house river baselines "river-br" and
"river-cc" on the same streams through the same evaluator, then writes ``RESULTS.md`` and ``results.json`` beside this
script (or into ``--output-dir``). See README.md in this folder for the flags and the definitions.

Each (dataset, learner) run is a fresh process, so that peak memory and timings of one run are not
inflated by another.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import datetime as dt
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Set before anything imports numpy (only the functions below do): see labelflow.stream.cli, BLAS
# threads slow small products; the runs in child processes inherit it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

#: Benchmark name -> (folder, file, name in the published tables). Order = the table order.
ARFF_DATASETS: dict[str, tuple[str, str, str]] = {
    "emotions": ("emotions", "emotions.arff", "Emotions"),
    "yeast": ("yeast", "yeast.arff.gz", "Yeast"),
    "scene": ("scene", "Scene.arff.gz", "Scene"),
    "medical": ("medical", "Medical.arff", "Medical"),
    "slashdot": ("slashdot", "Slashdot.arff", "Slashdot"),
    "enron": ("enron", "Enron.arff", "Enron"),
    "tmc2007_500": ("tmc2007_500", "tmc2007-500.arff.gz", "Tmc"),
    "20ng": ("20ng", "20NG.arff.gz", "D20ng"),
    "bibtex": ("bibtex", "Bibtex.arff.gz", "Bibtex"),
}
TEXT_DATASETS: dict[str, tuple[str, str]] = {
    "reuters": ("reuters21578_modapte", "reuters21578_modapte.jsonl"),
    "eurlex": ("eurlex57k", "eurlex57k.jsonl.gz"),
}
RIVER_LEARNERS = ("river-br", "river-cc")
#: The simplest strong rival: a few vectorized numpy operations per instance. Every table shows it.
RIVAL = "adagrad-ovr"
#: Reference metric files and whether larger is better.
REFERENCE_METRICS = {
    "subset_accuracy": ("subset_acc.csv", True),
    "micro_f1": ("micro_f1.csv", True),
    "macro_f1": ("macro_f1.csv", True),
}


# -- one run (in a child process) --------------------------------------------------------------


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one learner on one dataset; return the result JSON (plus the child's peak RSS)."""
    from labelflow.operators.evaluation.prequential import evaluate_prequential
    from labelflow.operators.io.streams import open_stream
    from labelflow.stream.commands.evaluate import make_named_learner, make_text_embedder, seed_everything

    if spec.get("seed") is not None:
        seed_everything(spec["seed"])
    stream = open_stream(spec["path"])
    featurizer = (
        make_text_embedder(spec["embedder"], **spec.get("embedder_kwargs", {}))
        if spec["kind"] == "text"
        else None
    )
    model = make_named_learner(spec["learner"], seed=spec.get("seed"))
    started = time.perf_counter()
    result = evaluate_prequential(
        stream,
        model,
        featurize=featurizer,
        limit=spec.get("limit"),
        window=spec["window"],
        record_every=spec["record_every"],
        progress=spec["progress"],
        dataset=spec["dataset"],
        learner=spec["learner"],
    )
    out = result.to_json()
    out["wall_seconds"] = time.perf_counter() - started
    out["limit"] = spec.get("limit")
    out["embedder_identity"] = getattr(featurizer, "identity", None)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if not spec.get("keep_curves"):
        out["curves"] = out["curves"][-1:]
    return out


def run_all(specs: list[dict[str, Any]], jobs: int) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    results: list[dict[str, Any]] = []
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, max_tasks_per_child=1
    ) as pool:
        futures = {pool.submit(run_one, spec): spec for spec in specs}
        for future in concurrent.futures.as_completed(futures):
            spec = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # one failed run must not lose the others
                print(
                    f"FAILED {spec['dataset']} / {spec['learner']}: {type(exc).__name__}: {exc}",
                    file=sys.stderr,
                )
                result = {
                    "dataset": spec["dataset"],
                    "learner": spec["learner"],
                    "error": f"{type(exc).__name__}: {exc}",
                }
            else:
                m = result["metrics"]
                print(
                    f"done {spec['dataset']:<12} {spec['learner']:<18} n={result['n_instances']:<6} "
                    f"subset={m['subset_accuracy']:.4f} micro={m['micro_f1']:.4f} macro={m['macro_f1']:.4f} "
                    f"model={result['model_instances_per_second_median']:,.0f}/s cpu={result.get('model_cpu_instances_per_second_median', 0):,.0f}/s",
                    file=sys.stderr,
                )
            results.append(result)
    order = {(s["dataset"], s["learner"]): i for i, s in enumerate(specs)}
    return sorted(results, key=lambda r: order[(r["dataset"], r["learner"])])


# -- references and environment ----------------------------------------------------------------


def load_references(datasets_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """metric -> published dataset name -> learner -> value."""
    refs: dict[str, dict[str, dict[str, float]]] = {}
    for metric, (file_name, _) in REFERENCE_METRICS.items():
        with open(datasets_dir / "reference-results" / file_name, newline="") as fh:
            refs[metric] = {
                row["Dataset"]: {
                    k: float(v) for k, v in row.items() if k != "Dataset" and v not in ("", None)
                }
                for row in csv.DictReader(fh)
            }
    return refs


def machine_description() -> str:
    from labelflow.operators.evaluation.machine import describe_machine

    load = ""
    if hasattr(os, "getloadavg"):
        load = f"; load average {os.getloadavg()[0]:.1f} when the run started (the machine is shared)"
    return describe_machine() + load


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# -- tables ------------------------------------------------------------------------------------


def _f(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def _wall_cpu(result: dict[str, Any] | None) -> str:
    if not result:
        return "-"
    return f"{_rate(result['model_instances_per_second_median'])} / {_rate(result.get('model_cpu_instances_per_second_median'))}"


def _metrics3(result: dict[str, Any] | None) -> str:
    """Subset accuracy / micro-F1 / macro-F1 of a run, or "-"."""
    if not result:
        return "-"
    m = result["metrics"]
    return f"{_f(m['subset_accuracy'])} / {_f(m['micro_f1'])} / {_f(m['macro_f1'])}"


def _rate(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _find(results: list[dict[str, Any]], dataset: str, learner: str) -> dict[str, Any] | None:
    for r in results:
        if r.get("dataset") == dataset and r.get("learner") == learner and "error" not in r:
            return r
    return None


def _best(refs: dict[str, dict[str, float]], published: str, higher: bool) -> tuple[str, float] | None:
    row = refs.get(published)
    if not row:
        return None
    name = (max if higher else min)(row, key=row.get)
    return name, row[name]


def build_report(
    results: list[dict[str, Any]], args: argparse.Namespace, refs: dict[str, Any], started: str, machine: str
) -> str:
    learner = args.learner
    lines = [
        "# Prequential accuracy benchmark",
        "",
        f"- Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        f"- Machine: {machine}",
        f"- Date: {started}",
        f"- Git commit: {git_commit()}",
        f"- Learner: `{learner}`; rival: {'skipped' if args.skip_rival else f'`{RIVAL}` (full streams)'}; "
        f"in-house baselines: {'skipped' if args.skip_river else ', '.join(f'`{n}`' for n in RIVER_LEARNERS)}",
        f"- Protocol: test-then-train over every instance in file order, no warm-up, no resets "
        f"(labelflow.operators.evaluation.prequential). Windowed curves: window {args.window}.",
        "- Model instances/s: median over intervals of "
        f"{args.record_every} instances of (instances / seconds spent in the model's predict + learn calls), "
        "in wall time and in this process's CPU time. The machine is shared: other jobs inflate wall time, "
        "CPU time measures the model's own cost (BLAS single-threaded).",
        "- Macro-F1 averages over every label declared in the ARFF header (labels never positive count as 0), "
        "as river's MacroAverage does in the published MLHAT results.",
        "- Published values: full-stream results of MLHAT and 16 other online learners "
        "(Esteban et al. 2024, aestebant/mlhat, `reference-results/`); 'best' is the best of the 17 per metric.",
        "",
    ]
    arff_names = [
        name
        for name in ARFF_DATASETS
        if _find(results, name, learner) or any(r.get("dataset") == name for r in results)
    ]
    if arff_names:
        lines += [
            "## ARFF streams: ours vs. trivial baselines and published learners",
            "",
            "S = subset accuracy, μF1 = micro-F1, MF1 = macro-F1.",
            "",
            f"| dataset | n | ours S | ours μF1 | ours MF1 | {RIVAL} S / μF1 / MF1 | no-change S / μF1 | majority S / μF1 | MLHAT S / μF1 / MF1 | best published S | best published μF1 | best published MF1 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        wins = {metric: 0 for metric in REFERENCE_METRICS}
        beats_no_change = 0
        beats_rival = {"subset_accuracy": 0, "micro_f1": 0}
        compared = 0
        sums: dict[str, list[float]] = {}
        for name in arff_names:
            published = ARFF_DATASETS[name][2]
            ours = _find(results, name, learner)
            if ours is None:
                lines.append(f"| {name} | failed | | | | | | | | | | |")
                continue
            rival = _find(results, name, RIVAL)
            m, base = ours["metrics"], ours["baselines"]
            full = ours.get("limit") is None
            mlhat = {metric: refs[metric].get(published, {}).get("MLHAT") for metric in REFERENCE_METRICS}
            best = {
                metric: _best(refs[metric], published, REFERENCE_METRICS[metric][1])
                for metric in REFERENCE_METRICS
            }
            if full:
                compared += 1
                for metric in REFERENCE_METRICS:
                    if mlhat[metric] is not None and m[metric] > mlhat[metric]:
                        wins[metric] += 1
                    sums.setdefault(f"mlhat_{metric}", []).append(mlhat[metric] or 0.0)
                    sums.setdefault(f"ours_{metric}", []).append(m[metric])
                if m["subset_accuracy"] > base["no-change"]["subset_accuracy"]:
                    beats_no_change += 1
                for metric in beats_rival:
                    if rival is not None and m[metric] >= rival["metrics"][metric]:
                        beats_rival[metric] += 1
            n = f"{ours['n_instances']}" + ("" if full else " (limit)")
            lines.append(
                f"| {name} | {n} | {_f(m['subset_accuracy'])} | {_f(m['micro_f1'])} | {_f(m['macro_f1'])} "
                f"| {_metrics3(rival)} "
                f"| {_f(base['no-change']['subset_accuracy'])} / {_f(base['no-change']['micro_f1'])} "
                f"| {_f(base['majority-labelset']['subset_accuracy'])} / {_f(base['majority-labelset']['micro_f1'])} "
                f"| {_f(mlhat['subset_accuracy'])} / {_f(mlhat['micro_f1'])} / {_f(mlhat['macro_f1'])} "
                + "".join(
                    f"| {_f(best[metric][1])} ({best[metric][0]}) " if best[metric] else "| - "
                    for metric in REFERENCE_METRICS
                )
                + "|"
            )
        if compared:
            mean = {key: statistics.fmean(values) for key, values in sums.items()}
            lines += [
                "",
                f"Over the {compared} full streams: wins vs. MLHAT: subset accuracy {wins['subset_accuracy']}/{compared}, "
                f"micro-F1 {wins['micro_f1']}/{compared}, macro-F1 {wins['macro_f1']}/{compared}; "
                f"subset accuracy above no-change on {beats_no_change}/{compared}; "
                f"at least {RIVAL}'s subset accuracy on {beats_rival['subset_accuracy']}/{compared}, "
                f"micro-F1 on {beats_rival['micro_f1']}/{compared}.",
                f"Means: ours S {_f(mean['ours_subset_accuracy'])}, μF1 {_f(mean['ours_micro_f1'])}, MF1 {_f(mean['ours_macro_f1'])}; "
                f"MLHAT S {_f(mean['mlhat_subset_accuracy'])}, μF1 {_f(mean['mlhat_micro_f1'])}, MF1 {_f(mean['mlhat_macro_f1'])}.",
            ]
        lines += ["", "## ARFF streams: in-house baselines in the same run, and speed", ""]
        lines += [
            f"| dataset | ours model inst/s (wall / CPU) | {RIVAL} inst/s (wall / CPU) | speed ours / {RIVAL} (CPU) | river-br S / μF1 / MF1 | river-br inst/s (wall / CPU) | river-cc S / μF1 / MF1 | river-cc inst/s (wall / CPU) | speed ours / river-cc (CPU) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        ratios = []
        rival_ratios = []
        ours_cpu_rates = []
        for name in arff_names:
            ours = _find(results, name, learner)
            rival = _find(results, name, RIVAL)
            cells = [name, _wall_cpu(ours), _wall_cpu(rival)]
            if ours:
                ours_cpu_rates.append(ours["model_cpu_instances_per_second_median"])
            if ours and rival and rival.get("model_cpu_instances_per_second_median"):
                rival_ratio = (
                    ours["model_cpu_instances_per_second_median"]
                    / rival["model_cpu_instances_per_second_median"]
                )
                rival_ratios.append(rival_ratio)
                cells.append(f"{rival_ratio:,.2f}x")
            else:
                cells.append("-")
            for river_name in RIVER_LEARNERS:
                r = _find(results, name, river_name)
                if r is None:
                    cells += ["-", "-"]
                    continue
                rm = r["metrics"]
                lim = "" if r.get("limit") is None else f" (first {r['n_instances']})"
                cells += [
                    f"{_f(rm['subset_accuracy'])} / {_f(rm['micro_f1'])} / {_f(rm['macro_f1'])}{lim}",
                    _wall_cpu(r),
                ]
            cc = _find(results, name, "river-cc")
            if ours and cc and cc.get("model_cpu_instances_per_second_median"):
                ratio = (
                    ours["model_cpu_instances_per_second_median"]
                    / cc["model_cpu_instances_per_second_median"]
                )
                ratios.append(ratio)
                differ = (
                    ""
                    if ours["n_instances"] == cc["n_instances"]
                    else f" ({ours['n_instances']} vs {cc['n_instances']} instances)"
                )
                cells.append(f"{ratio:,.1f}x{differ}")
            else:
                cells.append("-")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if ours_cpu_rates:
            lines.append(
                f"Ours: median {statistics.median(ours_cpu_rates):,.0f} instances per CPU-second over the "
                f"{len(ours_cpu_rates)} streams, slowest {min(ours_cpu_rates):,.0f}."
            )
        if rival_ratios:
            lines.append(
                f"Median speed ratio vs. {RIVAL}: {statistics.median(rival_ratios):,.2f}x (CPU time in the model calls)."
            )
        if ratios:
            lines.append(
                f"Median speed ratio vs. river-cc: {statistics.median(ratios):,.1f}x (CPU time in the model calls)."
            )
        lines.append("")

    text_rows = [r for r in results if r.get("dataset") == "reuters"]
    if text_rows:
        lines += [
            "## Reuters-21578 ModApte (hashing features, time order)",
            "",
            "Whole stream = every document, prequentially. Test part = the same run's scores on the "
            '3,019 ModApte test documents (split == "test"), which come after all training documents in time.',
            "",
            "| learner | n | whole μF1 | whole MF1 | whole S | test-part μF1 | test-part MF1 | no-change μF1 whole / test | majority μF1 whole / test | model inst/s (wall / CPU) | end-to-end inst/s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in text_rows:
            if "error" in r:
                lines.append(f"| {r['learner']} | failed: {r['error']} | | | | | | | | | |")
                continue
            m = r["metrics"]
            seg = r.get("segments", {}).get("split=test", {})
            test_model = seg.get("model", {})
            lines.append(
                f"| {r['learner']} | {r['n_instances']}{'' if r.get('limit') is None else ' (limit)'} "
                f"| {_f(m['micro_f1'])} | {_f(m['macro_f1'])} | {_f(m['subset_accuracy'])} "
                f"| {_f(test_model.get('micro_f1'))} | {_f(test_model.get('macro_f1'))} "
                f"| {_f(r['baselines']['no-change']['micro_f1'])} / {_f(seg.get('no-change', {}).get('micro_f1'))} "
                f"| {_f(r['baselines']['majority-labelset']['micro_f1'])} / {_f(seg.get('majority-labelset', {}).get('micro_f1'))} "
                f"| {_wall_cpu(r)} | {_rate(r['instances_per_second'])} |"
            )
        lines.append("")

    eurlex_rows = [r for r in results if r.get("dataset") == "eurlex"]
    if eurlex_rows:
        lines += [
            "## EUR-Lex 57k (4,271 labels, year order, hashing features)",
            "",
            "| learner | n | μF1 | P@5 | model inst/s (wall / CPU) | end-to-end inst/s | peak RSS (MB) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in eurlex_rows:
            if "error" in r:
                lines.append(f"| {r['learner']} | failed: {r['error']} | | | | | |")
                continue
            lines.append(
                f"| {r['learner']} | {r['n_instances']}{'' if r.get('limit') is None else ' (limit)'} "
                f"| {_f(r['metrics']['micro_f1'])} | {_f(r['metrics'].get('p_at_5'))} "
                f"| {_wall_cpu(r)} | {_rate(r['instances_per_second'])} "
                f"| {r['peak_rss_mb']:,.0f} |"
            )
        lines.append("")

    failures = [r for r in results if "error" in r]
    if failures:
        lines += (
            ["## Failed runs", ""]
            + [f"- {r['dataset']} / {r['learner']}: {r['error']}" for r in failures]
            + [""]
        )
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------


def parse_limits(items: list[str]) -> dict[str, int]:
    limits = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            raise SystemExit(f"--limit-for expects NAME=N, got {item!r}")
        limits[name] = int(value)
    return limits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--learner", default="partitioned", help="our learner (registry name; default partitioned)"
    )
    parser.add_argument(
        "--datasets", nargs="+", help=f"subset of {list(ARFF_DATASETS) + ['reuters']} (default: all)"
    )
    parser.add_argument("--limit", type=int, help="evaluate only the first N instances of every stream")
    parser.add_argument(
        "--limit-for", action="append", default=[], metavar="NAME=N", help="per-dataset limit (repeatable)"
    )
    parser.add_argument(
        "--skip-river", action="store_true", help="do not run the river-br / river-cc baselines"
    )
    parser.add_argument("--skip-rival", action="store_true", help=f"do not run the {RIVAL} rival")
    parser.add_argument(
        "--river-limit", type=int, help="first N instances only for the river baselines (they are slow)"
    )
    parser.add_argument("--eurlex", action="store_true", help="also run EUR-Lex 57k (our learner only)")
    parser.add_argument("--eurlex-limit", type=int, help="first N EUR-Lex documents only")
    parser.add_argument(
        "--eurlex-hashing-features",
        type=int,
        default=2**16,
        help="hashing columns for EUR-Lex (default 65536; the weights are columns x labels)",
    )
    parser.add_argument(
        "--embedder", default="hashing", help="text embedder for Reuters / EUR-Lex (default hashing)"
    )
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--record-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs in parallel (default 1: timings stay comparable)"
    )
    parser.add_argument(
        "--datasets-dir", type=Path, default=None, help="default: $LABELFLOW_DATASETS or ../shared/datasets"
    )
    parser.add_argument("--output-dir", type=Path, default=HERE, help="where RESULTS.md and results.json go")
    parser.add_argument("--progress", action="store_true", help="progress bars on stderr")
    parser.add_argument("--keep-curves", action="store_true", help="keep the learning curves in results.json")
    args = parser.parse_args(argv)

    datasets_dir = args.datasets_dir or Path(
        os.environ.get("LABELFLOW_DATASETS", REPO.parent / "shared" / "datasets")
    )
    if not datasets_dir.is_dir():
        raise SystemExit(
            f"datasets not found at {datasets_dir}; pass --datasets-dir or set LABELFLOW_DATASETS"
        )
    wanted = args.datasets or [*ARFF_DATASETS, "reuters"]
    unknown = [d for d in wanted if d not in ARFF_DATASETS and d not in TEXT_DATASETS]
    if unknown:
        raise SystemExit(
            f"unknown datasets {unknown}; choose from {list(ARFF_DATASETS) + list(TEXT_DATASETS)}"
        )
    if args.eurlex and "eurlex" not in wanted:
        wanted.append("eurlex")
    limits = parse_limits(args.limit_for)

    specs = []
    for name in wanted:
        if name in ARFF_DATASETS:
            folder, file_name, _ = ARFF_DATASETS[name]
            kind = "arff"
        else:
            folder, file_name = TEXT_DATASETS[name]
            kind = "text"
        path = datasets_dir / folder / file_name
        limit = limits.get(name, args.eurlex_limit if name == "eurlex" else args.limit)
        learners = [args.learner]
        if not args.skip_rival and args.learner != RIVAL:
            learners.append(RIVAL)
        if not args.skip_river and name != "eurlex":
            learners += list(RIVER_LEARNERS)
        for learner in learners:
            run_limit = limit
            if learner in RIVER_LEARNERS and args.river_limit is not None:
                run_limit = min(args.river_limit, limit) if limit is not None else args.river_limit
            specs.append(
                {
                    "dataset": name,
                    "path": str(path),
                    "kind": kind,
                    "learner": learner,
                    "limit": run_limit,
                    "embedder": args.embedder,
                    # 4,271 labels x 2**18 hashed columns would need 4.5 GB of weights (doubled while
                    # the label capacity grows): EUR-Lex uses a narrower hashing space.
                    "embedder_kwargs": (
                        {"n_features": args.eurlex_hashing_features}
                        if name == "eurlex" and args.embedder == "hashing"
                        else {}
                    ),
                    "window": args.window,
                    "record_every": args.record_every,
                    "seed": args.seed,
                    "progress": args.progress,
                    "keep_curves": args.keep_curves,
                }
            )

    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_description()
    results = run_all(specs, args.jobs)
    refs = load_references(datasets_dir)
    report = build_report(results, args, refs, started, machine)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "RESULTS.md").write_text(report + "\n")
    payload = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine,
        "date": started,
        "git_commit": git_commit(),
        "results": results,
    }
    (args.output_dir / "results.json").write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.output_dir / 'RESULTS.md'} and {args.output_dir / 'results.json'}", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
