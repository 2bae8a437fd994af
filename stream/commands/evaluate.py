"""``labelflow evaluate``: prequential (test-then-train) evaluation of a learner on a file stream, offline.

Reads an ARFF (MEKA/MULAN multi-label) or JSON-lines document file, runs the learner over every
instance (predict first, then learn), prints the final metrics beside the no-change and
majority-label-set baselines, and optionally writes the full results as JSON and the learning
curves as a PNG. Text streams are turned into vectors by an embedder (default: hashing).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelflow.operators.learners.decision_experts import DEFAULT_OBJECTIVE, OBJECTIVES
from labelflow.stream.commands.common import fail

if TYPE_CHECKING:  # the operators are imported when a command runs: `labelflow --help` stays fast
    from labelflow.operators.base import MultiLabelClassifier
    from labelflow.operators.embedders.base import Embedder

log = logging.getLogger(__name__)

DEFAULT_LEARNER = "partitioned"
DEFAULT_EMBEDDER = "hashing"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="prequential evaluation of a learner on an ARFF or JSONL file",
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, metavar="PATH", help="the stream: .arff[.gz] or .jsonl[.gz]")
    parser.add_argument(
        "--format", choices=("arff", "jsonl"), help="file format (default: from the extension)"
    )
    parser.add_argument(
        "--labels-xml", metavar="FILE", help="MULAN label XML for an ARFF file without '-C n'"
    )
    parser.add_argument(
        "--learner", default=DEFAULT_LEARNER, help=f"learner name (default {DEFAULT_LEARNER})"
    )
    parser.add_argument(
        "--objective",
        choices=OBJECTIVES,
        help=f"the metric the learner's decisions maximize (default: the learner's own, {DEFAULT_OBJECTIVE} "
        "for the default learner)",
    )
    parser.add_argument(
        "--embedder", metavar="NAME", help=f"text embedder for JSONL streams (default {DEFAULT_EMBEDDER})"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N instances")
    parser.add_argument("--output", metavar="FILE", help="write the full results (metrics, curves) as JSON")
    parser.add_argument("--plot", metavar="FILE", help="write the learning curves as a PNG")
    parser.add_argument("--seed", type=int, help="random seed for the learner (and Python/numpy)")
    parser.add_argument(
        "--window", type=int, default=1000, help="window of the windowed metrics (default 1000)"
    )
    parser.add_argument(
        "--record-every", type=int, default=100, help="a curve point every N instances (default 100)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from labelflow.operators.evaluation.prequential import evaluate_prequential, format_table
    from labelflow.operators.io.arff import ArffError
    from labelflow.operators.io.jsonl import JsonlError
    from labelflow.operators.io.streams import count_instances, guess_format, open_stream

    for flag, value in (
        ("--limit", args.limit),
        ("--window", args.window),
        ("--record-every", args.record_every),
    ):
        if value is not None and value < (0 if flag == "--limit" else 1):
            return fail(f"{flag} must be {'>= 0' if flag == '--limit' else '>= 1'}, got {value}")
    for flag, target in (("--output", args.output), ("--plot", args.plot)):
        problem = None if target is None else unwritable(Path(target))
        if problem is not None:  # found now, not after a run of many minutes
            return fail(f"{flag} {target}: {problem}")
    data = Path(args.data)
    try:
        fmt = args.format or guess_format(data)
        stream = open_stream(data, format=fmt, label_xml=args.labels_xml)
    except (FileNotFoundError, ArffError, ValueError) as exc:
        return fail(str(exc))
    # The progress bar's total (and so its ETA): a quick scan of the file's lines, seconds at most.
    total = None if args.no_progress else count_instances(data, format=fmt)

    featurizer = None
    if fmt == "jsonl":
        try:
            featurizer = make_text_embedder(args.embedder or DEFAULT_EMBEDDER)
        except (ValueError, TypeError, ImportError, OSError) as exc:
            return fail(f"cannot build embedder {args.embedder or DEFAULT_EMBEDDER!r}: {exc}")
    elif args.embedder:
        return fail("--embedder applies to text (JSONL) streams; ARFF rows already are feature vectors")

    if args.seed is not None:
        seed_everything(args.seed)
    try:
        model = make_named_learner(args.learner, seed=args.seed, objective=args.objective)
    except TypeError as exc:
        if args.objective is not None and "objective" in str(exc):
            return fail(f"learner {args.learner!r} has no objective setting (--objective)")
        return fail(str(exc))
    except (ValueError, KeyError) as exc:
        return fail(str(exc))

    try:
        result = evaluate_prequential(
            stream,
            model,
            featurize=featurizer,
            limit=args.limit,
            window=args.window,
            record_every=args.record_every,
            progress=not args.no_progress,
            learner=args.learner,
            total=total,
        )
    except (ArffError, JsonlError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted", code=130)

    print(format_table(result))
    objective = args.objective or getattr(getattr(model, "decisions", None), "objective", None)
    if objective is not None:
        print(f"objective {objective}: {result.metrics[objective]:.4f}")
    if args.output:
        payload: dict[str, Any] = result.to_json()
        payload["run"] = {
            "data": str(data),
            "format": fmt,
            "learner": args.learner,
            "objective": objective,
            "embedder": (args.embedder or DEFAULT_EMBEDDER) if fmt == "jsonl" else None,
            "embedder_identity": getattr(featurizer, "identity", None),
            "limit": args.limit,
            "seed": args.seed,
            "argv": sys.argv[1:],
        }
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=1, default=_json_default))
        print(f"results written to {out}")
    if args.plot:
        from labelflow.operators.evaluation.plot import plot_curves

        print(f"learning curves written to {plot_curves(result, args.plot)}")
    return 0


def unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written (None when it can): tried for real, since permission bits say
    little to root, and a file that did not exist is removed again."""
    existed = path.exists()
    if path.is_dir():
        return "is a directory"
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        return f"{parent} is a file, not a directory"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as exc:
        return f"cannot be written: {exc.strerror or exc}"
    if not existed:
        path.unlink(missing_ok=True)
    return None


def make_named_learner(
    name: str, *, seed: int | None = None, objective: str | None = None
) -> MultiLabelClassifier:
    """A learner from the learner registry, with a clear error for an unknown name."""
    from labelflow.operators.learners.registry import make_learner

    kwargs: dict[str, Any] = {"seed": seed} if seed is not None else {}
    if objective is not None:
        kwargs["objective"] = objective
    return make_learner(name, **kwargs)


def make_text_embedder(name: str, **kwargs: Any) -> Embedder:
    """A text embedder from the embedder registry."""
    from labelflow.operators.embedders.registry import make_embedder

    return make_embedder(name, **kwargs)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    import numpy as np

    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but the evaluator does not need it
        return
    torch.manual_seed(seed)


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
