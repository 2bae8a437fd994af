"""Learning-curve PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelflow.operators.evaluation.plot import plot_curves
from labelflow.operators.evaluation.prequential import evaluate_prequential
from labelflow.operators.io.instances import Instance
from labelflow.operators.learners.baselines import NoChangeClassifier


class EventfulNoChange(NoChangeClassifier):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0
        self.events: list = []

    def learn_one(self, x, y) -> None:
        super().learn_one(x, y)
        self.n += 1
        if self.n % 150 == 0:
            self.events.append(type("Event", (), {"position": self.n})())

    def drain_events(self):
        events, self.events = self.events, []
        return events


def test_png_with_partition_changes(tmp_path: Path) -> None:
    stream = [Instance(str(i), np.zeros(1), None, [f"l{(i // 40) % 3}"], {}) for i in range(400)]
    result = evaluate_prequential(stream, EventfulNoChange(), progress=False, record_every=20, window=100)
    assert result.partition["changes"] == [150, 300]
    path = plot_curves(result, tmp_path / "sub" / "curve.png", dpi=40)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    # The JSON form plots the same way.
    assert plot_curves(result.to_json(), tmp_path / "from-json.png", dpi=40).read_bytes() == data


def test_nothing_to_plot(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no curve points"):
        plot_curves({"curves": []}, tmp_path / "x.png")
