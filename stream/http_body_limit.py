"""A bound on HTTP request bodies, enforced before the application reads them (ASGI middleware).

FastAPI reads and parses a whole request body before any handler runs, so the per-document size limit
(``max_message_bytes``) was checked only after a body of any size had been parsed: a 200 MB body cost
the worker's process about 950 MB of memory and 4 s of CPU before its 422 (measured). The worker and
its HTTP API share one process, so a few such requests could end the worker. Here a body whose
declared ``Content-Length`` is over the bound is refused at once, and a body sent without one (chunked)
is refused as soon as what has arrived passes it; nothing over the bound is ever held.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class BodyLimit:
    """Answers 413 (reason ``oversize``, as a dead letter would say) to a request body over ``max_bytes``.

    Other requests reach ``app`` with their body, read here first (at most ``max_bytes`` of it).
    """

    def __init__(self, app: App, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"the request body is {declared} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send, f"the request body is over that ({size} bytes received so far)")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: Message | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay() -> Message:
            nonlocal body
            if body is not None:
                message, body = body, None
                return message
            return await receive()  # after the body: a disconnect, as the server reports it

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, what: str) -> None:
        detail = f"{what}; at most {self.max_bytes} bytes (http.max_body_bytes)"
        problem = {"reason": "oversize", "detail": detail}
        payload = json.dumps(problem, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        # The unread rest of the body makes the connection unusable for another request: close it.
        headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: MutableMapping[str, Any]) -> int | None:
    """The declared body size, or None (absent, or not a number: the server rejects those itself)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
