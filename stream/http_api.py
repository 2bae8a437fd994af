"""The HTTP API of a worker (``labelflow serve``): predictions from the live model, liveness, readiness.

Built with FastAPI (served by uvicorn, ``stream/http_server.py``): the OpenAPI document at
``/openapi.json`` (and ``/docs``) comes from the same pydantic models the topics use. Documents are
validated exactly as on the documents topic (``decode_document``: size limit, ``extra_fields`` policy,
misspelt fields), so a document the worker would dead-letter gets a 422 here with the same reason.

Endpoints:

* ``POST /predict``: one document (a ``Document`` JSON object), answers a ``Prediction``;
* ``POST /predict/batch``: ``{"documents": [...]}``, at most ``http.max_batch``, answers
  ``{"predictions": [...]}`` in the same order;
* a request body over ``http.max_body_bytes`` gets a 413 before it is read (``http_body_limit``);
* ``GET /health/live``: 200 while the worker loop runs, 503 once it has ended (restart the process);
* ``GET /health/ready``: 200 when the worker has restored its model and joined its group, 503 while
  it starts or stops (take it out of the load balancer).

Predicting does not learn: labels in a request are ignored, and nothing is published to Kafka.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from labelflow.stream.http_body_limit import BodyLimit
from labelflow.stream.messages import (
    DEFAULT_LIMITS,
    DecodeLimits,
    Document,
    MessageError,
    Prediction,
    decode_document,
    utc_now,
)
from labelflow.stream.model_runtime import ModelRuntime, Scored
from labelflow.stream.schemas import schema_of


class Health(BaseModel):
    """A health answer: ``ok`` and why not."""

    ok: bool
    status: str
    detail: str | None = None


class BatchRequest(BaseModel):
    documents: list[dict[str, Any]] = Field(description="Document objects, as on the documents topic")


class BatchResponse(BaseModel):
    predictions: list[Prediction]


class Problem(BaseModel):
    """Why a request was refused: the dead-letter reason the worker would give, and where."""

    reason: str
    detail: str
    field: str | None = None
    index: int | None = None


@dataclass
class ModelAccess:
    """What the HTTP API needs from a running worker, as callables (the worker's thread owns the rest)."""

    runtime: Callable[[], ModelRuntime | None]  # None until the model is built
    model_version: Callable[[], int]  # labelled documents learned
    live: Callable[[], Health]
    ready: Callable[[], Health]
    max_message_bytes: int
    extra_fields: Any
    max_batch: int
    max_body_bytes: int  # request bodies over it get a 413 before they are read
    limits: DecodeLimits = DEFAULT_LIMITS


class RequestError(Exception):
    def __init__(self, status: int, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.status = status
        self.problem = problem


def _document(raw: Any, access: ModelAccess, index: int | None) -> Document:
    try:
        value = json.dumps(raw).encode("utf-8")
        return decode_document(value, access.max_message_bytes, access.extra_fields, limits=access.limits)
    except MessageError as exc:
        raise RequestError(
            422, Problem(reason=exc.reason.value, detail=exc.detail, field=exc.field, index=index)
        ) from None


def _predict(access: ModelAccess, documents: Sequence[Document]) -> list[Prediction]:
    runtime = access.runtime()
    if runtime is None:
        raise RequestError(503, Problem(reason="not_ready", detail="the model is not loaded yet"))
    started = time.perf_counter()
    features = runtime.features(list(documents))
    for index, x in enumerate(features):
        if isinstance(x, MessageError):
            raise RequestError(
                422, Problem(reason=x.reason.value, detail=x.detail, field=x.field, index=index)
            )
    with runtime.lock:  # one consistent model for the whole request
        results = runtime.predict(features)  # type: ignore[arg-type]
        version, partition = access.model_version(), runtime.partition_version
    latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
    produced_at = utc_now()
    out = []
    for index, (document, result) in enumerate(zip(documents, results, strict=True)):
        if not isinstance(result, Scored):
            raise RequestError(
                500, Problem(reason="processing_error", detail=f"prediction failed: {result!r}", index=index)
            )
        out.append(
            Prediction(
                id=document.id,
                labels=sorted(result.labels),
                scores=result.scores,
                model_version=version,
                partition_version=partition,
                latency_ms=latency_ms,
                produced_at=produced_at,
            )
        )
    return out


def _problem(error: RequestError) -> JSONResponse:
    return JSONResponse(error.problem.model_dump(exclude_none=True), status_code=error.status)


def _health(health: Health) -> JSONResponse:
    return JSONResponse(health.model_dump(exclude_none=True), status_code=200 if health.ok else 503)


_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "a document the worker would dead-letter"},
    503: {"model": Problem, "description": "the model is not loaded yet"},
}


def _request_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint: the published message schema (docs/schemas)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def create_http_app(access: ModelAccess) -> FastAPI:
    """The FastAPI application answering for one worker's live model."""
    app = FastAPI(
        title="labelflow",
        summary="Multi-label predictions from a live, online-learning labelflow worker.",
        version="1",
    )
    app.add_middleware(BodyLimit, max_bytes=access.max_body_bytes)

    document_schema = {k: v for k, v in schema_of("document").items() if not k.startswith(("$", "x-"))}
    batch_schema = {
        "type": "object",
        "required": ["documents"],
        "properties": {
            "documents": {"type": "array", "items": document_schema, "maxItems": access.max_batch}
        },
    }

    @app.post(
        "/predict",
        response_model=Prediction,
        responses=_ERRORS,
        openapi_extra=_request_schema(document_schema),
    )
    def predict_one(document: dict[str, Any] = Body(..., description="A Document object")) -> Any:  # noqa: B008
        """Predict one document with the model as it is now (nothing is learned or published)."""
        try:
            return _predict(access, [_document(document, access, None)])[0]
        except RequestError as exc:
            return _problem(exc)

    @app.post(
        "/predict/batch",
        response_model=BatchResponse,
        responses={**_ERRORS, 413: {"model": Problem, "description": "more documents than http.max_batch"}},
        openapi_extra=_request_schema(batch_schema),
    )
    def predict_batch(request: BatchRequest) -> Any:
        """Predict a batch of documents in one consistent model state; answers in request order."""
        if len(request.documents) > access.max_batch:
            return _problem(
                RequestError(
                    413,
                    Problem(
                        reason="batch_too_large",
                        detail=f"{len(request.documents)} documents; at most {access.max_batch} (http.max_batch)",
                    ),
                )
            )
        try:
            documents = [_document(raw, access, i) for i, raw in enumerate(request.documents)]
            return BatchResponse(predictions=_predict(access, documents))
        except RequestError as exc:
            return _problem(exc)

    @app.get("/health/live", response_model=Health, responses={503: {"model": Health}})
    def live() -> JSONResponse:
        """200 while the worker loop runs; 503 once it has ended."""
        return _health(access.live())

    @app.get("/health/ready", response_model=Health, responses={503: {"model": Health}})
    def ready() -> JSONResponse:
        """200 once the model is restored and the worker has joined its group; 503 before and when stopping."""
        return _health(access.ready())

    return app
