"""`labelflow evaluate` end to end on slices of a real ARFF file and of Reuters."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from labelflow.operators.base import MultiLabelClassifier
from labelflow.operators.evaluation.plot import drift_detections, plot_curves
from labelflow.operators.evaluation.prequential import evaluate_prequential, format_table
from labelflow.operators.io.instances import Instance
from labelflow.stream.cli import main


def test_arff_slice_writes_table_json_and_png(
    datasets_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, png = tmp_path / "enron.json", tmp_path / "enron.png"
    rc = main(
        [
            "evaluate",
            "--data",
            str(datasets_dir / "enron" / "Enron.arff"),
            "--learner",
            "river-br",
            "--limit",
            "60",
            "--record-every",
            "20",
            "--output",
            str(out),
            "--plot",
            str(png),
            "--seed",
            "1",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Enron: 60 instances, 53 labels, learner river-br" in captured.out
    assert "micro-F1" in captured.out and "no-change" in captured.out
    assert "doc/s" in captured.err  # the progress bar goes to stderr
    data = json.loads(out.read_text())
    assert data["n_instances"] == 60 and data["learner"] == "river-br"
    assert data["run"]["format"] == "arff" and data["run"]["seed"] == 1 and data["run"]["embedder"] is None
    assert [p["position"] for p in data["curves"]] == [20, 40, 60]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_reuters_slice_uses_the_hashing_embedder(
    datasets_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "reuters.json"
    rc = main(
        [
            "evaluate",
            "--data",
            str(datasets_dir / "reuters21578_modapte" / "reuters21578_modapte.jsonl"),
            "--learner",
            "majority-labelset",
            "--limit",
            "150",
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.err == ""
    data = json.loads(out.read_text())
    assert data["n_instances"] == 150 and data["run"]["format"] == "jsonl"
    assert data["run"]["embedder"] == "hashing" and data["run"]["embedder_identity"].startswith("hashing(")
    assert data["feature_seconds"] > 0
    assert data["metrics"]["micro_f1"] == pytest.approx(data["baselines"]["majority-labelset"]["micro_f1"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "{data}/reuters21578_modapte/cat-descriptions_120396.txt"], "cannot tell the format"),
        (["--data", "{data}/nope.arff"], "not found"),
        (
            ["--data", "{data}/medical/Medical.arff", "--learner", "no-such-learner"],
            "unknown learner 'no-such-learner'",
        ),
        (
            ["--data", "{data}/medical/Medical.arff", "--learner", "no-change", "--embedder", "hashing"],
            "--embedder applies to text",
        ),
        (
            ["--data", "{data}/medical/Medical.arff", "--learner", "no-change", "--limit", "-3"],
            "--limit must be >= 0",
        ),
        (
            [
                "--data",
                "{data}/reuters21578_modapte/reuters21578_modapte.jsonl",
                "--learner",
                "no-change",
                "--embedder",
                "nonsense",
            ],
            "cannot build embedder 'nonsense'",
        ),
    ],
)
def test_user_errors_are_one_line_messages(
    datasets_dir: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    rc = main(["evaluate", *[a.format(data=datasets_dir) for a in argv], "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("labelflow: error: ") and message in err
    assert "Traceback" not in err


def test_malformed_arff_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.arff"
    bad.write_text("@relation 'b: -C -1'\n@attribute f numeric\n@attribute l {0,1}\n@data\n1,0\n1,0,1\n")
    rc = main(["evaluate", "--data", str(bad), "--learner", "no-change", "--no-progress"])
    assert rc == 2
    assert f"{bad}:6: expected 2 values, found 3" in capsys.readouterr().err


def test_an_unwritable_output_fails_before_the_run(
    datasets_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    scene = str(datasets_dir / "scene" / "Scene.arff.gz")
    for flag, target in (("--output", a_file / "out.json"), ("--plot", tmp_path)):
        rc = main(["evaluate", "--data", scene, flag, str(target), "--no-progress"])
        captured = capsys.readouterr()
        assert rc == 2 and captured.out == ""  # nothing was evaluated (was: a traceback after the run)
        assert (
            captured.err.startswith(f"labelflow: error: {flag} {target}: ")
            and "Traceback" not in captured.err
        )
    assert not (tmp_path / "out.json").exists()


def test_the_progress_bar_has_a_total_without_limit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "synthetic.jsonl"
    assert main(["generate", "--out", str(data), "--documents", "300", "--no-drift"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data), "--learner", "no-change"]) == 0
    bar = capsys.readouterr().err
    assert "300/300" in bar  # a total, so tqdm shows a percentage and an ETA


class ReportingModel(MultiLabelClassifier):
    """Predicts nothing and reports the given drift events, each when its position is learned."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.n, self.events = 0, events
        self.pending: list[Any] = []

    def learn_one(self, x: Any, y: Any) -> None:
        self.n += 1
        self.pending += [SimpleNamespace(**e) for e in self.events if e["position"] == self.n]

    def predict_proba_one(self, x: Any) -> dict[Any, float]:
        return {}

    def drain_events(self) -> list[Any]:
        events, self.pending = self.pending, []
        return events


def test_drift_detections_are_in_the_summary_and_the_plot(tmp_path: Path) -> None:
    events = [
        {"kind": "performance", "position": 40, "severity": "drift"},
        {"kind": "input", "position": 60, "severity": "warning"},
        {"kind": "performance", "position": 80, "severity": "drift"},
    ]
    results = {}
    for name, reported in (("drift", events), ("quiet", [])):
        stream = [Instance(id=str(i), x=np.ones(2), text=None, labels=["a"]) for i in range(100)]
        model = ReportingModel(reported)
        results[name] = evaluate_prequential(stream, model, progress=False, p_at_k=(), record_every=10)
    assert "drift: 2 detections (performance 2) at 40 ... 80; 1 warning" in format_table(results["drift"])
    assert "drift:" not in format_table(results["quiet"])
    assert drift_detections(results["drift"].to_json()["drift_events"]) == {"performance": [40, 80]}
    drawn = {
        name: plot_curves(result, tmp_path / f"{name}.png").read_bytes() for name, result in results.items()
    }
    assert drawn["drift"] != drawn["quiet"]  # the detections are drawn


def test_the_objective_reaches_the_learner_and_the_summary(
    datasets_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "emotions.json"
    data = str(datasets_dir / "emotions" / "emotions.arff")
    argv = ["evaluate", "--data", data, "--limit", "200", "--no-progress", "--output", str(out)]
    assert main([*argv, "--objective", "subset_accuracy"]) == 0
    summary = json.loads(out.read_text())
    assert summary["run"]["objective"] == "subset_accuracy"
    assert (
        f"objective subset_accuracy: {summary['metrics']['subset_accuracy']:.4f}" in capsys.readouterr().out
    )
    assert main(argv) == 0  # the default learner's own objective is named too
    assert json.loads(out.read_text())["run"]["objective"] == "micro_f1"
    assert main([*argv, "--learner", "no-change", "--objective", "micro_f1"]) == 2
    assert "learner 'no-change' has no objective setting" in capsys.readouterr().err
