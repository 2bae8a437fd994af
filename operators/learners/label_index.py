"""A growing, order-preserving map between label names and dense integer ids."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

from labelflow.operators.state import Stateful


class LabelIndex(Stateful):
    """Label names to dense ids ``0..n-1`` in order of first appearance; never shrinks.

    Names must be JSON-serialisable scalars (strings in the product) because they are checkpointed.

    >>> index = LabelIndex()
    >>> index.ids(["earn", "acq"]), index.ids(["acq", "grain"]), index.names
    ([0, 1], [1, 2], ['earn', 'acq', 'grain'])
    >>> index.ids(["unknown"], add=False)
    []
    """

    state_settings = ("names",)

    def __init__(self, names: Iterable[Hashable] = ()) -> None:
        self._names: list[Hashable] = []
        self._ids: dict[Hashable, int] = {}
        for name in names:
            self.add(name)

    def add(self, name: Hashable) -> int:
        label_id = self._ids.get(name)
        if label_id is None:
            label_id = len(self._names)
            self._ids[name] = label_id
            self._names.append(name)
        return label_id

    def ids(self, names: Iterable[Hashable], *, add: bool = True) -> list[int]:
        """Ids of ``names`` (deduplicated, first-seen order); unknown names are added or skipped.

        A set has no stable order (it depends on the hash seed), so new names from a set are added in
        sorted order: the same stream then gives the same ids in every run.
        """
        if type(names) is list:  # the common case: every name known, none twice (no set, no loop)
            try:
                found = [self._ids[name] for name in names]
            except (KeyError, TypeError):  # a new or unhashable name: the loop below adds or raises
                pass
            else:
                if len(found) < 2 or len(set(found)) == len(found):
                    return found
        if isinstance(names, (set, frozenset)):
            names = sorted(names, key=str)
        known = self._ids.get
        out: list[int] = []
        seen: set[int] = set()
        for name in names:
            label_id = known(name)
            if label_id is None:
                if not add:
                    continue
                label_id = self.add(name)
            if label_id not in seen:
                seen.add(label_id)
                out.append(label_id)
        return out

    def get(self, name: Hashable) -> int | None:
        return self._ids.get(name)

    @property
    def names(self) -> list[Hashable]:
        return list(self._names)

    @property
    def names_view(self) -> Sequence[Hashable]:
        """The names without a copy (read it, never change it: the hot path reads this every document)."""
        return self._names

    def name(self, label_id: int) -> Hashable:
        return self._names[label_id]

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._ids
