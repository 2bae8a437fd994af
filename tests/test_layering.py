"""The layering contract (import-linter, run by `make check` in `make test`) holds, and it can fail.

The second part copies stream/ and operators/ into a temporary ``labelflow/`` tree, adds one forbidden
import and runs ``lint-imports`` on the copy with the repository's own pyproject.toml (so the contracts
checked here are the ones `make check` uses, never a second copy of them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contract_names() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [contract["name"] for contract in config["tool"]["importlinter"]["contracts"]]


def lint_imports(root: Path, python_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if python_path is not None:
        # Before the editable install: `labelflow.*` resolves to the copy.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(python_path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_repository_keeps_every_contract() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in contract_names():
        assert f"{name} KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "broken"),
    [
        # operators/ never imports the runtime.
        ("operators/learners/label_index.py", "import labelflow.stream.config", 0),
        # operators/ never imports Kafka.
        ("operators/embedders/base.py", "import kafka", 0),
        # drift detectors never import learners.
        ("operators/drift/events.py", "import labelflow.operators.learners.linear", 1),
    ],
)
def test_a_forbidden_import_breaks_the_contract_it_names(
    tmp_path: Path, module: str, forbidden_import: str, broken: int
) -> None:
    tree = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("stream", "operators"):
        shutil.copytree(REPO / folder, tree / "labelflow" / folder, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    names = contract_names()

    clean = lint_imports(tree, python_path=tree)
    assert clean.returncode == 0, clean.stdout + clean.stderr  # the copy is what gets analysed

    target = tree / "labelflow" / module
    target.write_text(target.read_text() + f"\n{forbidden_import}  # the deliberately wrong import\n")
    result = lint_imports(tree, python_path=tree)
    assert result.returncode != 0
    assert f"{names[broken]} BROKEN" in result.stdout, result.stdout
    for i, name in enumerate(names):
        if i != broken:
            assert f"{name} KEPT" in result.stdout
