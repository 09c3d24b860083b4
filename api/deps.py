"""Request dependencies: the app state, the caller, and authorization.

Every route declares who may call it with the dependencies at the end of this module (a
test walks the app's routes and fails on a route that declares none):

- a resource it names, visible to the caller, else the 404 of an unknown one
  (:data:`VisibleStudy`, :data:`VisibleImage`, :data:`VisibleJob`, :data:`VisiblePreset`,
  :data:`VisibleNotebook`, :data:`ManagedToken`, ...);
- a scope of the caller's role, else 403: ``Annotated[Principal, Scope("images:write")]``
  or ``dependencies=[Scope("audit:read")]``;
- the hub itself, for what only the JupyterHub that runs the service sends (its failed
  logins), else the 404 of an unknown route: :data:`HubItself`;
- or, for the few open routes (health, the login pages), :data:`Public`.

A resource comes before a scope in a route's parameters (FastAPI resolves dependencies in
that order): a caller who may not know the resource exists gets its 404, never a 403 that
confirms it. They run before the route's own query and body are validated, so such a
caller gets that 404 (or 403) rather than a 422. The functions behind them
(:func:`visible_study`, :func:`visible_image`, ...) stay callable for the checks that depend
on the request's body or an optional parameter. The tile routes' check, :data:`TileImage`,
keeps its answer with their other catalog lookups (``api.tiles.Resolved``: at most a second,
never past a grant's expiry, never across a commit of this process).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, TypeVar

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from plexhub.api import csrf
from plexhub.api.db import Database, aware, utcnow
from plexhub.api.models import (
    ApiToken,
    Grant,
    GuidedView,
    Image,
    Job,
    Preset,
    PublishedNotebook,
    SavedView,
    Study,
)
from plexhub.errors import NotFoundError, PermissionDeniedError
from plexhub.policies.access import (
    ROLE_SCOPES,
    Capability,
    GrantFacts,
    Principal,
    can_manage_token,
    can_see_study,
    has_scope,
    is_staff,
)
from plexhub.policies.loginaudit import is_hub_key
from plexhub.settings import Settings

if TYPE_CHECKING:
    from plexhub.api.auth import TokenStore
    from plexhub.api.hubauth import HubAuth
    from plexhub.api.jobs import JobRunner
    from plexhub.api.tiles import TileEngine
    from plexhub.api.webhooks import WebhookSender

bearer = HTTPBearer(auto_error=False, description="A plexhub API token")


@dataclass
class AppState:
    settings: Settings
    db: Database
    tokens: TokenStore
    jobs: JobRunner
    hub: HubAuth | None = None  # set when running as a JupyterHub-managed service
    webhooks: WebhookSender | None = None  # the findings webhook's outbox sender


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
    return [GrantFacts(g.principal, frozenset(g.capabilities), aware(g.expires_at),
                       aware(g.revoked_at)) for g in rows]


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
    grants = [GrantFacts(g.principal, frozenset(g.capabilities), aware(g.expires_at),
                         aware(g.revoked_at)) for g in rows]
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


class ImageAccess(NamedTuple):
    """An image the caller may see, and its study."""

    image: Image
    study: Study


def visible_image(session: Session, principal: Principal, image_id: str) -> ImageAccess:
    """The image and its study, or 404 (the same work whether the image is missing or in a
    study the caller may not see). A retired image is staff's alone: anyone else gets the
    same 404 (api/retention.py)."""
    study_id = session.scalar(select(Image.study_id).where(Image.id == image_id))
    found = session.execute(select(Image, Study).join(Study, Image.study_id == Study.id)
                            .where(Image.id == image_id)).first() \
        if _allowed(session, principal, study_id, Capability.VIEW) else None
    if found is None or (found[0].retired_at is not None and not is_staff(principal)):
        raise NotFoundError(f"image {image_id}", "not found")
    return ImageAccess(found[0], found[1])


def study_images(session: Session, principal: Principal, study: Study,
                 include_retired: bool = False) -> list[Image]:
    """The images of ``study`` a list shows, oldest first: retired ones only for staff who
    ask (``include_retired``; anyone else asking gets 403)."""
    q = select(Image).where(Image.study_id == study.id)
    if include_retired:
        if not is_staff(principal):
            raise PermissionDeniedError(principal.user,
                                        "may not list retired images (staff only)")
    else:
        q = q.where(Image.retired_at.is_(None))
    return list(session.scalars(q.order_by(Image.created_at, Image.series_index)).all())


def seconds_to_next_expiry(session: Session, study: Study) -> float:
    """Until the study's next grant expiry (a cached permission must not outlive it)."""
    now = utcnow()
    ahead = [(g.expires_at - now).total_seconds() for g in grants_of(session, study.id)
             if g.expires_at is not None and g.revoked_at is None and g.expires_at > now]
    return min(ahead, default=float("inf"))


class TileAccess(NamedTuple):
    """An image the caller may see, as the tile routes cache it: with the catalog's
    generation it was looked up in and the ``time.monotonic()`` deadline of the grant it may
    rest on (``inf``: none expires), so lookups cached on top of it live no longer."""

    image: Image
    study: Study
    generation: int
    expires: float


def visible_tile_image(db: Database, tiles: TileEngine, principal: Principal,
                       image_id: str) -> TileAccess:
    """:func:`visible_image` in a session of its own, its answer kept in the tile lookups'
    cache under (caller, image id)."""
    from plexhub.api.tiles import generation

    gen = generation()  # before the queries: a commit meanwhile makes the entry stale
    with db.session() as session:
        image, study = visible_image(session, principal, image_id)
        ttl = seconds_to_next_expiry(session, study)
    access = TileAccess(image, study, gen, time.monotonic() + ttl)
    tiles.resolved.put((principal, image_id), access, gen, ttl)
    return access


def visible_job(session: Session, principal: Principal, job_id: str) -> Job:
    """The job, or 404; it is loaded only once its study is visible (the same work when it
    is missing)."""
    study_id = session.scalar(select(Job.study_id).where(Job.id == job_id))
    study_of(session, principal, study_id, f"job {job_id}")
    job = session.get(Job, job_id)
    if job is None:  # deleted meanwhile
        raise NotFoundError(f"job {job_id}", "not found")
    return job


def visible_preset(session: Session, principal: Principal, preset_id: str) -> Preset:
    """The preset, or the same 404 as an unknown one when the caller may not see it (a
    panel preset only through an image the caller may see: ``preset_store.may_see``)."""
    from plexhub.api import preset_store

    preset = session.get(Preset, preset_id)
    if preset is None or not preset_store.may_see(session, principal, preset):
        raise NotFoundError(f"preset {preset_id}", "not found")
    return preset


NOTEBOOK_CAPABILITY = Capability.VIEW_NOTEBOOKS  # a sponsor needs it for published notebooks


class NotebookAccess(NamedTuple):
    """A published notebook the caller may read, and its study."""

    notebook: PublishedNotebook
    study: Study


def visible_notebook(session: Session, principal: Principal,
                     notebook_id: str) -> NotebookAccess:
    """The notebook, or 404 when it does not exist or its study is not visible to the
    caller with ``view_notebooks``."""
    row = session.get(PublishedNotebook, notebook_id)
    study = session.get(Study, row.study_id) if row is not None else None
    if row is None or study is None:
        raise NotFoundError(f"notebook {notebook_id}", "not found")
    try:
        visible_study(session, principal, study.code, capability=NOTEBOOK_CAPABILITY)
    except NotFoundError:
        raise NotFoundError(f"notebook {notebook_id}", "not found") from None
    return NotebookAccess(row, study)


# ----------------------------------------------------------------- authorization
# Each dependency below is registered in AUTHORIZATION with its kind; the route test
# (tests/unit/test_route_auth.py) reads it.

AuthKind = Literal["public", "resource", "scope", "hub"]
AUTHORIZATION: dict[Callable[..., Any], tuple[AuthKind, str]] = {}
_F = TypeVar("_F", bound=Callable[..., Any])


def authorizes(kind: AuthKind, what: str) -> Callable[[_F], _F]:
    """Register a dependency as an authorization check of ``kind`` (``what``: the check,
    in words)."""
    def mark(fn: _F) -> _F:
        AUTHORIZATION[fn] = (kind, what)
        return fn
    return mark


@authorizes("public", "open to anyone, without authentication")
async def public() -> None:
    """Declares an open route (health, the login pages)."""


Public: Any = Depends(public)
"""``dependencies=[Public]``: the route needs no authentication (it says so on purpose)."""


@authorizes("hub", "the hub itself (a key derived from this service's hub token), else 404")
async def hub_itself(st: State, creds: Annotated[HTTPAuthorizationCredentials | None,
                                                 Depends(bearer)]) -> None:
    """Routes only the JupyterHub that runs this service calls (its failed logins): the
    bearer is :func:`plexhub.policies.loginaudit.hub_key` of the service's hub token; anyone
    else, users with valid tokens too, gets the 404 of an unknown route."""
    presented = creds.credentials if creds is not None and \
        creds.scheme.lower() == "bearer" else ""
    if st.hub is None or not is_hub_key(presented, st.hub.config.api_token):
        raise HTTPException(404, "Not Found")


HubItself: Any = Depends(hub_itself)
"""``dependencies=[HubItself]``: only the hub that runs this service may call the route."""

SCOPES = frozenset().union(*ROLE_SCOPES.values())


@cache
def _scope_check(scope: str) -> Callable[..., Awaitable[Principal]]:
    @authorizes("scope", scope)
    async def scope_check(user: CurrentUser) -> Principal:
        require(user, scope)
        return user

    return scope_check


def Scope(scope: str) -> Any:  # a capital: it reads as a type in Annotated[...]
    """The caller, whose role has ``scope`` (else 403): ``Annotated[Principal,
    Scope("images:write")]`` as a parameter, or ``dependencies=[Scope("audit:read")]``
    (put a resource's dependency before it: see this module's docstring)."""
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r} is not in policies.access.ROLE_SCOPES "
                         f"(known: {', '.join(sorted(SCOPES))})")
    return Depends(_scope_check(scope))


@authorizes("resource", "study {code}, visible to the caller")
def study_in_path(code: str, user: CurrentUser, session: DbSession) -> Study:
    return visible_study(session, user, code)


@authorizes("resource", "study {code}, its published notebooks visible to the caller")
def notebook_study_in_path(code: str, user: CurrentUser, session: DbSession) -> Study:
    return visible_study(session, user, code, capability=NOTEBOOK_CAPABILITY)


@authorizes("resource", "image {image_id}, visible to the caller")
def image_in_path(image_id: str, user: CurrentUser, session: DbSession) -> ImageAccess:
    return visible_image(session, user, image_id)


@authorizes("resource", "image {image_id}, its study granted with download")
def downloadable_image_in_path(image_id: str, user: CurrentUser,
                               session: DbSession) -> ImageAccess:
    """The image when the caller may download its original (staff; sponsors need the
    ``download`` capability); the image is loaded only once its study is allowed."""
    study_id = session.scalar(select(Image.study_id).where(Image.id == image_id))
    study = study_of(session, user, study_id, f"image {image_id}", Capability.DOWNLOAD)
    image = session.get(Image, image_id)
    if image is None or (image.retired_at is not None and not is_staff(user)):  # retired
        raise NotFoundError(f"image {image_id}", "not found")
    return ImageAccess(image, study)


@authorizes("resource", "image {image_id}, visible to the caller (cached with the tile lookups)")
async def tile_image_in_path(request: Request, image_id: str, user: CurrentUser) -> TileAccess:
    """The tile routes' image: from the tile lookups' cache on the event loop, else looked
    up in a thread (:func:`visible_tile_image`). A revocation committed by this process ends
    the cached answer at once, one of another process within ``Resolved.TTL``."""
    tiles: TileEngine = request.app.state.tiles
    found: TileAccess | None = tiles.resolved.get((user, image_id))
    if found is not None:
        return found
    return await run_in_threadpool(visible_tile_image, app_state(request).db, tiles, user,
                                   image_id)


@authorizes("resource", "job {job_id}, its study visible to the caller")
def job_in_path(job_id: str, user: CurrentUser, session: DbSession) -> Job:
    return visible_job(session, user, job_id)


@authorizes("resource", "preset {preset_id}, visible to the caller")
def preset_in_path(preset_id: str, user: CurrentUser, session: DbSession) -> Preset:
    return visible_preset(session, user, preset_id)


@authorizes("resource", "notebook {notebook_id}, its study granted with view_notebooks")
def notebook_in_path(notebook_id: str, user: CurrentUser,
                     session: DbSession) -> NotebookAccess:
    return visible_notebook(session, user, notebook_id)


@authorizes("resource", "token {token_id}: any for tokens:write, else the caller's own")
def token_in_path(token_id: Annotated[str, Path(max_length=64)], user: CurrentUser,
                  session: DbSession) -> ApiToken:
    """The token, or 404 when it is unknown or the caller may not manage it."""
    row = session.get(ApiToken, token_id)
    if row is None or not can_manage_token(user, row.user):
        raise NotFoundError(f"token {token_id}", "not found",
                            "GET /api/v1/tokens lists the tokens you may revoke")
    return row


@authorizes("resource", "image {image_id}, visible to the caller, who is staff (else 403)")
def staff_image_in_path(image_id: str, user: CurrentUser, session: DbSession) -> ImageAccess:
    """The image for staff only: a caller who may not see it gets its 404 first, a sponsor
    who may see it a 403 (raw values under the cursor are a staff tool)."""
    found = visible_image(session, user, image_id)
    if not is_staff(user):
        raise PermissionDeniedError(user.user, "may not do this (staff only)")
    return found


class ViewAccess(NamedTuple):
    """A saved view of the caller's own, its image and study."""

    view: SavedView
    image: Image
    study: Study


@authorizes("resource", "saved view {view_id}, the caller's own, of an image it may see")
def own_view_in_path(view_id: Annotated[str, Path(max_length=32)], user: CurrentUser,
                     session: DbSession) -> ViewAccess:
    """A saved view is its owner's alone: anyone else's, or one whose image the owner may
    no longer see, is the 404 of an unknown one."""
    row = session.get(SavedView, view_id)
    if row is None or row.owner != user.user:
        raise NotFoundError(f"view {view_id}", "not found")
    try:
        image, study = visible_image(session, user, row.image_id)
    except NotFoundError:
        raise NotFoundError(f"view {view_id}", "not found") from None
    return ViewAccess(row, image, study)


class GuideAccess(NamedTuple):
    """A guided view version the caller may read, and its study."""

    guide: GuidedView
    study: Study


def visible_guide(session: Session, principal: Principal, guide_id: str) -> GuideAccess:
    """The guided view, or 404 when it does not exist, its study is not visible to the
    caller, or (for sponsors) it is revoked; staff still see a revoked version."""
    study_id = session.scalar(select(GuidedView.study_id).where(GuidedView.id == guide_id))
    study = study_of(session, principal, study_id, f"guide {guide_id}")
    row = session.get(GuidedView, guide_id)
    if row is None or (row.revoked_at is not None and not is_staff(principal)):
        raise NotFoundError(f"guide {guide_id}", "not found")
    return GuideAccess(row, study)


@authorizes("resource", "guide {guide_id}, its study visible to the caller, not revoked")
def guide_in_path(guide_id: Annotated[str, Path(max_length=32)], user: CurrentUser,
                  session: DbSession) -> GuideAccess:
    return visible_guide(session, user, guide_id)


VisibleStudy = Annotated[Study, Depends(study_in_path)]
NotebookStudy = Annotated[Study, Depends(notebook_study_in_path)]
VisibleImage = Annotated[ImageAccess, Depends(image_in_path)]
DownloadableImage = Annotated[ImageAccess, Depends(downloadable_image_in_path)]
TileImage = Annotated[TileAccess, Depends(tile_image_in_path)]
VisibleJob = Annotated[Job, Depends(job_in_path)]
VisiblePreset = Annotated[Preset, Depends(preset_in_path)]
VisibleNotebook = Annotated[NotebookAccess, Depends(notebook_in_path)]
ManagedToken = Annotated[ApiToken, Depends(token_in_path)]
StaffImage = Annotated[ImageAccess, Depends(staff_image_in_path)]
OwnView = Annotated[ViewAccess, Depends(own_view_in_path)]
VisibleGuide = Annotated[GuideAccess, Depends(guide_in_path)]
