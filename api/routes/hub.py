"""OAuth login through JupyterHub (service mode): ``/hub-login`` starts it (the login's state
goes with the browser in a signed cookie, so any API worker can finish it), the hub sends the
browser back to ``/oauth_callback``, which keeps the hub token in the session cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from plexhub.api.deps import SESSION_COOKIE, Public, State
from plexhub.errors import PermissionDeniedError

# the login itself: open (the hub authenticates the browser)
router = APIRouter(tags=["service"], include_in_schema=False, dependencies=[Public])


def _safe_next(next_url: str, request: Request) -> str:
    """Only same-site paths: never redirect a login to another host."""
    root = request.scope.get("root_path", "")
    if not next_url.startswith("/") or next_url.startswith("//"):
        return f"{root}/portal/"
    return next_url


@router.get("/hub-login")
def hub_login(request: Request, st: State,
              next: Annotated[str, Query(max_length=2000)] = "") -> RedirectResponse:
    hub = st.hub
    assert hub is not None
    start = hub.start_login(_safe_next(next, request))
    response = RedirectResponse(start.url, status_code=302)
    response.set_cookie(start.cookie_name, start.cookie_value, max_age=start.max_age,
                        httponly=True, samesite="lax", path=_cookie_path(request),
                        secure=request.url.scheme == "https")
    return response


def _cookie_path(request: Request) -> str:
    return request.scope.get("root_path", "") or "/"


@router.get("/oauth_callback")
def oauth_callback(request: Request, st: State, code: Annotated[str, Query(max_length=500)],
                   state_: Annotated[str, Query(alias="state", max_length=200)]
                   ) -> RedirectResponse:
    hub = st.hub
    assert hub is not None
    try:
        token, next_url = hub.finish_login(code, state_, request.cookies)
    except PermissionError as exc:
        raise PermissionDeniedError("OAuth login", str(exc), "start again from the portal") \
            from exc
    response = RedirectResponse(_safe_next(next_url, request), status_code=302)
    root = _cookie_path(request)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", path=root,
                        secure=request.url.scheme == "https")
    for name in hub.state_cookies(request.cookies):  # this login's, and any abandoned one
        response.delete_cookie(name, path=root, httponly=True, samesite="lax",
                               secure=request.url.scheme == "https")
    return response

