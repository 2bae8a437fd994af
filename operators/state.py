"""Model state as plain arrays plus JSON metadata: the unit that checkpoints store.

Never pickle: pickles break across library versions and execute code when loaded. A ``State`` is a
JSON-serialisable ``meta`` dict and a flat dict of numpy arrays; nested operators store their state
under a key prefix (``prefixed`` / ``unprefixed``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class State:
    """The serialisable state of an operator.

    >>> s = State(meta={"kind": "demo", "n": 3}, arrays={"w": np.arange(3, dtype=np.float32)})
    >>> inner = State(meta={"a": 1}, arrays={"v": np.ones(2)})
    >>> s.attach("child", inner)
    >>> s.detach("child").meta, s.detach("child").arrays["v"].tolist()
    ({'a': 1}, [1.0, 1.0])
    """

    meta: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def attach(self, name: str, child: State) -> None:
        """Store ``child`` inside this state under ``name``."""
        self.meta.setdefault("children", {})[name] = child.meta
        for key, value in child.arrays.items():
            self.arrays[f"{name}/{key}"] = value

    def detach(self, name: str) -> State:
        """The child state stored under ``name``."""
        prefix = f"{name}/"
        arrays = {k[len(prefix) :]: v for k, v in self.arrays.items() if k.startswith(prefix)}
        return State(meta=self.meta["children"][name], arrays=arrays)

    def save(self, directory: Path) -> None:
        """Write ``meta.json`` and ``arrays.npz`` into ``directory`` (created if missing)."""
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "arrays.npz", "wb") as fh:
            np.savez(fh, **self.arrays)
        (directory / "meta.json").write_text(json.dumps(self.meta, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> State:
        meta = json.loads((directory / "meta.json").read_text())
        with np.load(directory / "arrays.npz", allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        return cls(meta=meta, arrays=arrays)
