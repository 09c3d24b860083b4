"""What only exists when the API runs as a JupyterHub service.

- OAuth login through JupyterHub: ``/hub-login`` starts it (the login's state goes with the
  browser in a signed cookie, so any API worker can finish it), the hub sends the browser back
  to ``/oauth_callback``, which keeps the hub token in the session cookie. Both are open (the
  hub authenticates the browser).
- ``POST /api/v1/audit/login-events``: the hub's failed logins, appended to the global audit
  chain as ``auth.login_failed`` (issue 14; :mod:`plexhub.policies.loginaudit`). Only the hub
  may call it; an event id already recorded is skipped, so the hub may send again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from plexhub.api import audit
from plexhub.api.deps import SESSION_COOKIE, DbSession, HubItself, Public, State
from plexhub.api.models import AuditEvent
from plexhub.api.schemas import Strict
from plexhub.errors import PermissionDeniedError
from plexhub.policies.loginaudit import ACTION, ID_PATTERN, MAX_EVENTS, USER_MAX, Reason

router = APIRouter(tags=["service"], include_in_schema=False)


def _safe_next(next_url: str, request: Request) -> str:
    """Only same-site paths: never redirect a login to another host."""
    root = request.scope.get("root_path", "")
    if not next_url.startswith("/") or next_url.startswith("//"):
        return f"{root}/portal/"
    return next_url


@router.get("/hub-login", dependencies=[Public])
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


@router.get("/oauth_callback", dependencies=[Public])
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



class LoginEvent(Strict):
    """One failed login at the hub's form (never the password)."""

    id: str = Field(pattern=ID_PATTERN, description="the hub's id of the event")
    user: str = Field(max_length=USER_MAX, description="the user name tried")
    client: str = Field(max_length=100, description="the login's client address")
    reason: Reason
    at: datetime = Field(description="when the hub saw it (UTC)")


class LoginEvents(Strict):
    events: list[LoginEvent] = Field(max_length=MAX_EVENTS)


class LoginEventsRecorded(BaseModel):
    recorded: int = Field(description="events appended to the audit chain")
    repeated: int = Field(description="events whose id was recorded before (skipped)")


@router.post("/api/v1/audit/login-events", dependencies=[HubItself],
             response_model=LoginEventsRecorded)
def login_events(body: LoginEvents, session: DbSession) -> LoginEventsRecorded:
    """Append the hub's failed logins to the global chain (``auth.login_failed``; actor
    ``anonymous``, the name tried, the reason and the hub's time in ``after``, the login's
    address as the client, the event id as the request id), each id once."""
    audit.lock_chain(session)  # first: no other writer records an id between check and add
    ids = sorted({e.id for e in body.events})
    seen = set(session.scalars(select(AuditEvent.request_id).where(
        AuditEvent.action == ACTION, AuditEvent.request_id.in_(ids))).all()) if ids else set()
    recorded = 0
    for e in body.events:
        if e.id in seen:
            continue
        seen.add(e.id)
        audit.record(session, "anonymous", ACTION, "hub", "login",
                     after={"user": e.user, "reason": e.reason, "source": "hub",
                            "at": e.at.isoformat()},
                     request_id=e.id, client=e.client)
        recorded += 1
    session.commit()
    return LoginEventsRecorded(recorded=recorded, repeated=len(body.events) - recorded)
