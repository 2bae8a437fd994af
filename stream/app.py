"""The Python API: one ``Application`` object composes a worker from settings, a learner, an embedder and
callbacks, and runs it.

>>> from labelflow.stream import Application
>>> app = Application(brokers="127.0.0.1:9092", group_id="news", documents_topic="news.documents")
>>> app.settings.topics.documents, app.settings.group_id
('news.documents', 'news')
>>> @app.on_prediction
... def show(prediction):
...     print(prediction.id, prediction.labels)

``app.run()`` then blocks until ``app.stop()`` (from a callback or another thread) or SIGTERM/Ctrl-C;
``app.start()`` runs it on a background thread instead. Everything the ``labelflow run`` worker does
holds here (checkpoints, dead letters, drift alerts, metrics), since it is the same ``Worker``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from labelflow.operators.base import MultiLabelClassifier
from labelflow.operators.embedders.base import Embedder
from labelflow.stream.config import Settings, load_settings
from labelflow.stream.http_server import HttpServer, worker_access
from labelflow.stream.kafka_io import build_producer, ensure_topics, worker_topics
from labelflow.stream.messages import DeadLetter, Document, DriftAlert, Prediction
from labelflow.stream.model_runtime import ModelRuntime
from labelflow.stream.outputs import OutputMessage
from labelflow.stream.worker import Worker, WorkerProgress

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
Callback = Callable[[M], object]


class Application:
    """A labelflow worker built in Python: source topics, embedder, learner, sinks and callbacks.

    Parameters
    ----------
    settings
        Complete settings; default: ``LABELFLOW_*`` environment variables and the defaults, changed by
        the keyword arguments below.
    brokers, group_id, documents_topic, labels_topic, predictions_topic, checkpoint_dir
        The most used settings by name (None leaves the setting as it is).
    learner
        A ``MultiLabelClassifier`` instance (needs ``state``/``from_state`` to be checkpointed) or a
        learner registry name; default ``settings.model.learner``.
    embedder
        An ``Embedder`` instance or an embedder registry name; default ``settings.model.embedder``.
    **values
        Any other setting, nested keys spelt with a double underscore: ``batch__size=100``,
        ``metrics__port=-1``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        brokers: str | None = None,
        group_id: str | None = None,
        documents_topic: str | None = None,
        labels_topic: str | None = None,
        predictions_topic: str | None = None,
        checkpoint_dir: str | Path | None = None,
        learner: MultiLabelClassifier | str | None = None,
        embedder: Embedder | str | None = None,
        **values: Any,
    ) -> None:
        named = {
            "brokers": brokers,
            "group_id": group_id,
            "topics.documents": documents_topic,
            "topics.labels": labels_topic,
            "topics.predictions": predictions_topic,
            "checkpoint.dir": None if checkpoint_dir is None else str(checkpoint_dir),
        }
        overrides = {key: value for key, value in named.items() if value is not None}
        overrides.update({key.replace("__", "."): value for key, value in values.items()})
        if isinstance(learner, str):
            overrides["model.learner"] = learner
        if isinstance(embedder, str):
            overrides["model.embedder"] = embedder
        self.settings = (
            load_settings(None, overrides) if settings is None else _with_values(settings, overrides)
        )
        self._learner = learner if isinstance(learner, MultiLabelClassifier) else None
        self._embedder = embedder if isinstance(embedder, Embedder) else None
        self._callbacks: dict[type[BaseModel], list[Callable[[Any], object]]] = {
            Prediction: [],
            DriftAlert: [],
            DeadLetter: [],
        }
        self._worker: Worker | None = None
        self.http_port: int | None = None  # the HTTP API's port once it listens (http.port >= 0)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- callbacks ------------------------------------------------------------------------------------

    def on_prediction(self, callback: Callback[Prediction]) -> Callback[Prediction]:
        """Call ``callback(prediction)`` for every prediction once it is published (usable as a decorator)."""
        self._callbacks[Prediction].append(callback)
        return callback

    def on_drift(self, callback: Callback[DriftAlert]) -> Callback[DriftAlert]:
        """Call ``callback(alert)`` for every drift alert once it is published."""
        self._callbacks[DriftAlert].append(callback)
        return callback

    def on_dead_letter(self, callback: Callback[DeadLetter]) -> Callback[DeadLetter]:
        """Call ``callback(letter)`` for every input sent to the dead-letter topic."""
        self._callbacks[DeadLetter].append(callback)
        return callback

    def _dispatch(self, messages: Sequence[OutputMessage]) -> None:
        topics = self.settings.topics
        kinds: dict[str, type[BaseModel]] = {
            topics.predictions: Prediction,
            topics.drift: DriftAlert,
            topics.deadletter: DeadLetter,
        }
        for message in messages:
            kind = kinds.get(message.topic)
            if kind is None or not self._callbacks[kind]:
                continue
            try:
                value = kind.model_validate_json(message.value)
            except ValidationError:
                logger.warning("event=callback_message_unreadable topic=%s", message.topic)
                continue
            for callback in self._callbacks[kind]:
                try:
                    callback(value)
                except Exception:  # noqa: BLE001 - one failing callback must not starve the others
                    logger.exception("event=callback_failed callback=%s", _name(callback))

    # -- building and running -------------------------------------------------------------------------

    def build_runtime(self) -> ModelRuntime:
        """The model and embedder this application runs (registries for names, instances as given)."""
        return ModelRuntime.from_settings(self.settings.model, self._learner, self._embedder)

    @property
    def worker(self) -> Worker:
        """The worker (built on first use; one per application)."""
        if self._worker is None:
            self._worker = Worker(
                self.settings,
                runtime=self.build_runtime(),
                handle_signals=threading.current_thread() is threading.main_thread(),
                on_outputs=self._dispatch,
            )
        return self._worker

    def run(self) -> None:
        """Run the worker in this thread until ``stop()`` or SIGTERM/Ctrl-C.

        With ``http.port`` set (0 or more), the HTTP API (``labelflow serve``) answers from the live model
        meanwhile; its port is bound first, so a taken port fails before the model loads.
        """
        worker = self.worker
        finished = threading.Event()
        server = None
        if self.settings.http.port >= 0:
            server = HttpServer(worker_access(worker, self.settings, finished), self.settings.http)
            self.http_port = server.bind()
            server.start()
        try:
            worker.run()
        finally:
            finished.set()
            if server is not None:
                server.stop()

    def start(self, timeout_s: float = 60.0) -> Application:
        """Run the worker on a background thread; returns once it is subscribed to its topics."""
        if self._thread is not None:
            raise RuntimeError("this application was started already")
        worker = self.worker
        worker.handle_signals = False

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # noqa: BLE001 - re-raised by stop() and start()
                self._error = exc

        self._thread = threading.Thread(target=target, name="labelflow-app", daemon=True)
        self._thread.start()
        while not worker.ready.wait(0.1):
            if not self._thread.is_alive():
                break
            timeout_s -= 0.1
            if timeout_s <= 0:
                raise TimeoutError("the worker did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        """Finish the batch, flush, checkpoint, commit and leave the group; waits when ``start()`` ran."""
        if self._worker is not None:
            self._worker.stop()
        if self._thread is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise TimeoutError("the worker did not stop in time")
            if self._error is not None:
                raise self._error

    def progress(self) -> WorkerProgress:
        return self.worker.progress()

    def __enter__(self) -> Application:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- sending --------------------------------------------------------------------------------------

    def send(self, documents: Iterable[Document | Mapping[str, Any]], topic: str | None = None) -> int:
        """Produce documents (models or plain dicts) to the documents topic, key = id; the number sent.

        Topics are created first when ``create_topics`` is on. For examples and tests: production
        systems produce with their own clients.
        """
        settings = self.settings
        target = topic or settings.topics.documents
        if settings.create_topics:
            ensure_topics(settings, {**worker_topics(settings), target: settings.topics.partitions})
        producer = build_producer(settings, client_id="labelflow-app-producer")
        count = 0
        try:
            for item in documents:
                document = item if isinstance(item, Document) else Document.model_validate(dict(item))
                producer.send(target, key=document.id.encode("utf-8"), value=document.to_bytes())
                count += 1
            producer.flush()
        finally:
            producer.close(timeout=5)
        return count


def _with_values(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """A copy of ``settings`` with dotted ``overrides`` applied, validated again (secrets kept: a Python
    dump keeps ``SecretStr`` values, a JSON dump would mask them)."""
    if not overrides:
        return settings
    values = settings.model_dump()
    for dotted, value in overrides.items():
        node = values
        *sections, name = dotted.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    return load_settings(None, values)


def _name(callback: Callable[..., object]) -> str:
    return getattr(callback, "__qualname__", type(callback).__name__)
