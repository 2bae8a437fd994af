"""The docstring examples of stream/ and operators/ run as tests, each module's once.

pytest collects them with ``--doctest-modules`` (pyproject: the two folders are in ``testpaths``), but would
import each file by its path, as a second copy of the module under another name (``operators.state``
beside ``labelflow.operators.state``): two copies of every class, which breaks checks by class. Here the
modules are imported by their package names instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Generator
from pathlib import Path
from types import ModuleType

import pytest
from _pytest.doctest import DoctestModule

ROOT = Path(__file__).resolve().parent
#: Folder -> import name (pyproject's package-dir).
PACKAGES = {"stream": "labelflow.stream", "operators": "labelflow.operators"}


def module_name(path: Path) -> str | None:
    """The import name of a module file in one of ``PACKAGES``, or None."""
    parts = path.resolve().relative_to(ROOT).with_suffix("").parts if path.is_relative_to(ROOT) else ()
    if not parts or parts[0] not in PACKAGES or parts[-1] == "__main__":
        return None
    names = [PACKAGES[parts[0]], *parts[1:]]
    return ".".join(names[:-1] if names[-1] == "__init__" else names)


class PackageDoctestModule(DoctestModule):
    """The doctests of one module, imported by its package name."""

    def _getobj(self) -> ModuleType:
        name = module_name(self.path)
        assert name is not None
        return importlib.import_module(name)


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Generator[None, list, list]:
    collected = yield
    if file_path.suffix != ".py" or module_name(file_path) is None:
        return collected
    return [PackageDoctestModule.from_parent(parent, path=file_path)]
