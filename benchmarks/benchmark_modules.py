"""Another benchmark's script as a module: benchmarks are scripts in folders (run by path, not a package),
and several share the accuracy benchmark's stream table and run description."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parent


def load_benchmark(folder: str, script: str = "run") -> ModuleType:
    """``benchmarks/<folder>/<script>.py``, loaded once per process (as module ``<folder>_<script>``)."""
    name = f"{folder}_{script}"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / folder / f"{script}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up by name
    spec.loader.exec_module(module)
    return module
