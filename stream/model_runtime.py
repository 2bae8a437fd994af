"""The model and embedder a worker runs, behind the few calls the worker makes.

The classifier comes from the learner registry (``labelflow.operators.learners.registry``) and the
embedder from the embedder registry; both are plain operators that know nothing of Kafka. This module
turns validated ``Document`` messages into feature vectors, predicts in micro-batches, learns, and
snapshots / restores the model's ``State``.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from labelflow.operators.base import (
    Features,
    Label,
    MultiLabelClassifier,
    ScoredLabels,
    SparseVector,
    StateNotSupportedError,
    StreamingModel,
)
from labelflow.operators.base import feature_dim as dimension_of
from labelflow.operators.drift.events import DriftEvent
from labelflow.operators.embedders.base import Embedder
from labelflow.operators.state import State
from labelflow.stream.config import ModelSettings
from labelflow.stream.messages import Document, MessageError, Reason

logger = logging.getLogger(__name__)


# Distinct texts the warm-up embeds (its documents reuse their features in turn).
_WARM_UP_TEXTS = 64


class ModelInconsistentError(RuntimeError):
    """A learn step failed after the model had registered new labels: labels without their models.

    The worker must not go on with such a model: it stops (its health check then fails) and its
    restart restores the last checkpoint and relearns from its offsets, so nothing is lost.
    """


class ModelSetupError(RuntimeError):
    """The configured learner or embedder cannot be built."""


@dataclass(frozen=True, slots=True)
class Scored:
    """One prediction: the decided label set and the scores to publish."""

    labels: frozenset[str]
    scores: dict[str, float]


def make_learner(name: str, kwargs: dict[str, Any]) -> StreamingModel:
    from labelflow.operators.learners.registry import make_learner as build

    try:
        return build(name, **kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelSetupError(f"cannot build learner {name!r} with {kwargs}: {exc}") from None


def make_embedder(name: str, kwargs: dict[str, Any]) -> Embedder:
    from labelflow.operators.embedders.registry import make_embedder as build

    try:
        return build(name, **kwargs)
    except (TypeError, ValueError, KeyError, OSError) as exc:
        raise ModelSetupError(f"cannot build embedder {name!r} with {kwargs}: {exc}") from None


def class_path(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def load_class(path: str) -> type[MultiLabelClassifier]:
    """Import ``module:Class``; only labelflow's own models, never arbitrary code named in a file."""
    module_name, _, qualname = path.partition(":")
    if not module_name.startswith("labelflow.operators."):
        raise ModelSetupError(f"refusing to load model class {path!r}: not a labelflow operator")
    obj: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, MultiLabelClassifier)):
        raise ModelSetupError(f"refusing to load model class {path!r}: not a MultiLabelClassifier")
    return obj


class ModelRuntime:
    """A classifier plus the embedder that feeds it.

    Parameters
    ----------
    model
        A :class:`~labelflow.operators.base.StreamingModel` (every ``MultiLabelClassifier`` is one).
    embedder
        Turns document texts into features; documents that carry ``features`` skip it.
    identity
        What a checkpoint of this model must match to be restored (learner, embedder, ...).
    feature_dim
        The model's input dimension (default: the embedder's): documents' dense ``features`` must have
        exactly this many values, sparse maps indices below it, and texts are refused where the
        embedder makes another dimension. Nothing of another dimension reaches the model.
    score_top_k, score_floor
        Which scores a prediction publishes: the ``k`` best (all if None) at or above the floor.
    max_labels
        The label budget: a labelled document that would take the model past this many labels is
        refused (``MessageError`` with reason ``label_budget``, so it is dead-lettered) and the model
        is left as it was; documents with known labels are learned as before. None: no budget.
    new_model
        Builds a new, untrained model of the same learner and settings: what ``warm_up`` runs (None:
        no warm-up, as for a model instance given by the caller, which cannot be rebuilt).

    Examples
    --------
    >>> from labelflow.operators.embedders.registry import make_embedder
    >>> from labelflow.stream.messages import Document
    >>> runtime = ModelRuntime(_ExampleModel(), make_embedder("hashing", n_features=2**10))
    >>> [x.dim for x in runtime.features([Document(id="a", text="corn and wheat")])]
    [1024]
    """

    def __init__(
        self,
        model: StreamingModel,
        embedder: Embedder | None = None,
        *,
        identity: dict[str, Any] | None = None,
        feature_dim: int | None = None,
        score_top_k: int | None = None,
        score_floor: float = 0.0,
        max_labels: int | None = None,
        new_model: Callable[[], StreamingModel] | None = None,
    ) -> None:
        self.model = model
        self.new_model = new_model
        self.embedder = embedder
        self.identity = dict(identity or {})
        self.identity.setdefault("model_class", class_path(model))
        # The model's one input space, fixed here by the settings and never by a document: a model fixes
        # its dimension on the first document it learns, so one record of another dimension (three
        # numbers sent to a text worker) used to take the model and make every later document a dead
        # letter. Given features of another dimension, and texts when model.feature_dim differs from
        # the embedder's, are refused before the model instead.
        self.input_dim = feature_dim or (embedder.dim if embedder is not None else None)
        self.sparse_dim = feature_dim or (embedder.dim if embedder is not None and embedder.sparse else None)
        # Where input_dim comes from, for the errors that refuse another dimension.
        self._input_dim_source = (
            "model.feature_dim" if feature_dim else "its embedder's dimension; set model.feature_dim"
        )
        self.score_top_k = score_top_k
        self.score_floor = score_floor
        self.max_labels = max_labels
        self.n_learned = 0
        # The worker thread learns while HTTP requests (``labelflow serve``) predict: every use of the
        # model holds this lock, so a prediction never reads a half-updated model.
        self.lock = threading.RLock()

    @classmethod
    def from_settings(
        cls,
        settings: ModelSettings,
        model: StreamingModel | None = None,
        embedder: Embedder | None = None,
    ) -> ModelRuntime:
        """The runtime the settings describe; ``model`` / ``embedder`` instances replace the registry's."""
        identity: dict[str, Any] = {}
        new_model: Callable[[], StreamingModel] | None = None
        if model is None:
            learner, arguments = settings.learner, settings.learner_arguments()

            def new_model() -> StreamingModel:
                return make_learner(learner, arguments)

            model = new_model()
            identity.update(learner=settings.learner, learner_kwargs=settings.learner_arguments())
        else:
            identity["learner"] = class_path(model)
        if embedder is None:
            embedder = make_embedder(settings.embedder, dict(settings.embedder_kwargs))
        # A user's own embedder may not name itself; its class then stands for it.
        identity["embedder"] = getattr(embedder, "identity", type(embedder).__name__)
        identity["model_class"] = class_path(model)
        return cls(
            model,
            embedder,
            identity=identity,
            feature_dim=settings.feature_dim,
            score_top_k=settings.score_top_k,
            score_floor=settings.score_floor,
            max_labels=settings.max_labels,
            new_model=new_model,
        )

    # -- features -----------------------------------------------------------------------------------

    def _given_features(self, features: list[float] | dict[int, float]) -> Features:
        if isinstance(features, dict):
            if self.sparse_dim is None:
                raise MessageError(
                    Reason.INVALID_VALUE,
                    "sparse features need model.feature_dim (no sparse embedder)",
                    "features",
                )
            top = max(features)
            if top >= self.sparse_dim:
                raise MessageError(
                    Reason.INVALID_VALUE,
                    f"feature index {top} is outside the dimension {self.sparse_dim}",
                    "features",
                )
            return SparseVector.from_dict(features, self.sparse_dim)
        if self.input_dim is not None and len(features) != self.input_dim:
            raise MessageError(
                Reason.INVALID_VALUE,
                f"features has {len(features)} values; this model takes {self.input_dim} "
                f"({self._input_dim_source})",
                "features",
            )
        return np.asarray(features, dtype=np.float32)

    def features(self, docs: Sequence[Document]) -> list[Features | MessageError]:
        """One feature vector per document, or the error that makes it a dead letter."""
        out: dict[int, Features | MessageError] = {}
        to_embed: list[int] = []
        for i, doc in enumerate(docs):
            if doc.features is not None:
                try:
                    out[i] = self._given_features(doc.features)
                except MessageError as exc:
                    out[i] = exc
            else:
                to_embed.append(i)
        if to_embed:
            if self.embedder is None:
                error = MessageError(
                    Reason.PROCESSING_ERROR, "this worker has no embedder: send features", "text"
                )
                for i in to_embed:
                    out[i] = error
            else:
                texts = [docs[i].text or "" for i in to_embed]
                for i, x in zip(to_embed, self._embed(self.embedder, texts), strict=True):
                    out[i] = x if isinstance(x, MessageError) else self._in_input_space(x)
        return [out[i] for i in range(len(docs))]

    def _in_input_space(self, x: Features) -> Features | MessageError:
        """A text's features ``x``, or the error that refuses them where model.feature_dim differs."""
        if self.input_dim is None or dimension_of(x) == self.input_dim:
            return x
        return MessageError(
            Reason.INVALID_VALUE,
            f"text is embedded into {dimension_of(x)} features; this model takes {self.input_dim} "
            f"({self._input_dim_source}): send features, or configure an embedder of that dimension",
            "text",
        )

    @staticmethod
    def _embed(embedder: Embedder, texts: list[str]) -> list[Features | MessageError]:
        """One row per text; a text the embedder fails on gets the error that dead-letters it."""
        try:
            batch: list[Features | MessageError] = list(embedder.embed_many(texts))
            if len(batch) != len(texts):
                raise ValueError(f"the embedder returned {len(batch)} rows for {len(texts)} texts")
            return batch
        except Exception:  # noqa: BLE001 - isolate the text that breaks the embedder
            logger.exception("event=embed_batch_failed size=%d (retrying one by one)", len(texts))
        rows: list[Features | MessageError] = []
        for text in texts:
            try:
                rows.append(embedder.embed_many([text])[0])
            except Exception as exc:  # noqa: BLE001
                rows.append(
                    MessageError(
                        Reason.PROCESSING_ERROR, f"embedder failed: {type(exc).__name__}: {exc}", "text"
                    )
                )
        return rows

    # -- warm-up ------------------------------------------------------------------------------------

    def warm_up(self, documents: int) -> int:
        """Run a new model of this learner through ``documents`` synthetic labelled documents.

        The learner's compiled kernels (``operators.compiled``) are loaded on their first call, from
        numba's disk cache, and the first load also starts numba itself: about 0.2 s on a 2-core machine
        for the default learner, plus first-call costs in Python, all of which would otherwise fall on
        the first batch the worker reads (its latency, and the throughput of a short stream). A throwaway
        model of the same learner and settings predicts and learns a short seeded synthetic stream
        (featurized by this runtime's embedder; the model this runtime serves is never touched); some
        kernels are first called only after a few hundred documents (the input drift detector's
        reference fit, after 512). Returns how many documents were run: 0 without ``new_model`` or an
        embedder, or when the warm-up failed (logged; the worker goes on, only colder).
        """
        if documents <= 0 or self.new_model is None or self.embedder is None:
            return 0
        from labelflow.operators.datasets.synthetic import SyntheticStream, SyntheticStreamConfig

        started = time.perf_counter()
        try:
            model = self.new_model()
            stream = list(
                SyntheticStream(SyntheticStreamConfig(seed=1, n_documents=documents, drift_events=[]))
            )
            # A few distinct texts are enough to reach every code path; an expensive embedder (a
            # transformer on a CPU) is not made to embed hundreds.
            texts = [document.text for document in stream[:_WARM_UP_TEXTS]]
            features = self.embedder.embed_many(texts)
            for index, document in enumerate(stream):
                x = features[index % len(features)]
                model.predict_with_scores(x)
                model.learn_one(x, document.labels)
            model.predict_with_scores_many(features)
        except Exception:  # noqa: BLE001 - a warm-up failure must not stop the worker
            logger.exception("event=warm_up_failed (the first batch loads what it needs)")
            return 0
        logger.info("event=model_warmed documents=%d seconds=%.3f", documents, time.perf_counter() - started)
        return documents

    # -- prediction and learning --------------------------------------------------------------------

    def _select(self, scores: dict[Label, float], decided: Iterable[Label] = ()) -> dict[str, float]:
        """The published scores: the ``score_top_k`` best at or above the floor, and the decided labels'."""
        floor, top_k = self.score_floor, self.score_top_k
        selected = {str(k): float(v) for k, v in scores.items() if v >= floor}
        if top_k is not None and len(selected) > top_k:
            # Stable: equal scores keep the model's label order.
            selected = dict(sorted(selected.items(), key=itemgetter(1), reverse=True)[:top_k])
        for label in decided:  # a decided label always shows its score, even outside the top k
            if str(label) not in selected and label in scores:
                selected[str(label)] = float(scores[label])
        return selected

    def _scored(self, prediction: ScoredLabels) -> Scored:
        labels, scores = prediction
        return Scored(frozenset(map(str, labels)), self._select(scores, labels))

    def predict_one(self, x: Features) -> Scored:
        return self._scored(self.model.predict_with_scores(x))

    def predict(self, xs: Sequence[Features]) -> list[Scored | Exception]:
        """Predict a run of documents; a document the model fails on gets its exception instead.

        The model gets the whole run in one ``predict_with_scores_many`` call (vectorized where the model
        implements it); when that fails, each document is predicted on its own.
        """
        with self.lock:
            return self._predict(xs)

    def _predict(self, xs: Sequence[Features]) -> list[Scored | Exception]:
        if len(xs) > 1:
            try:
                return [self._scored(prediction) for prediction in self.model.predict_with_scores_many(xs)]
            except Exception:  # noqa: BLE001 - find the document that breaks the model, one by one
                logger.warning("event=predict_batch_failed size=%d (retrying one by one)", len(xs))
        results: list[Scored | Exception] = []
        for x in xs:
            try:
                results.append(self.predict_one(x))
            except Exception as exc:  # noqa: BLE001 - one bad document must not stop the stream
                logger.warning("event=predict_failed error=%r", exc)
                results.append(exc)
        return results

    @property
    def n_labels(self) -> int:
        """Labels the model knows (without copying its label list where the model counts them)."""
        n = getattr(self.model, "n_labels", None)
        return int(n) if n is not None else len(self.model.labels)

    def _new_labels(self, labels: list[str]) -> int:
        """How many of ``labels`` the model does not know yet (without copying its label list)."""
        index = getattr(self.model, "label_index", None)
        known = index if index is not None else set(self.model.labels)
        return len({label for label in labels if label not in known})

    def learn(self, x: Features, labels: Iterable[str]) -> None:
        """Learn one labelled document, all or nothing.

        Raises ``MessageError`` (reason ``label_budget``) before touching the model when the document's
        new labels would pass ``max_labels``, and ``ModelInconsistentError`` when the model failed after
        registering labels (the worker must restart from its checkpoint); any other failure left the
        model's label space as it was.
        """
        with self.lock:
            self._learn(x, list(labels))

    def _learn(self, x: Features, labels: list[str]) -> None:
        n_before = self.n_labels
        if self.max_labels is not None:
            new = self._new_labels(labels)
            if new and n_before + new > self.max_labels:
                raise MessageError(
                    Reason.LABEL_BUDGET,
                    f"{new} new labels would take the model past its budget of {self.max_labels} labels "
                    f"(model.max_labels; it has {n_before}): not learned",
                    "labels",
                )
        try:
            self.model.learn_one(x, labels)
        except Exception as exc:
            if self.n_labels != n_before:
                raise ModelInconsistentError(
                    f"learning failed after registering {self.n_labels - n_before} new labels "
                    f"({type(exc).__name__}: {exc}); the model must be restored from its checkpoint"
                ) from exc
            raise
        self.n_learned += 1

    def drain_events(self) -> list[DriftEvent]:
        return self.model.drain_events()

    # -- what the model looks like ------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        return [str(label) for label in self.model.labels]

    @property
    def n_clusters(self) -> int:
        """Clusters of the model's partition (every label its own cluster when it has none)."""
        partition = self.model.partition
        return self.n_labels if partition is None else partition.n_clusters

    @property
    def partition_version(self) -> int:
        partition = self.model.partition
        return 0 if partition is None else partition.version

    # -- state --------------------------------------------------------------------------------------

    def state(self) -> State:
        with self.lock:
            try:
                return self.model.state()
            except StateNotSupportedError as exc:
                raise ModelSetupError(str(exc)) from None

    def restore(self, state: State) -> None:
        """Replace the model by one rebuilt from ``state`` (same class); ``ValueError`` where it learned
        on another input dimension than this runtime's."""
        try:
            model = type(self.model).from_state(state)
        except StateNotSupportedError as exc:
            raise ModelSetupError(str(exc)) from None
        learned = getattr(model, "input_dim", None)  # the default learner says what it learned on
        if isinstance(learned, int) and self.input_dim is not None and learned != self.input_dim:
            # Every document would be refused: say so at start rather than dead-letter the stream.
            raise ValueError(
                f"the saved model learned features of dimension {learned}, and this worker's input "
                f"dimension is {self.input_dim} ({self._input_dim_source}): set model.feature_dim to {learned} for a "
                "numeric stream, or configure the embedder the model was trained with"
            )
        with self.lock:
            self.model = model


class _ExampleModel(MultiLabelClassifier):
    """A do-nothing model for this module's doctest."""

    def learn_one(self, x: Features, y: Iterable[Label]) -> None:
        pass

    def predict_proba_one(self, x: Features) -> dict[Label, float]:
        return {}
