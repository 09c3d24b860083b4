"""Malformed input refused at the edge, before routing: a NUL character in the URL.

No id, code, name, file path or query value of this API may hold a NUL (``%00``): PostgreSQL
refuses it in any text value (a ``DataError``, once a 500), the filesystem ends a name at it,
and SQLite would store it as given. This pure ASGI layer answers 422 with one line naming
the parameter, for every route (the tile fast lane and the portal included). JSON bodies get
the same rule from :class:`plexhub.api.schemas.Strict`; ``api.errors`` maps a ``DataError``
that still reaches the catalog to 422 as a last net.

The check costs one substring search of the path and of the raw query per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

NUL = "\x00"
RULE = "must not contain a NUL character (%00)"


def _routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route with a path pattern, included routers followed (best effort: the naming
    of the parameter falls back to "the URL path")."""
    for route in routes:
        if getattr(route, "path_regex", None) is not None and not hasattr(route, "routes"):
            yield route
        inner = getattr(route, "routes", None) or \
            getattr(getattr(route, "original_router", None), "routes", None)
        if inner:
            yield from _routes(inner)


def _path_parameter(scope: Scope) -> str:
    """The name of the path parameter that holds the NUL, from the route the path matches."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        path = path[len(root):]
    app: Any = scope.get("app")
    for route in _routes(getattr(app, "routes", ())):
        m = route.path_regex.match(path)
        if m is not None:
            for name, value in m.groupdict().items():
                if NUL in value:
                    return f"path parameter {name!r}"
    return "the URL path"


def nul_problem(scope: Scope) -> str | None:
    """One line naming where the request's path or query holds a NUL, or None."""
    if NUL in scope.get("path", ""):
        return f"{_path_parameter(scope)}: {RULE}"
    raw: bytes = scope.get("query_string", b"")
    if b"%00" in raw or b"\x00" in raw:
        for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            if NUL in key:
                return f"query parameter names: {RULE}"
            if NUL in value:
                return f"query parameter {key!r}: {RULE}"
    return None


class RejectNul:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = nul_problem(scope)
            if problem is not None:
                await JSONResponse({"detail": problem}, status_code=422)(scope, receive, send)
                return
        await self.app(scope, receive, send)
