"""The wheel contains every sub-package: pyproject lists packages explicitly (the import names live
under `labelflow` while the folders are the repository's fixed top level)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_every_sub_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = set()
    for import_name, folder in config["package-dir"].items():
        root = REPO_ROOT / folder
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root)
            on_disk.add(".".join([import_name, *relative.parts]))
    assert on_disk - listed == set(), (
        f"sub-packages missing from pyproject's packages list: {sorted(on_disk - listed)}"
    )
    assert listed - on_disk == set(), (
        f"pyproject lists packages that do not exist: {sorted(listed - on_disk)}"
    )
