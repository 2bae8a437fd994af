"""labelflow's runtime: settings, messages, Kafka I/O, the worker, checkpoints, metrics, the CLI.

The Python API is one object, ``labelflow.stream.Application`` (defined in ``labelflow.stream.app``); it
is loaded on first use, so importing a light module such as ``labelflow.stream.messages`` does not pull
in Kafka and the worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labelflow.stream.app import Application

__all__ = ["Application"]


def __getattr__(name: str) -> Any:
    if name == "Application":
        from labelflow.stream.app import Application

        return Application
    raise AttributeError(f"module 'labelflow.stream' has no attribute {name!r}")
