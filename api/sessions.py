"""Standalone portal sessions: a login with a token opens one, the cookie holds its secret.

The secret (``phs_`` + 32 random bytes) is new at every login and only its SHA-256 is kept,
in ``portal_sessions`` with the caller (user, role, groups), the token it was opened with,
and its times. A session ends at logout, ``portal_session_hours`` after login, after
``portal_session_idle_minutes`` without a request, or when its token is revoked or expires;
every process refuses an ended session within ``CACHE_SECONDS`` (the same cache as tokens).
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from plexhub.api import audit
from plexhub.api.auth import SESSION_PREFIX, AnswerCache, TokenInfo, hash_token
from plexhub.api.db import Database, aware, utcnow
from plexhub.api.models import ApiToken, PortalSession
from plexhub.policies.access import Principal
from plexhub.settings import Settings

log = logging.getLogger("plexhub.api")


def new_secret() -> str:
    return SESSION_PREFIX + secrets.token_urlsafe(32)


def end_sessions_of(s: Session, token_id: str, now: datetime) -> int:
    """End, in the caller's transaction, the open sessions opened with a token; how many."""
    result = s.execute(update(PortalSession)
                       .where(PortalSession.token_id == token_id,
                              PortalSession.revoked_at.is_(None))
                       .values(revoked_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


class SessionStore:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._cache = AnswerCache()

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.settings.portal_session_idle_minutes)

    def open(self, info: TokenInfo) -> tuple[PortalSession, str]:
        """A new session for a token's caller (audited); its row and the cookie's secret."""
        secret, now = new_secret(), utcnow()
        ends = now + timedelta(hours=self.settings.portal_session_hours)
        if info.expires_at is not None:
            ends = min(ends, info.expires_at)
        who = info.principal
        row = PortalSession(id=uuid.uuid4().hex, secret_hash=hash_token(secret),
                            token_id=info.token_id, user=who.user, role=who.role,
                            groups=sorted(who.groups), created_at=now, last_seen_at=now,
                            expires_at=ends)
        with self.db.session() as s:
            s.add(row)
            audit.record(s, who, "session.open", "portal_session", row.id,
                         after={"token": info.token_id, "expires_at": ends.isoformat()})
            s.commit()
        return row, secret

    def close(self, secret: str) -> PortalSession | None:
        """End the session of a cookie (logout, audited); None when there is none."""
        key = hash_token(secret)
        with self.db.session() as s:
            row = s.scalar(select(PortalSession).where(PortalSession.secret_hash == key))
            if row is not None and row.revoked_at is None:
                row.revoked_at = utcnow()
                audit.record(s, row.user, "session.close", "portal_session", row.id,
                             after={"revoked_at": row.revoked_at.isoformat()})
                s.commit()
        self._cache.drop(key)
        return row

    def forget_token(self, token_id: str) -> None:
        """Drop this process's cached sessions of a revoked token."""
        self._cache.drop_token(token_id)

    def cached(self, secret: str) -> tuple[bool, Principal | None]:
        known, info = self._cache.get(hash_token(secret))
        return known, info.principal if info is not None else None

    def resolve(self, secret: str) -> Principal | None:
        key = hash_token(secret)
        known, info = self._cache.get(key)
        if not known:
            info = self._lookup(key)
        return info.principal if info is not None else None

    def _lookup(self, key: str) -> TokenInfo | None:
        now, checked = utcnow(), time.monotonic()
        info, until = None, None
        with self.db.session() as s:
            found = s.execute(
                select(PortalSession, ApiToken.revoked_at, ApiToken.expires_at)
                .outerjoin(ApiToken, ApiToken.id == PortalSession.token_id)
                .where(PortalSession.secret_hash == key)).first()
            if found is not None:
                row, token_revoked, token_expires = found
                last_seen = aware(row.last_seen_at) or now
                until = self._until(row, last_seen, aware(token_expires))
                revoked = aware(row.revoked_at) or aware(token_revoked)
                if (revoked is None or revoked > now) and now < until:
                    if now - last_seen >= min(timedelta(minutes=1), self.idle / 4):
                        until = self._until(row, self._touch(s, row, now),
                                            aware(token_expires))
                    who = Principal(user=row.user, role=row.role,  # type: ignore[arg-type]
                                    groups=frozenset(row.groups or []))
                    info = TokenInfo(who, row.token_id, until)
        self._cache.put(key, checked, info, until if info is not None else None)
        return info

    def _until(self, row: PortalSession, last_seen: datetime,
               token_expires: datetime | None) -> datetime:
        """When the session ends if nothing else happens: its absolute end, its idle limit or
        its token's expiry, whichever comes first."""
        ends = [t for t in (aware(row.expires_at), last_seen + self.idle, token_expires)
                if t is not None]
        return min(ends)

    def _touch(self, s: Session, row: PortalSession, now: datetime) -> datetime:
        """Push the idle limit on (a failure to write is logged; the old time stays)."""
        try:
            s.execute(update(PortalSession).where(PortalSession.id == row.id)
                      .values(last_seen_at=now))
            s.commit()
            return now
        except SQLAlchemyError as exc:
            s.rollback()
            log.warning("could not record the use of portal session %s: %s", row.id, exc)
            return aware(row.last_seen_at) or now
