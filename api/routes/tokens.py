"""API tokens: create (admin), list (admin: all; others: their own), revoke.

A revoked token stays listed (no hard deletes) and ends the portal sessions opened with it;
every API process refuses it within ``plexhub.api.auth.CACHE_SECONDS``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import or_, select

from plexhub.api import audit
from plexhub.api.db import aware, utcnow
from plexhub.api.deps import CurrentUser, DbSession, ManagedToken, Scope, State
from plexhub.api.models import ApiToken
from plexhub.api.schemas import TokenCreate, TokenPublic, TokenRecordPublic
from plexhub.api.sessions import end_sessions_of
from plexhub.errors import InputError
from plexhub.policies.access import Principal, has_scope
from plexhub.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["service"])


def token_expiry(requested: datetime | None, settings: Settings,
                 now: datetime) -> datetime | None:
    """The expiry a new token gets: the requested one, within ``token_max_days``."""
    if requested is not None and requested <= now:
        raise InputError(f"expires_at {requested.isoformat()}", "is not in the future",
                         "give a later time, or none")
    if settings.token_max_days is None:
        return requested
    latest = now + timedelta(days=settings.token_max_days)
    if requested is None:
        return latest
    if requested > latest:
        raise InputError(f"expires_at {requested.isoformat()}",
                         f"is past the longest token lifetime, {settings.token_max_days} "
                         "days (PLEXHUB_TOKEN_MAX_DAYS)",
                         f"give {latest.isoformat(timespec='seconds')} or earlier")
    return requested


def token_record(row: ApiToken, now: datetime | None = None) -> TokenRecordPublic:
    now = now or utcnow()
    revoked, expires = aware(row.revoked_at), aware(row.expires_at)
    active = (revoked is None or revoked > now) and (expires is None or expires > now)
    return TokenRecordPublic(id=row.id, user=row.user, role=row.role,
                             groups=list(row.groups or []), created_by=row.created_by,
                             created_at=row.created_at, expires_at=row.expires_at,
                             revoked_at=row.revoked_at, last_used_at=row.last_used_at,
                             active=active)


@router.post("/tokens", response_model=TokenPublic, status_code=201)
def create_token(body: TokenCreate, user: Annotated[Principal, Scope("tokens:write")],
                 st: State, session: DbSession) -> TokenPublic:
    """A new token; the answer is the only time its secret is shown."""
    expires = token_expiry(body.expires_at, st.settings, utcnow())
    row, token = st.tokens.create(body.user, body.role, body.groups, created_by=user.user,
                                  expires_at=expires, session=session)
    audit.record(session, user, "token.create", "token", row.id,
                 after={"user": body.user, "role": body.role, "groups": row.groups,
                        "expires_at": expires.isoformat() if expires else None})
    session.commit()
    return TokenPublic(id=row.id, token=token, user=row.user, role=row.role,
                       groups=list(row.groups), created_at=row.created_at,
                       expires_at=row.expires_at)


@router.get("/tokens", response_model=list[TokenRecordPublic])
def list_tokens(user: Annotated[Principal, Scope("read")], session: DbSession,
                owner: Annotated[str | None, Query(alias="user", max_length=200)] = None,
                active: Annotated[bool, Query(description="only usable tokens")] = False,
                offset: Annotated[int, Query(ge=0)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[TokenRecordPublic]:
    """Tokens, newest first, never their secrets: all for admins, the caller's own for
    everyone else."""
    now = utcnow()
    q = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id)
    if not has_scope(user, "tokens:write"):
        q = q.where(ApiToken.user == user.user)
    if owner is not None:
        q = q.where(ApiToken.user == owner)
    if active:
        q = q.where(or_(ApiToken.revoked_at.is_(None), ApiToken.revoked_at > now),
                    or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
    return [token_record(r, now) for r in session.scalars(q.offset(offset).limit(limit))]


@router.delete("/tokens/{token_id}", response_model=TokenRecordPublic)
def revoke_token(row: ManagedToken, user: CurrentUser, st: State, session: DbSession,
                 reason: Annotated[str, Query(max_length=2000)] = "") -> TokenRecordPublic:
    """Revoke a token (admins any, everyone else their own) and end the portal sessions
    opened with it; revoking again changes nothing. The row stays, for the audit trail."""
    if row.revoked_at is None:
        now = utcnow()
        row.revoked_at = now
        ended = end_sessions_of(session, row.id, now)
        audit.record(session, user, "token.revoke", "token", row.id,
                     before={"revoked_at": None},
                     after={"revoked_at": now.isoformat(), "user": row.user,
                            "sessions_ended": ended}, reason=reason)
        session.commit()
    st.tokens.forget(row)
    return token_record(row)
