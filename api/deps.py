"""Request dependencies: the app state, the caller, and access to a study or image."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from plexhub.api import csrf
from plexhub.api.db import Database, utcnow
from plexhub.api.models import Grant, Image, Study
from plexhub.errors import NotFoundError, PermissionDeniedError
from plexhub.policies.access import (
    Capability,
    GrantFacts,
    Principal,
    can_see_study,
    has_scope,
)
from plexhub.settings import Settings

if TYPE_CHECKING:
    from plexhub.api.auth import TokenStore
    from plexhub.api.hubauth import HubAuth
    from plexhub.api.jobs import JobRunner

bearer = HTTPBearer(auto_error=False, description="A plexhub API token")


@dataclass
class AppState:
    settings: Settings
    db: Database
    tokens: TokenStore
    jobs: JobRunner
    hub: HubAuth | None = None  # set when running as a JupyterHub-managed service


# Cheap dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in its thread
# pool, and a tile request would pay a thread hop for each (measured: ~1 ms of its ~7).

def app_state(request: Request) -> AppState:
    return request.app.state.plexhub  # type: ignore[no-any-return]


async def state(request: Request) -> AppState:
    return app_state(request)


State = Annotated[AppState, Depends(state)]


async def session(st: State) -> AsyncIterator[Session]:
    """A catalog session; it connects when first used (in the endpoint's thread)."""
    s = st.db.new_session()
    try:
        yield s
    finally:
        if s.in_transaction():  # returning a connection may wait on the database
            await run_in_threadpool(s.close)
        else:
            s.close()


DbSession = Annotated[Session, Depends(session)]


SESSION_COOKIE = "plexhub-session"


async def current_user(request: Request, st: State,
                       creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
                       ) -> Principal:
    """The caller, from ``Authorization: Bearer <token>`` or, for the browser portal, from
    the session cookie (a portal session's secret, or the hub's OAuth token in hub mode;
    never a bearer token, see ``TokenStore.cookie_resolve``)."""
    bearer = creds is not None and creds.scheme.lower() == "bearer"
    token = creds.credentials if creds is not None and bearer \
        else request.cookies.get(SESSION_COOKIE)
    if not token:
        raise HTTPException(401, "a bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    tokens = st.tokens
    known, principal = tokens.cached(token) if bearer else tokens.cookie_cached(token)
    if not known:  # looking it up may query the catalog or the hub
        principal = await run_in_threadpool(
            tokens.resolve if bearer else tokens.cookie_resolve, token)
    if principal is None:
        raise HTTPException(401, "the token or session is unknown, revoked or expired",
                            headers={"WWW-Authenticate": "Bearer"})
    if creds is None or creds.scheme.lower() != "bearer":  # the cookie: writes need proof
        csrf.check(request, token)
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]


def require(principal: Principal, scope: str) -> None:
    decision = has_scope(principal, scope)
    if not decision:
        raise PermissionDeniedError(principal.user, f"may not do this ({decision.reason})")


def grants_of(session: Session, study_id: int) -> list[GrantFacts]:
    rows = session.scalars(select(Grant).where(Grant.study_id == study_id)).all()
    return [GrantFacts(g.principal, frozenset(g.capabilities), _aware(g.expires_at),
                       _aware(g.revoked_at)) for g in rows]


def _aware(ts: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes for UTC values; make them comparable."""
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


# A study that exists but is not the caller's and one that does not exist answer the same
# 404 after the same work, so that the time of the answer does not tell them apart either:
# first only the study's id is looked up (no row is materialised, so an existing study costs
# what a missing one does), then the caller's grants on it (for a missing study under an id
# no study has; only the grants that name the caller, which is all the policy looks at, so a
# study granted to others loads as many rows as one that does not exist), and the study
# itself is loaded only once it is visible.
NO_STUDY = -1


def _allowed(session: Session, principal: Principal, study_id: int | None,
             capability: str) -> bool:
    """Whether the caller may see study ``study_id`` (None: there is no such study), after
    the same queries either way."""
    rows = session.scalars(select(Grant).where(
        Grant.study_id == (study_id if study_id is not None else NO_STUDY),
        Grant.principal.in_(sorted(principal.names)))).all()
    grants = [GrantFacts(g.principal, frozenset(g.capabilities), _aware(g.expires_at),
                         _aware(g.revoked_at)) for g in rows]
    allowed = can_see_study(principal, grants, utcnow(), capability)
    return study_id is not None and bool(allowed)


def visible_study(session: Session, principal: Principal, code: str,
                  capability: str = Capability.VIEW) -> Study:
    """The study, or 404 when it does not exist or the caller may not know it exists."""
    study_id = session.scalar(select(Study.id).where(Study.code == code))
    study = session.get(Study, study_id) \
        if _allowed(session, principal, study_id, capability) else None
    if study is None:
        raise NotFoundError(f"study {code}", "not found")
    return study


def study_of(session: Session, principal: Principal, study_id: int | None,
             what: str, capability: str = Capability.VIEW) -> Study:
    """The study an entity (``what``, e.g. "image <id>") belongs to, when the caller may see
    it; otherwise a 404 that names only the entity the caller asked for. ``study_id`` None
    (the entity does not exist) does the same work and answers the same 404; look the
    entity's study id up without loading the entity (see :func:`visible_image`)."""
    study = session.get(Study, study_id) \
        if _allowed(session, principal, study_id, capability) else None
    if study is None:
        raise NotFoundError(what, "not found")
    return study


def visible_image(session: Session, principal: Principal, image_id: str) -> tuple[Image, Study]:
    """The image and its study, or 404 (the same work whether the image is missing or in a
    study the caller may not see)."""
    study_id = session.scalar(select(Image.study_id).where(Image.id == image_id))
    found = session.execute(select(Image, Study).join(Study, Image.study_id == Study.id)
                            .where(Image.id == image_id)).first() \
        if _allowed(session, principal, study_id, Capability.VIEW) else None
    if found is None:
        raise NotFoundError(f"image {image_id}", "not found")
    return found[0], found[1]
