"""What every portal page shares: templates, URLs under the mount prefix, security
headers, and the route class that turns "no session" into a redirect to the login page and
"not found / not visible" into a 404 page.

Authentication is only ``CurrentUser`` (``plexhub.api.deps``): a bearer token or the
``plexhub-session`` cookie today, JupyterHub's login in hub mode; the portal does not care.
A page's scripts send ``X-Plexhub-CSRF`` (from its ``csrf-token`` meta tag) with any write,
which the cookie alone does not authorize (``plexhub.api.csrf``).
Links are built from ``request.scope["root_path"]``, so the pages work when the API is
proxied under a prefix such as ``/services/plexhub``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from plexhub.api import csrf
from plexhub.api.deps import SESSION_COOKIE
from plexhub.api.portal.assets import StaticAssets
from plexhub.errors import NotFoundError
from plexhub.policies.access import Principal

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))
ASSETS = StaticAssets(STATIC)  # mounted at /portal/static by plexhub.api.main

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'self'")
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
_SAFE_NEXT = re.compile(r"^/[A-Za-z0-9_.~/%@?=&+-]*$")


def base(request: Request) -> str:
    """The prefix the API is mounted under ('' or e.g. '/services/plexhub')."""
    return str(request.scope.get("root_path") or "").rstrip("/")


def page(request: Request, name: str, context: Mapping[str, Any],
         user: Principal | None = None, status_code: int = 200) -> Response:
    session = request.cookies.get(SESSION_COOKIE)  # its scripts' writes send the CSRF token
    root = base(request)
    ctx = {"base": root, "user": user, "asset": lambda rel: ASSETS.url(root, rel),
           "csrf": csrf.token_for(session) if session and user else "", **context}
    return templates.TemplateResponse(request, name, ctx, status_code=status_code,
                                      headers=HEADERS)


def not_found(request: Request, user: Principal | None = None) -> Response:
    """The same page for "does not exist" and "not yours": it never confirms existence."""
    return page(request, "404.html", {}, user, status_code=404)


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after login: a portal path of this mount, never another site."""
    root = base(request)
    if target and _SAFE_NEXT.match(target) and "//" not in target \
            and target.startswith(f"{root}/portal/"):
        return target
    return f"{root}/portal/"


def login_redirect(request: Request) -> Response:
    here = base(request) + request.scope["path"].removeprefix(base(request))
    if request.url.query:
        here += "?" + request.url.query
    query = urlencode({"next": here}, quote_via=quote, safe="/")
    # as a JupyterHub service, log in through the hub (OAuth), not with a pasted token
    login = "hub-login" if getattr(request.app.state.plexhub, "hub", None) else "portal/login"
    return RedirectResponse(f"{base(request)}/{login}?{query}", status_code=302,
                            headers={"Cache-Control": "no-store"})


class PortalRoute(APIRoute):
    """A page route: 401 from authentication becomes a 302 to the login page, a
    :class:`NotFoundError` (unknown, or not visible) the 404 page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                if exc.status_code == 401:
                    return login_redirect(request)
                raise
            except NotFoundError:
                return not_found(request)

        return route
