"""Request body size limits: a pure ASGI layer that answers 413 before a large body is read.

A request whose ``Content-Length`` is over its route's limit is answered at once, without
reading a byte of the body; a body without a length (chunked) is counted as the application
reads it, and the read that passes the limit fails with a 413. Nothing is buffered here.

The limits are in ``plexhub.limits``: :data:`~plexhub.limits.REQUEST_BODY_BYTES` for every
route, except the few that carry larger documents (:data:`ROUTES`).
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plexhub.limits import BATCH_REQUEST_BYTES, NOTEBOOK_REQUEST_BYTES, REQUEST_BODY_BYTES

# (method, path pattern matched at the end of the path, limit): prefixes may precede it
ROUTES: tuple[tuple[str, re.Pattern[str], int], ...] = (
    ("POST", re.compile(r"/api/v1/studies/[^/]+/notebooks$"), NOTEBOOK_REQUEST_BYTES),
    ("POST", re.compile(r"/api/v1/studies/[^/]+/images:batch$"), BATCH_REQUEST_BYTES),
)


def limit_for(method: str, path: str) -> int:
    for m, pattern, limit in ROUTES:
        if method == m and pattern.search(path):
            return limit
    return REQUEST_BODY_BYTES


def _detail(limit: int) -> str:
    return (f"request body: is larger than this route's limit of {limit} bytes "
            "(send a smaller document; the limits are listed in plexhub.limits)")


class BodyLimit:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["method"], scope["path"])
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None:
            text = length.decode("latin-1").strip()
            if not text.isdigit() or len(text) > 18:
                await _answer(send, 400, "content-length: is not a byte count")
                return
            if int(text) > limit:
                await _answer(send, 413, _detail(limit), close=True)
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _detail(limit))
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except HTTPException as exc:  # a body read outside FastAPI's handlers
            if exc.status_code != 413 or started:
                raise
            await _answer(send, 413, str(exc.detail), close=True)


async def _answer(send: Send, status: int, detail: str, close: bool = False) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if close:  # the unread body must not be taken for the next request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
