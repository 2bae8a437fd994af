"""Per-label routing: documents predicted positive for a label (or a label pattern) go to a topic."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from labelflow.stream.config import RoutingRule


class LabelRouter:
    """Maps a decided label set to the routing topics it selects (each topic at most once).

    Examples
    --------
    >>> router = LabelRouter([RoutingRule(label="sport", topic="t.sport"),
    ...                       RoutingRule(pattern="^sci[.]", topic="t.science")])
    >>> router.topics_for({"sport", "sci.space", "sci.med"})
    ['t.sport', 't.science']
    >>> router.topics_for({"politics"})
    []
    """

    def __init__(self, rules: Sequence[RoutingRule]) -> None:
        self.rules = list(rules)
        self._patterns = [(re.compile(r.pattern) if r.pattern is not None else None) for r in self.rules]
        self._by_label: dict[str, tuple[int, ...]] = {}  # label -> indices of matching rules (memoised)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def _rules_of(self, label: str) -> tuple[int, ...]:
        hit = self._by_label.get(label)
        if hit is None:
            hit = tuple(
                i
                for i, (rule, pattern) in enumerate(zip(self.rules, self._patterns, strict=True))
                if (rule.label == label if pattern is None else pattern.search(label) is not None)
            )
            self._by_label[label] = hit
        return hit

    def topics_for(self, labels: Iterable[str]) -> list[str]:
        selected = sorted({i for label in labels for i in self._rules_of(label)})
        topics: dict[str, None] = {}
        for i in selected:
            topics.setdefault(self.rules[i].topic, None)
        return list(topics)
