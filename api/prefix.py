"""Serving under a proxy prefix that the proxy does not strip (JupyterHub services).

``uvicorn --root-path /services/plexhub`` prepends the prefix to every request path: it
expects a proxy that strips the prefix. JupyterHub's proxy forwards the full path, so
``/services/plexhub/api/v1/health`` reaches the app as
``/services/plexhub/services/plexhub/api/v1/health``. This middleware drops the doubled
prefix; requests without the prefix (straight to uvicorn) keep working.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class ForwardedPrefix:
    """Pure ASGI middleware: ``root + root + rest`` becomes ``root + rest``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "") if scope["type"] in ("http", "websocket") else ""
        if root:
            path: str = scope["path"]
            doubled = root + root
            if path == doubled or path.startswith(doubled + "/"):
                scope = dict(scope)
                scope["path"] = path[len(root):]
                raw = scope.get("raw_path")
                if isinstance(raw, bytes) and raw.startswith(doubled.encode()):
                    scope["raw_path"] = raw[len(root.encode()):]
        await self.app(scope, receive, send)
