"""The README's Python API program, extracted from README.md and run as it stands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.broker


def readme_program(marker: str) -> str:
    match = re.search(rf"<!-- readme-test: {marker} -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert match is not None, f"README.md has no python block marked readme-test: {marker}"
    return match.group(1)


def test_the_readme_program_runs_a_worker_with_a_callback(tmp_path: Path) -> None:
    program = readme_program("python-api")
    assert len([line for line in program.splitlines() if line.strip()]) <= 13  # a short program
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELFLOW_")}
    env["LABELFLOW_METRICS__PORT"] = "0"  # the default port may be taken on a test machine
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "1 [] 0"  # predicted before anything was learned
    assert re.fullmatch(r"2 \[.*\] 1", lines[1])  # predicted by the model that learned document 1
    assert any((tmp_path / "readme-checkpoints").glob("ckpt-*"))  # stop() checkpointed
