"""Read a checkpoint back into a description: labels, label clusters, counters, offsets, versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelflow.stream.checkpoint import FORMAT, CheckpointStore, IncompatibleCheckpointError
from labelflow.stream.model_runtime import ModelSetupError, load_class
from labelflow.stream.quality import QualityTracker


def describe_checkpoint(path: Path | str) -> dict[str, Any]:
    """Everything ``labelflow inspect`` prints, as plain data (the model is rebuilt from its state)."""
    checkpoint = CheckpointStore.load(path)
    class_path = checkpoint.identity.get("model_class")
    if not class_path:
        raise IncompatibleCheckpointError(f"checkpoint {path} does not say which model class wrote it")
    try:
        model = load_class(class_path).from_state(checkpoint.model)
    except (ImportError, AttributeError, ModelSetupError) as exc:
        raise IncompatibleCheckpointError(
            f"cannot rebuild the model of {path} ({class_path}): {exc}"
        ) from None
    labels = [str(label) for label in model.labels]
    partition = model.partition
    clusters = (
        [[labels[i] if 0 <= i < len(labels) else f"#{i}" for i in cluster] for cluster in partition.clusters]
        if partition is not None
        else [[label] for label in labels]
    )
    runtime = checkpoint.runtime
    counters = runtime.meta.get("counters", {})
    feedback = runtime.detach("feedback").meta if "feedback" in runtime.meta.get("children", {}) else {}
    quality_state = runtime.detach("quality")
    quality = QualityTracker.from_state(quality_state, int(quality_state.meta.get("window", 1)))
    return {
        "path": str(checkpoint.path),
        "format": FORMAT,
        "format_version": checkpoint.format_version,
        "seq": checkpoint.seq,
        "created_at": checkpoint.created_at,
        "identity": checkpoint.identity,
        "labels": labels,
        "clusters": clusters,
        "partition_version": partition.version if partition is not None else 0,
        "counters": counters,
        "offsets": {
            topic: {int(p): o for p, o in parts.items()} for topic, parts in checkpoint.offsets.items()
        },
        "waiting_documents": int(
            feedback.get("waiting_documents", len(feedback.get("documents", {}).get("ids", [])))
        ),
        "micro_f1_cumulative": quality.micro_f1_cumulative,
        "scored": quality.scored,
    }
