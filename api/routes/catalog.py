"""Health, studies, grants and the audit trail (tokens: routes/tokens.py)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit
from plexhub.api.db import utcnow
from plexhub.api.deps import (
    AppState,
    CurrentUser,
    DbSession,
    Public,
    Scope,
    State,
    VisibleStudy,
    grants_of,
    visible_study,
)
from plexhub.api.models import AuditEvent, Grant, Study
from plexhub.api.schemas import (
    AuditPublic,
    GrantCreate,
    GrantPublic,
    IdPublic,
    StudyCreate,
    StudyPublic,
    StudyUpdate,
)
from plexhub.errors import ConflictError, NotFoundError
from plexhub.policies.access import Principal, can_see_study, is_staff

router = APIRouter(prefix="/api/v1")
log = logging.getLogger("plexhub.api")


def mirror_grants(st: AppState, session: Session, study: Study) -> None:
    """In service mode, keep hub group ``study-<code>`` in step with the active grants.

    The catalog owns membership; the hub group is a copy for hub-side features, so a hub
    that cannot be reached is logged, not an error for the caller."""
    if st.hub is None:
        return
    now = utcnow()
    active = {g.principal for g in grants_of(session, study.id) if g.active(now)}
    try:
        st.hub.sync_study_group(study.code, active)
    except Exception:
        log.exception("could not mirror the grants of %s into the hub", study.code)


@router.get("/health", tags=["service"], dependencies=[Public])
def health() -> dict[str, str]:
    """Liveness; the only endpoint without authentication."""
    return {"status": "ok"}


@router.get("/me", tags=["service"])
def me(user: Annotated[Principal, Scope("read")]) -> dict[str, Any]:
    return {"user": user.user, "role": user.role, "groups": sorted(user.groups)}


def _study_public(s: Study, user: Principal | None = None) -> StudyPublic:
    """``internal_fields`` only for staff (``user`` None: the caller is staff)."""
    staff = user is None or is_staff(user)
    return StudyPublic(code=s.code, title=s.title, sponsor=s.sponsor, profile=s.profile,
                       state=s.state, created_at=s.created_at,
                       internal_fields=list(s.internal_fields or []) if staff else None)


@router.post("/studies", response_model=StudyPublic, status_code=201, tags=["studies"])
def create_study(body: StudyCreate, user: Annotated[Principal, Scope("studies:write")],
                 session: DbSession) -> StudyPublic:
    if session.scalar(select(Study).where(Study.code == body.code)) is not None:
        raise ConflictError(f"study {body.code}", "already exists")
    study = Study(code=body.code, title=body.title, sponsor=body.sponsor,
                  profile=body.profile, created_by=user.user)
    session.add(study)
    audit.record(session, user, "study.create", "study", body.code, study_code=body.code,
                 after=body.model_dump())
    session.commit()
    return _study_public(study)


@router.get("/studies", response_model=list[StudyPublic], tags=["studies"])
def list_studies(user: Annotated[Principal, Scope("read")],
                 session: DbSession) -> list[StudyPublic]:
    """The studies visible to the caller."""
    now = utcnow()
    studies = session.scalars(select(Study).order_by(Study.code)).all()
    return [_study_public(s, user) for s in studies
            if can_see_study(user, grants_of(session, s.id), now)]


@router.get("/studies/{code}", response_model=StudyPublic, tags=["studies"])
def get_study(study: VisibleStudy, user: CurrentUser) -> StudyPublic:
    return _study_public(study, user)


@router.patch("/studies/{code}", response_model=StudyPublic, tags=["studies"])
def update_study(code: str, body: StudyUpdate, study: VisibleStudy,
                 user: Annotated[Principal, Scope("studies:write")],
                 session: DbSession) -> StudyPublic:
    """Change the title or the study-internal metadata fields (audited, with a reason)."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if body.title is not None and body.title != study.title:
        before["title"], after["title"] = study.title, body.title
        study.title = body.title
    if body.internal_fields is not None and body.internal_fields != study.internal_fields:
        before["internal_fields"] = list(study.internal_fields or [])
        after["internal_fields"] = body.internal_fields
        study.internal_fields = body.internal_fields
    if after:
        audit.record(session, user, "study.update", "study", code, study_code=code,
                     before=before, after=after, reason=body.reason)
        session.commit()
    return _study_public(study, user)


def _grant_public(g: Grant, code: str) -> GrantPublic:
    return GrantPublic(id=g.id, study=code, principal=g.principal, capabilities=g.capabilities,
                       expires_at=g.expires_at, revoked_at=g.revoked_at,
                       granted_by=g.granted_by, reason=g.reason)


@router.post("/studies/{code}/grants", response_model=IdPublic, status_code=201,
             tags=["sharing"])
def create_grant(code: str, body: GrantCreate, study: VisibleStudy,
                 user: Annotated[Principal, Scope("grants:write")], st: State,
                 session: DbSession) -> IdPublic:
    grant = Grant(id=uuid.uuid4().hex, study_id=study.id, principal=body.principal,
                  capabilities=body.capabilities, expires_at=body.expires_at,
                  granted_by=user.user, reason=body.reason)
    session.add(grant)
    audit.record(session, user, "grant.create", "grant", grant.id, study_code=code,
                 after=body.model_dump(mode="json"), reason=body.reason)
    session.commit()
    mirror_grants(st, session, study)
    return IdPublic(id=grant.id)


@router.get("/studies/{code}/grants", response_model=list[GrantPublic], tags=["sharing"])
def list_grants(code: str, study: VisibleStudy,
                user: Annotated[Principal, Scope("grants:write")],
                session: DbSession) -> list[GrantPublic]:
    rows = session.scalars(select(Grant).where(Grant.study_id == study.id)
                           .order_by(Grant.created_at)).all()
    return [_grant_public(g, code) for g in rows]


@router.delete("/grants/{grant_id}", response_model=GrantPublic, tags=["sharing"])
def revoke_grant(grant_id: str, user: Annotated[Principal, Scope("grants:write")], st: State,
                 session: DbSession,
                 reason: str = Query(default="", max_length=2000)) -> GrantPublic:
    grant = session.get(Grant, grant_id)
    if grant is None:
        raise NotFoundError(f"grant {grant_id}", "not found")
    study = session.get(Study, grant.study_id)
    assert study is not None
    if grant.revoked_at is None:
        grant.revoked_at = utcnow()
        audit.record(session, user, "grant.revoke", "grant", grant.id, study_code=study.code,
                     before={"revoked_at": None},
                     after={"revoked_at": grant.revoked_at.isoformat()}, reason=reason)
        session.commit()
        mirror_grants(st, session, study)
    return _grant_public(grant, study.code)


@router.get("/audit", response_model=list[AuditPublic], tags=["audit"])
def list_audit(user: Annotated[Principal, Scope("audit:read")], session: DbSession,
               study: str | None = None, after_seq: int = Query(default=0, ge=0),
               limit: int = Query(default=100, ge=1, le=1000)) -> list[AuditPublic]:
    q = select(AuditEvent).where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq)
    if study is not None:  # a query parameter, optional: checked here
        visible_study(session, user, study)
        q = q.where(AuditEvent.study_code == study)
    return [AuditPublic(seq=e.seq, ts=e.ts, actor=e.actor, action=e.action,
                        entity_type=e.entity_type, entity_id=e.entity_id, study=e.study_code,
                        before=e.before, after=e.after, reason=e.reason, role=e.role,
                        request_id=e.request_id, client=e.client, prev_hash=e.prev_hash,
                        study_prev_hash=e.study_prev_hash, hash=e.hash)
            for e in session.scalars(q.limit(limit))]
