"""The demo's status line: what it shows before and after the first labelled document."""

from __future__ import annotations

import io

from labelflow.stream.demo import _Display
from labelflow.stream.worker import WorkerProgress


def _progress(learned: int, micro_f1_window: float) -> WorkerProgress:
    return WorkerProgress(
        started_at=0.0,
        batches=1,
        documents_in=10,
        feedback_in=0,
        predictions_out=10,
        learned=learned,
        dead_letters=0,
        micro_f1_window=micro_f1_window,
        micro_f1_cumulative=micro_f1_window,
        labels=3,
        clusters=1,
        partition_version=1,
        drift_events=0,
        waiting_documents=0,
        checkpoints=0,
        assigned=(),
        counters={},
    )


def _line(progress: WorkerProgress) -> str:
    out = io.StringIO()  # not a terminal: one line per update
    _Display(out, total=100).update(progress, force=True)
    return out.getvalue()


def test_no_score_is_shown_before_the_first_labelled_document() -> None:
    line = _line(_progress(learned=0, micro_f1_window=1.0))  # the tracker's empty-window convention
    assert "documents 10/100" in line and "micro-F1 (window) - |" in line


def test_the_window_score_is_shown_once_documents_are_learned() -> None:
    assert "micro-F1 (window) 0.875 |" in _line(_progress(learned=4, micro_f1_window=0.875))
