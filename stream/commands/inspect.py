"""``labelflow inspect CHECKPOINT``: what a checkpoint holds — clusters, labels, counts, versions."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labelflow.stream.checkpoint import CheckpointError, CheckpointStore
from labelflow.stream.commands.common import fail, printable
from labelflow.stream.inspection import describe_checkpoint


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect", help="show a checkpoint: label clusters, labels, counters, versions"
    )
    parser.add_argument(
        "checkpoint", help="a checkpoint directory (ckpt-...) or a checkpoint.dir (newest is shown)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.checkpoint)
    if not path.exists():
        return fail(f"{path} does not exist")
    if not (path / "manifest.json").exists():
        paths = CheckpointStore(path).paths()
        if not paths:
            return fail(f"{path} is neither a checkpoint nor a directory holding checkpoints")
        path = paths[-1]
    try:
        report = describe_checkpoint(path)
    except (CheckpointError, ValueError) as exc:
        return fail(str(exc), code=1)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_report(report))
    return 0


def format_report(report: dict[str, Any]) -> str:
    created = datetime.fromtimestamp(report["created_at"], UTC).isoformat(timespec="seconds")
    counters = report["counters"]
    lines = [
        f"checkpoint   {report['path']}",
        f"format       {report['format']} v{report['format_version']}, seq {report['seq']}, written {created}",
        f"model        {report['identity'].get('learner')} ({report['identity'].get('model_class')}), "
        f"embedder {report['identity'].get('embedder')}",
        f"labels       {len(report['labels'])}",
        f"partition    version {report['partition_version']}, {len(report['clusters'])} clusters",
    ]
    for i, cluster in enumerate(report["clusters"]):
        lines.append(f"  cluster {i:>3} ({len(cluster)}): {', '.join(cluster)}")
    learned = counters.get("learned", {})
    lines += [
        f"documents    in {counters.get('documents_in', 0)}, predictions {counters.get('predictions_out', 0)}, "
        f"learned {sum(learned.values())} {dict(learned)}",
        f"feedback     in {counters.get('feedback_in', 0)} {dict(counters.get('feedback', {}))}, "
        f"waiting documents {report['waiting_documents']}",
        f"dead letters {dict(counters.get('dead_letters', {}))}",
        f"drift events {dict(counters.get('drift_events', {}))}",
        f"quality      micro-F1 cumulative {report['micro_f1_cumulative']:.4f} over {report['scored']} labelled documents",
        "offsets      "
        + "; ".join(
            f"{topic} " + " ".join(f"p{p}={o}" for p, o in sorted(parts.items()))
            for topic, parts in sorted(report["offsets"].items())
        ),
    ]
    # Label names, topics and paths come from input: their control characters must not reach the terminal.
    return "\n".join(printable(line) for line in lines)
