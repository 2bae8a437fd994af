"""The stateless embed stage (role ``embed``): documents in, the same documents with ``features`` out.

Many embed workers (GPU machines) can share one consumer group; learn workers then read
``topics.embedded`` as their documents topic and skip embedding. Bad input is dead-lettered here too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from labelflow.operators.base import Features, SparseVector
from labelflow.stream.config import Settings
from labelflow.stream.messages import Document, MessageError, Reason, decode_document
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.outputs import OutputMessage, checked, serialize
from labelflow.stream.processor import BatchOutcome, InputRecord, RuntimeCounters, dead_letter_message


def features_payload(x: Features) -> list[float] | dict[int, float]:
    """Features as a document's JSON ``features`` field: a sparse map or a dense list."""
    if isinstance(x, SparseVector):
        return {int(i): float(v) for i, v in zip(x.indices, x.values, strict=True)}
    return [float(v) for v in np.asarray(x, dtype=np.float32)]


class EmbedProcessor:
    """Embeds a batch of documents and re-publishes them with features (key = id)."""

    def __init__(
        self, settings: Settings, runtime: ModelRuntime, counters: RuntimeCounters, worker_id: str
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.counters = counters
        self.worker_id = worker_id

    def _dead_letter(self, out: BatchOutcome, record: InputRecord, error: Exception) -> None:
        out.messages.append(dead_letter_message(self.settings, self.counters, record, error, self.worker_id))

    def process(self, records: Sequence[InputRecord]) -> BatchOutcome:
        out = BatchOutcome()
        started = time.perf_counter()
        docs: list[tuple[InputRecord, Document]] = []
        for record in records:
            self.counters.inc("documents_in")
            try:
                docs.append(
                    (
                        record,
                        decode_document(
                            record.value,
                            self.settings.max_message_bytes,
                            self.settings.extra_fields,
                            limits=self.settings.decode_limits,
                        ),
                    )
                )
            except MessageError as exc:
                self._dead_letter(out, record, exc)
        out.stage_seconds["decode"] += time.perf_counter() - started
        started = time.perf_counter()
        features = self.runtime.features([doc for _, doc in docs])
        out.stage_seconds["embed"] += time.perf_counter() - started
        for (record, doc), x in zip(docs, features, strict=True):
            if isinstance(x, MessageError):
                self._dead_letter(out, record, x)
                continue
            try:
                embedded = doc.model_copy(update={"features": features_payload(x)})
                message = checked(
                    OutputMessage(self.settings.topics.embedded, doc.id.encode("utf-8"), serialize(embedded)),
                    self.settings.max_output_bytes,
                )
            except MessageError as exc:
                self._dead_letter(out, record, exc)
                continue
            except (ValueError, TypeError) as exc:
                self._dead_letter(out, record, MessageError(Reason.PROCESSING_ERROR, str(exc)))
                continue
            out.messages.append(message)
            self.counters.inc("predictions_out")
        return out
