"""What a worker keeps besides the model: counters, the feedback store and the quality tracker.

The three change together while a batch is processed and are checkpointed together with the model,
so one object holds them and turns them into one ``State`` (and back).
"""

from __future__ import annotations

from dataclasses import dataclass

from labelflow.operators.state import State
from labelflow.stream.checkpoint import IncompatibleCheckpointError
from labelflow.stream.config import Settings
from labelflow.stream.feedback_store import FeedbackStore
from labelflow.stream.processor import RuntimeCounters
from labelflow.stream.quality import QualityTracker

RUNTIME_STATE_KIND = "labelflow.worker_runtime"
RUNTIME_STATE_VERSION = 1


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
        )
