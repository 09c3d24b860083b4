"""Facts about the request in progress that the audit trail records: a request id, the
client's address and the reason for change sent in the ``X-Plexhub-Reason`` header.

A pure ASGI layer puts them in a context variable; the endpoint (also one run in the thread
pool, which copies the context) and :func:`plexhub.api.audit.record` read them. Outside a
request (the job runner, the CLI) there are none.

The reason header is percent-decoded UTF-8 (``urllib.parse.quote`` it), at most
:data:`REASON_MAX` characters; a longer one is refused with 422 before routing. The request
id is the client's ``X-Request-ID`` when it is a short token, else a new random one.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import unquote

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

REASON_HEADER = "X-Plexhub-Reason"
REASON_MAX = 2000
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class RequestFacts:
    request_id: str | None = None
    client: str | None = None
    reason: str = ""


NONE = RequestFacts()
_current: ContextVar[RequestFacts] = ContextVar("plexhub_request", default=NONE)


def current() -> RequestFacts:
    return _current.get()


def facts_of(scope: Scope) -> RequestFacts | str:
    """The request's facts, or the problem with its reason header."""
    rid = reason = None
    for k, v in scope.get("headers", ()):
        if k == b"x-request-id":
            rid = v.decode("latin-1")
        elif k == b"x-plexhub-reason":
            reason = unquote(v.decode("latin-1"), errors="strict") if b"%" in v \
                else v.decode("latin-1")
    if reason is not None and len(reason) > REASON_MAX:
        return f"{REASON_HEADER}: is longer than {REASON_MAX} characters"
    if reason is not None and "\x00" in reason:
        return f"{REASON_HEADER}: must not contain a NUL character"
    client = scope.get("client")
    return RequestFacts(
        request_id=rid if rid is not None and _REQUEST_ID.match(rid) else uuid.uuid4().hex,
        client=str(client[0])[:100] if client else None, reason=(reason or "").strip())


class RequestContext:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            facts = facts_of(scope)
        except UnicodeDecodeError:
            facts = f"{REASON_HEADER}: is not percent-encoded UTF-8"
        if isinstance(facts, str):
            await JSONResponse({"detail": facts}, status_code=422)(scope, receive, send)
            return
        token = _current.set(facts)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
