"""The HTTP body bound (``http_body_limit.BodyLimit``): declared and chunked bodies over it are refused
unread, bodies within it reach the application whole. The real server is asked in
tests/integration/test_serve.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

from labelflow.stream.http_body_limit import BodyLimit

Message = MutableMapping[str, Any]


class Recorder:
    """An ASGI application that reads its whole body and answers 200 with its size."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


def call(app: Any, chunks: list[bytes], content_length: int | None = None) -> tuple[list[Message], int]:
    """The messages ``app`` sent for a POST whose body arrives in ``chunks``; how many chunks it read."""
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        if read < len(pending):
            read += 1
            return pending[read - 1]
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, read


def refusal(sent: list[Message]) -> dict[str, Any]:
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    problem: dict[str, Any] = json.loads(sent[1]["body"])
    assert problem["reason"] == "oversize" and "http.max_body_bytes" in problem["detail"]
    return problem


def test_a_declared_body_over_the_bound_is_refused_before_any_of_it_is_read() -> None:
    inner = Recorder()
    sent, read = call(BodyLimit(inner, max_bytes=100), [b"x" * 101], content_length=101)
    assert refusal(sent)["detail"].startswith("the request body is 101 bytes; at most 100 bytes")
    assert read == 0 and inner.bodies == []


def test_a_chunked_body_is_refused_once_it_passes_the_bound() -> None:
    inner = Recorder()
    sent, read = call(BodyLimit(inner, max_bytes=100), [b"x" * 60, b"x" * 60, b"x" * 60])
    refusal(sent)
    assert read == 2 and inner.bodies == []  # the third chunk is never asked for


def test_a_body_within_the_bound_reaches_the_application_whole() -> None:
    inner = Recorder()
    sent, _ = call(BodyLimit(inner, max_bytes=100), [b"a" * 40, b"b" * 60], content_length=100)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"100"
    assert inner.bodies == [b"a" * 40 + b"b" * 60]


def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Message, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    asyncio.run(BodyLimit(inner, max_bytes=1)({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert seen == ["lifespan"]
