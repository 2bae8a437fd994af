"""`labelflow demo` end to end on a small stream: the same code path `make demo` runs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from labelflow.stream.cli import main
from labelflow.stream.demo import DemoOptions, run_demo
from labelflow.stream.feed import FeedPlan

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_demo_on_a_small_stream(tmp_path: Path) -> None:
    out = io.StringIO()
    options = DemoOptions(
        n_documents=1_500,
        work_dir=tmp_path / "demo",
        timeout_s=150,
        plan=FeedPlan(labelled_fraction=0.5, feedback_fraction=0.3, feedback_delay=50, seed=7),
    )
    summary = run_demo(options, out=out)
    text = out.getvalue()
    assert summary.completed, text
    p = summary.progress
    assert summary.documents_sent == 1_500 and p.predictions_out == 1_500
    assert summary.topics["labelflow.predictions"] == 1_500
    assert summary.topics["labelflow.documents"] == 1_500 + summary.bad_sent
    # Every malformed example is in the dead-letter topic, and nothing else is.
    assert summary.bad_sent == 6 and sum(summary.dead_letter_reasons.values()) == 6
    assert set(summary.dead_letter_reasons) == {
        "invalid_json",
        "unknown_field",
        "missing_field",
        "empty_value",
        "wrong_type",
        "invalid_utf8",
    }
    learned = p.counters["learned"]
    assert learned.get("inline", 0) + learned.get("feedback", 0) == p.learned > 0
    assert learned.get("feedback", 0) == summary.feedback_sent
    assert p.labels >= 12 and p.clusters >= 1 and len(summary.stream_drifts) == 4
    assert summary.plot is not None and summary.plot.stat().st_size > 10_000
    assert "labelflow_predictions_out_total 1500.0" in summary.metrics_file.read_text()
    assert summary.topics["labelflow.routed.label_00"] > 0
    for expected in (
        "demo finished",
        "where to look",
        "labelflow.predictions",
        "metrics",
        "checkpoint",
        "plot",
    ):
        assert expected in text
    assert "documents 1,500/1,500" in text  # the live progress line reached the end
    # The checkpoint it points at is readable.
    assert main(["inspect", str(summary.checkpoint_dir), "--json"]) == 0


def test_demo_command_with_a_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "docs.jsonl"
    topics = [["sport"], ["politics"], ["sport", "health"]]
    words = {"sport": "match goal team", "politics": "vote law senate", "health": "doctor clinic"}
    with data.open("w") as fh:
        for i in range(400):
            labels = topics[i % 3]
            fh.write(
                json.dumps(
                    {"id": f"doc-{i}", "text": " ".join(words[label] for label in labels), "labels": labels}
                )
                + "\n"
            )
    code = main(
        [
            "demo",
            "--data",
            str(data),
            "--work-dir",
            str(tmp_path / "w"),
            "--feedback-delay",
            "20",
            "--timeout",
            "120",
        ]
    )
    captured = capsys.readouterr().out
    assert code == 0, captured
    assert "demo finished" in captured and "sent 400" in captured and "predicted 400" in captured
    assert (tmp_path / "w" / "quality.png").exists()
