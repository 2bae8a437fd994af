"""Learning curves of a prequential run as a PNG (matplotlib, headless Agg backend).

Three panels over the stream position: windowed subset accuracy, micro-F1 and macro-F1 of the model
(solid) and of the two trivial baselines (dashed), with the model's label-partition changes drawn as
thin vertical lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelflow.operators.evaluation.prequential import BASELINES, PrequentialResult
from labelflow.operators.optional import import_optional

PANELS = (("subset_accuracy", "subset accuracy"), ("micro_f1", "micro-F1"), ("macro_f1", "macro-F1"))
_BASELINE_STYLE = {"no-change": "tab:gray", "majority-labelset": "tab:orange"}


# Partition changes (label_structure) are drawn apart, in red, as before.
_DRIFT_COLOURS = {"performance": "tab:orange", "label_prior": "tab:purple", "input": "tab:brown"}


def drift_detections(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Positions of the drift detections (not warnings) by kind, label-structure changes left out.

    >>> drift_detections([{"kind": "input", "position": 5}, {"kind": "input", "position": 9, "severity": "warning"},
    ...                   {"kind": "label_structure", "position": 7}])
    {'input': [5]}
    """
    found: dict[str, list[int]] = {}
    for event in events:
        if event.get("severity", "drift") == "drift" and event.get("kind") != "label_structure":
            found.setdefault(str(event["kind"]), []).append(int(event["position"]))
    return found


def plot_curves(result: PrequentialResult | dict[str, Any], path: Path | str, *, dpi: int = 110) -> Path:
    """Write the learning-curve PNG of ``result`` (a result or its ``to_json()`` dict) to ``path``."""
    matplotlib = import_optional("matplotlib", extra="plots")
    matplotlib.use("Agg", force=False)
    plt = import_optional("matplotlib.pyplot", extra="plots")

    data = result.to_json() if isinstance(result, PrequentialResult) else result
    curves = data.get("curves") or []
    if not curves:
        raise ValueError("the result has no curve points to plot")
    positions = [point["position"] for point in curves]
    changes = (data.get("partition") or {}).get("changes") or []
    detections = drift_detections(data.get("drift_events") or [])
    window = data.get("window")

    fig, axes = plt.subplots(len(PANELS), 1, figsize=(9, 7.5), sharex=True)
    try:
        for ax, (key, title) in zip(axes, PANELS, strict=True):
            model_values = [p["window"][key] for p in curves]
            ax.plot(positions, model_values, color="tab:blue", lw=1.6, label=data.get("learner", "model"))
            for name in BASELINES:
                values = [p.get("baselines", {}).get(name, {}).get(key) for p in curves]
                if any(v is not None for v in values):
                    ax.plot(
                        positions,
                        values,
                        color=_BASELINE_STYLE.get(name, "black"),
                        lw=1.1,
                        ls="--",
                        label=name,
                    )
            for kind, marks in detections.items():
                for i, mark in enumerate(marks):
                    ax.axvline(
                        mark,
                        color=_DRIFT_COLOURS.get(kind, "tab:gray"),
                        lw=0.8,
                        ls=":",
                        alpha=0.7,
                        label=f"{kind} drift ({len(marks)})" if i == 0 else None,
                    )
            for i, position in enumerate(changes):
                ax.axvline(
                    position,
                    color="tab:red",
                    lw=0.6,
                    alpha=0.45,
                    label="partition change" if i == 0 else None,
                )
            ax.set_ylabel(title)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(True, alpha=0.3)
        axes[0].legend(loc="lower right", fontsize=8, ncol=2)
        axes[-1].set_xlabel("instances seen")
        fig.suptitle(
            f"{data.get('dataset', '')}: prequential metrics over a sliding window of {window} instances",
            fontsize=11,
        )
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path
