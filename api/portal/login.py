"""Standalone-mode login for the portal: paste an API token, get the ``plexhub-session``
cookie (HttpOnly, SameSite=Lax, Secure over HTTPS, scoped to the mount prefix). The cookie
holds the secret of a new portal session (:mod:`plexhub.api.sessions`), never the token;
logging out ends that session, so a copy of the old cookie is refused too.

In hub mode JupyterHub does the login and ``CurrentUser`` knows the caller; these two
routes are then simply not linked. Cross-site form posts are refused (Origin check), so a
page elsewhere cannot log a visitor in as someone else.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from plexhub.api import audit
from plexhub.api.auth import SESSION_PREFIX
from plexhub.api.deps import SESSION_COOKIE, AppState, Public, State
from plexhub.api.portal.web import base, page, safe_next
from plexhub.limits import LOGIN_FORM_BYTES as MAX_FORM

# logging in and out: open (the login checks the token it is given)
router = APIRouter(prefix="/portal", include_in_schema=False, dependencies=[Public])


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _cookie_path(request: Request) -> str:
    return base(request) + "/"


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return page(request, "login.html", {"next": safe_next(request, next), "error": None})


@router.post("/login")
async def login(request: Request, st: State) -> Response:
    body = await request.body()
    form = parse_qs(body[:MAX_FORM].decode("utf-8", "replace"), max_num_fields=10)
    token = (form.get("token") or [""])[0].strip()
    target = safe_next(request, (form.get("next") or [""])[0] or None)
    if not _same_origin(request):
        return page(request, "login.html", {"next": target,
                                            "error": "the form came from another site"},
                    status_code=403)
    info = await run_in_threadpool(st.tokens.lookup, token) if token else None
    if info is None:  # in the global chain: who tried is not known, where from is
        await run_in_threadpool(_failed, st, "blank" if not token else "unknown")
        return page(request, "login.html", {"next": target, "error": "that token is unknown "
                                            "or revoked, or it expired"},
                    status_code=401)
    _, secret = await run_in_threadpool(st.tokens.sessions.open, info)
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path=_cookie_path(request))
    return response


def _failed(st: AppState, why: str) -> None:
    """Audit a failed portal login (``login.failure``; the global chain, no study): the
    client address and request id come from the request, the token tried is never kept."""
    with st.db.session() as session:
        audit.record(session, "anonymous", "login.failure", "portal", "login",
                     after={"credential": why})
        session.commit()


@router.post("/logout")
async def logout(request: Request, st: State) -> Response:
    response = RedirectResponse(f"{base(request)}/portal/login", status_code=303,
                                headers={"Cache-Control": "no-store"})
    if _same_origin(request):
        secret = request.cookies.get(SESSION_COOKIE) or ""
        if secret.startswith(SESSION_PREFIX):
            await run_in_threadpool(st.tokens.sessions.close, secret)
        response.delete_cookie(SESSION_COOKIE, path=_cookie_path(request), httponly=True,
                               samesite="lax", secure=request.url.scheme == "https")
    return response
