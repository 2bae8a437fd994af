"""What a worker keeps besides the model: counters, the feedback store, the quality tracker, and
the outputs it could not deliver yet (the outbox).

They change together while a batch is processed and are checkpointed together with the model, so one
object holds them and turns them into one ``State`` (and back). The outbox is not empty only when the
worker had to stop while the broker did not take a batch's outputs: the checkpoint then carries them,
and the next start delivers them before reading anything (output stays at least once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from labelflow.operators.state import State
from labelflow.stream.checkpoint import IncompatibleCheckpointError
from labelflow.stream.config import Settings
from labelflow.stream.feedback_store import FeedbackStore
from labelflow.stream.outputs import OutputMessage
from labelflow.stream.processor import RuntimeCounters
from labelflow.stream.quality import QualityTracker

RUNTIME_STATE_KIND = "labelflow.worker_runtime"
RUNTIME_STATE_VERSION = 1
OUTBOX_KIND = "labelflow.outbox"


@dataclass
class RuntimeState:
    """Counters, feedback store and quality tracker of one worker, checkpointed as one ``State``.

    Examples
    --------
    >>> from labelflow.stream.config import Settings
    >>> s = Settings()
    >>> state = RuntimeState.new(s)
    >>> state.counters.inc("documents_in", 3)
    >>> RuntimeState.from_state(state.state(), s).counters.get("documents_in")
    3
    """

    counters: RuntimeCounters
    store: FeedbackStore
    quality: QualityTracker
    outbox: list[OutputMessage] = field(default_factory=list)

    @classmethod
    def new(cls, settings: Settings) -> RuntimeState:
        f = settings.feedback
        return cls(
            RuntimeCounters(),
            FeedbackStore(f.max_entries, f.ttl_s, f.remember_ids, max_bytes=f.max_bytes),
            QualityTracker(settings.metrics.quality_window),
        )

    def state(self) -> State:
        state = State(
            meta={
                "kind": RUNTIME_STATE_KIND,
                "version": RUNTIME_STATE_VERSION,
                "counters": self.counters.as_dict(),
            }
        )
        state.attach("feedback", self.store.state())
        state.attach("quality", self.quality.state())
        if self.outbox:
            state.attach("outbox", outbox_state(self.outbox))
        return state

    @classmethod
    def from_state(cls, state: State, settings: Settings) -> RuntimeState:
        """Rebuild from a checkpoint's runtime state, with the bounds of ``settings``."""
        kind, version = state.meta.get("kind"), state.meta.get("version")
        if kind != RUNTIME_STATE_KIND or version != RUNTIME_STATE_VERSION:
            raise IncompatibleCheckpointError(
                f"runtime state {kind!r} version {version!r} is not "
                f"{RUNTIME_STATE_KIND!r} version {RUNTIME_STATE_VERSION}"
            )
        f = settings.feedback
        children = state.meta.get("children") or {}
        return cls(
            RuntimeCounters.from_dict(state.meta["counters"]),
            FeedbackStore.from_state(
                state.detach("feedback"),
                max_entries=f.max_entries,
                ttl_s=f.ttl_s,
                remember_ids=f.remember_ids,
                max_bytes=f.max_bytes,
            ),
            QualityTracker.from_state(state.detach("quality"), settings.metrics.quality_window),
            outbox_from_state(state.detach("outbox")) if "outbox" in children else [],
        )


def outbox_state(messages: Sequence[OutputMessage]) -> State:
    """Messages as one byte array (keys, values, header values) and their layout as JSON."""
    blobs: list[bytes] = []
    layout: list[list[object]] = []
    for m in messages:
        key = -1 if m.key is None else len(m.key)
        blobs += [m.key or b"", m.value, *(value for _, value in m.headers)]
        layout.append([m.topic, key, len(m.value), [[name, len(value)] for name, value in m.headers]])
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()
    return State(meta={"kind": OUTBOX_KIND, "version": 1, "messages": layout}, arrays={"bytes": data})


def outbox_from_state(state: State) -> list[OutputMessage]:
    if state.meta.get("kind") != OUTBOX_KIND or state.meta.get("version") != 1:
        raise IncompatibleCheckpointError(f"outbox state {state.meta.get('kind')!r} is not {OUTBOX_KIND!r}")
    data = state.arrays["bytes"].tobytes()
    at = 0

    def take(n: int) -> bytes:
        nonlocal at
        if n < 0 or at + n > len(data):
            raise ValueError("outbox layout does not match its bytes")
        chunk, at = data[at : at + n], at + n
        return chunk

    messages: list[OutputMessage] = []
    for topic, key_len, value_len, headers in state.meta["messages"]:
        key = None if key_len == -1 else take(int(key_len))
        value = take(int(value_len))
        header_values = tuple((str(name), take(int(n))) for name, n in headers)
        messages.append(OutputMessage(str(topic), key, value, header_values))
    return messages
