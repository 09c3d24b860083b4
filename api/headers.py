"""Security headers on every response: nothing the API serves is rendered actively by a browser.

Bytes from source files (the original OME-XML, chunks, names) and from users (notebooks,
presets) are served from the API's own origin, which also accepts the portal's session
cookie. So every response carries

- ``X-Content-Type-Options: nosniff`` (a browser never guesses HTML or script from bytes);
- ``Content-Security-Policy: sandbox; default-src 'none'`` unless the route set its own
  policy (the portal's pages, ``api.portal.web``, which run its own script; the notebook
  HTML page, which adds ``sandbox`` itself): a document opened from the API runs no script,
  loads nothing and gets an opaque origin, so it cannot use the visitor's cookie;
- ``Referrer-Policy: no-referrer`` unless the route set one (the portal: ``same-origin``).

A pure ASGI layer, outermost, so the tile fast lane's answers (``api.tilelane``) get the same
headers; the tuples are built once, and a response start costs one scan of its headers.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SANDBOX = "sandbox; default-src 'none'"
INERT = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": SANDBOX,
         "Referrer-Policy": "no-referrer"}
_DEFAULTS = tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in INERT.items())
_NAMES = frozenset(name for name, _ in _DEFAULTS)


def inert(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` plus each default the response does not set itself (a new list)."""
    present = {name.lower() for name, _ in headers if name.lower() in _NAMES}
    if len(present) == len(_NAMES):
        return list(headers)
    return [*headers, *(h for h in _DEFAULTS if h[0] not in present)]


class InertHeaders:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_inert(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": inert(message.get("headers") or [])}
            await send(message)

        await self.app(scope, receive, send_inert)
