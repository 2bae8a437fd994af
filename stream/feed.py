"""Turn a labelled corpus into a realistic input stream: some documents carry their labels, the labels of
others arrive later as feedback, the rest are never labelled. Used by the demo, tests and benchmarks."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

MessageKind = Literal["document", "feedback"]


@dataclass(frozen=True)
class FeedPlan:
    """How labels reach the worker.

    Parameters
    ----------
    labelled_fraction
        Share of documents sent with their labels inline (learned right after prediction).
    feedback_fraction
        Share of documents sent without labels whose labels follow on the labels topic.
    feedback_delay
        Feedback is sent this many documents after its document.
    seed
        Which documents fall in which group.
    """

    labelled_fraction: float = 0.5
    feedback_fraction: float = 0.3
    feedback_delay: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.labelled_fraction <= 1 and 0 <= self.feedback_fraction <= 1):
            raise ValueError("fractions must lie in [0, 1]")
        if self.labelled_fraction + self.feedback_fraction > 1:
            raise ValueError("labelled_fraction + feedback_fraction must be at most 1")
        if self.feedback_delay < 0:
            raise ValueError("feedback_delay must be non-negative")


def feed(documents: Iterable[dict[str, Any]], plan: FeedPlan) -> Iterator[tuple[MessageKind, dict[str, Any]]]:
    """Documents (dicts with ``id``, ``text``/``features`` and ``labels``) as a sequence of messages.

    >>> docs = [{"id": str(i), "text": "t", "labels": ["a"]} for i in range(4)]
    >>> for kind, message in feed(docs, FeedPlan(0.5, 0.5, feedback_delay=1, seed=3)):
    ...     print(kind, message["id"], message.get("labels"))
    document 0 ['a']
    document 1 ['a']
    document 2 None
    document 3 None
    feedback 2 ['a']
    feedback 3 ['a']
    """
    rng = np.random.default_rng(plan.seed)
    waiting: deque[tuple[int, dict[str, Any]]] = deque()
    position = 0
    for position, document in enumerate(documents):
        u = float(rng.random())
        labels = document.get("labels")
        message = {k: v for k, v in document.items() if k != "labels"}
        if labels is not None and u < plan.labelled_fraction:
            message["labels"] = labels
        elif labels is not None and u < plan.labelled_fraction + plan.feedback_fraction:
            waiting.append((position + plan.feedback_delay, {"id": document["id"], "labels": labels}))
        yield "document", message
        while waiting and waiting[0][0] <= position:
            yield "feedback", waiting.popleft()[1]
    while waiting:
        yield "feedback", waiting.popleft()[1]


def encode(message: dict[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) for a message dict: key = its id."""
    return str(message["id"]).encode("utf-8"), json.dumps(message, ensure_ascii=False).encode("utf-8")
