"""JSON Schemas of labelflow's messages, generated from the pydantic models in ``messages``.

The committed copies in ``docs/schemas/`` are what producers in other languages and Kafka Connect sinks
read; ``labelflow schemas --out docs/schemas`` (``make schemas``) regenerates them, and a test fails when
they differ from the models. Input messages (``Document``, ``LabelFeedback``) allow additional
properties, as the worker's default ``extra_fields`` policy does; output messages list every field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from labelflow.stream.messages import DeadLetter, Document, DriftAlert, LabelFeedback, Prediction

DIALECT = "https://json-schema.org/draft/2020-12/schema"

# name -> (model, topic setting it travels on, whether it is input the worker validates)
MESSAGES: dict[str, tuple[type[BaseModel], str, bool]] = {
    "document": (Document, "topics.documents", True),
    "label_feedback": (LabelFeedback, "topics.labels", True),
    "prediction": (Prediction, "topics.predictions", False),
    "drift_alert": (DriftAlert, "topics.drift", False),
    "dead_letter": (DeadLetter, "topics.deadletter", False),
}

_INPUT_NOTE = (
    " Fields not listed here follow the worker's extra_fields setting: kept in meta (default), ignored, or"
    " rejected; a misspelt field name (label, txt) is always rejected."
)


def _summary(model: type[BaseModel]) -> str:
    """The docstring's prose: doctest examples left out, reST literals as plain text."""
    prose = (model.__doc__ or "").split(">>>", 1)[0]
    return re.sub(r"\s+", " ", prose.replace("``", "")).strip()


def schema_of(name: str) -> dict[str, Any]:
    """The published JSON Schema of message ``name`` (a key of ``MESSAGES``).

    >>> schema_of("label_feedback")["required"]
    ['id', 'labels']
    """
    model, topic, is_input = MESSAGES[name]
    body = model.model_json_schema(mode="validation")
    body["description"] = _summary(model) + (_INPUT_NOTE if is_input else "")
    if is_input:
        body["additionalProperties"] = True
    return {"$schema": DIALECT, "$id": f"{name}.schema.json", **body, "x-labelflow-topic": topic}


def render(name: str) -> str:
    return json.dumps(schema_of(name), indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write ``<name>.schema.json`` for every message into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in MESSAGES:
        path = directory / f"{name}.schema.json"
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths


def stale_schemas(directory: Path) -> list[str]:
    """Names whose file in ``directory`` is missing or differs from the models (empty: up to date)."""
    stale = []
    for name in MESSAGES:
        path = directory / f"{name}.schema.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != render(name):
            stale.append(name)
    return stale
