"""Model state as plain arrays plus JSON metadata: the unit that checkpoints store.

Never pickle: pickles break across library versions and execute code when loaded. A ``State`` is a
JSON-serialisable ``meta`` dict and a flat dict of numpy arrays; nested operators store their state
under a key prefix (``prefixed`` / ``unprefixed``).
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

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
            np.savez(fh, allow_pickle=False, **self.arrays)  # load() refuses pickles: refuse them here too
        (directory / "meta.json").write_text(json.dumps(self.meta, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> State:
        meta = json.loads((directory / "meta.json").read_text())
        with np.load(directory / "arrays.npz", allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        return cls(meta=meta, arrays=arrays)


class Stateful:
    """Derives ``state()`` / ``from_state()`` from declared fields: the one state convention of operators.

    A subclass names, as class attributes, the attributes that make up its state:

    * ``state_settings``: the constructor's keyword arguments, read back from attributes of the same
      name; stored in ``meta`` under ``state_settings_key`` (or directly in ``meta`` when that is None).
      A setting missing from a state (one written before the setting existed) takes its default;
    * ``state_fields``: learned JSON values (numbers, strings, lists, dicts);
    * ``state_arrays``: numpy arrays; one that is None is left out and restored as None;
    * ``state_children``: nested stateful operators, each stored as a child state (``State.attach``);
      one that is None is left out. A child is restored by the class of the one a fresh object built;
    * ``state_header``: meta entries that name the kind and format version; ``from_state`` refuses a
      state whose entries differ, unless ``state_readable`` lists the found value as still readable.

    The key of an attribute is its name without a leading underscore (``_g2`` -> ``g2``), or what
    ``state_keys`` maps it to. JSON has no infinity: an infinite float is stored as null, and a null
    restores as infinity where a fresh object (or the constructor's default) holds infinity. Tuples are
    stored as lists and restored as tuples where a fresh object holds one. What does not fit a declaration is written by ``_save_state`` and read back by
    ``_load_state``, which runs last (after settings, fields, arrays and children are in place).

    >>> class Counter(Stateful):
    ...     state_header = {"format": "counter/1"}
    ...     state_settings = ("step", "limit")
    ...     state_fields = ("_n",)
    ...     state_arrays = ("totals",)
    ...     def __init__(self, step=1, limit=float("inf")):
    ...         self.step, self.limit, self._n, self.totals = step, limit, 0, np.zeros(2)
    >>> c = Counter(step=2)
    >>> c._n, c.totals[1] = 3, 5.0
    >>> s = c.state()
    >>> s.meta
    {'format': 'counter/1', 'step': 2, 'limit': None, 'n': 3}
    >>> r = Counter.from_state(s)
    >>> r.step, r.limit, r._n, r.totals.tolist()
    (2, inf, 3, [0.0, 5.0])
    >>> Counter.from_state(State(meta={"format": "counter/2"}))
    Traceback (most recent call last):
    ...
    ValueError: cannot restore Counter from state format 'counter/2' (readable: ['counter/1'])
    """

    state_header: ClassVar[dict[str, Any]] = {}
    state_readable: ClassVar[dict[str, tuple[Any, ...]]] = {}
    state_settings: ClassVar[tuple[str, ...]] = ()
    state_settings_key: ClassVar[str | None] = None
    state_fields: ClassVar[tuple[str, ...]] = ()
    state_arrays: ClassVar[tuple[str, ...]] = ()
    state_children: ClassVar[tuple[str, ...]] = ()
    state_keys: ClassVar[dict[str, str]] = {}

    def state(self) -> State:
        """Everything needed to continue exactly where this operator is (JSON meta + numpy arrays)."""
        settings = {self._state_key(name): _to_json(getattr(self, name)) for name in self.state_settings}
        meta: dict[str, Any] = dict(self._state_header())
        if self.state_settings_key is None:
            meta.update(settings)
        else:
            meta[self.state_settings_key] = settings
        meta.update({self._state_key(name): _to_json(getattr(self, name)) for name in self.state_fields})
        state = State(meta=meta)
        for name in self.state_arrays:
            value = getattr(self, name)
            if value is not None:
                state.arrays[self._state_key(name)] = value
        for name in self.state_children:
            child = getattr(self, name)
            if child is not None:
                state.attach(self._state_key(name), child.state())
        self._save_state(state)
        return state

    @classmethod
    def from_state(cls, state: State) -> Self:
        """Rebuild an operator from ``state()`` output; refuses a state of another kind or format."""
        cls._check_header(state.meta)
        stored = state.meta if cls.state_settings_key is None else state.meta[cls.state_settings_key]
        parameters = inspect.signature(cls).parameters
        settings = {}
        for name in cls.state_settings:
            key = cls._state_key(name)
            if key in stored:
                default = parameters[name].default if name in parameters else None
                settings[name] = _from_json(stored[key], default)
        obj = cls._from_settings(settings)
        for name in cls.state_fields:
            setattr(obj, name, _from_json(state.meta[cls._state_key(name)], getattr(obj, name)))
        for name in cls.state_arrays:
            value = state.arrays.get(cls._state_key(name))
            setattr(obj, name, None if value is None else np.array(value))
        children = state.meta.get("children", {})
        for name in cls.state_children:
            key, fresh = cls._state_key(name), getattr(obj, name)
            if key in children:
                setattr(obj, name, type(fresh).from_state(state.detach(key)))
            elif fresh is not None:
                raise KeyError(f"{cls.__name__} state has no {key!r}")
        obj._load_state(state)
        return obj

    @classmethod
    def _from_settings(cls, settings: dict[str, Any]) -> Self:
        """A fresh operator built with the stored settings (by keyword; override for other signatures)."""
        return cls(**settings)

    def _save_state(self, state: State) -> None:
        """Add to ``state`` what the declarations do not cover."""

    def _load_state(self, state: State) -> None:
        """Restore what ``_save_state`` added."""

    @classmethod
    def _state_header(cls) -> dict[str, Any]:
        return cls.state_header

    @classmethod
    def _check_header(cls, meta: dict[str, Any]) -> None:
        for key, expected in cls._state_header().items():
            found = meta.get(key)
            readable = (expected, *cls.state_readable.get(key, ()))
            if found not in readable:
                raise ValueError(
                    f"cannot restore {cls.__name__} from state {key} {found!r} (readable: {list(readable)})"
                )

    @classmethod
    def _state_key(cls, name: str) -> str:
        return cls.state_keys.get(name, name.lstrip("_"))


def _to_json(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, tuple | list):
        return [_to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_json(value: Any, like: Any) -> Any:
    """``value`` as stored, with a null restored as infinity and a list as a tuple where ``like`` (a
    fresh object's value, or the constructor's default) is infinite or a tuple."""
    if value is None and isinstance(like, float) and math.isinf(like):
        return like
    if isinstance(value, list) and isinstance(like, tuple):
        return tuple(value)
    return value
