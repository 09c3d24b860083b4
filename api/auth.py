"""Bearer tokens: random secrets shown once, stored as SHA-256; the admin token from settings.

A token resolves to a :class:`Principal` (user, role, groups) while it is neither revoked nor
past its ``expires_at``. Answers are cached per process for at most ``CACHE_SECONDS``, so a
token revoked by any process is refused by every process within that time (an expiry is
exact: a cached answer carries it).

The portal's cookie is not a token: it holds a session secret (:mod:`plexhub.api.sessions`),
or in hub mode the hub's OAuth token; :meth:`TokenStore.cookie_cached` and
:meth:`TokenStore.cookie_resolve` take it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cachetools import FIFOCache
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from plexhub.api.db import Database, aware, utcnow
from plexhub.api.models import ApiToken
from plexhub.policies.access import Principal, Role
from plexhub.settings import Settings

if TYPE_CHECKING:
    from plexhub.api.sessions import SessionStore

CACHE_SECONDS = 2.0
TOKEN_PREFIX = "phk_"
SESSION_PREFIX = "phs_"  # portal session secrets (plexhub.api.sessions)
LAST_USED_STEP = timedelta(minutes=1)  # last_used_at is written at most this often
log = logging.getLogger("plexhub.api")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenInfo:
    """A valid token's caller, its catalog row id (None: the admin token or a hub token) and
    when it expires."""

    principal: Principal
    token_id: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class _Answer:
    checked: float  # time.monotonic() of the lookup
    info: TokenInfo | None
    until: float | None  # time.time() past which the answer is "refused" (an expiry)


class AnswerCache:
    """Lookups of one process for ``CACHE_SECONDS``, keyed by a secret's hash."""

    MAX = 10_000

    def __init__(self) -> None:
        # the oldest answer goes first when full (an answer lives 2 s: recency buys nothing);
        # it expires CACHE_SECONDS after its lookup began, checked on read: a cachetools
        # TLRUCache did that too but made a hit, which every tile request makes, 4x dearer
        # (0.6 -> 2.6 us); cachetools is not thread-safe: the lock
        self._items: FIFOCache[str, _Answer] = FIFOCache(self.MAX)
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, TokenInfo | None]:
        with self._lock:
            try:
                hit = self._items[key]  # not .get(): that looks the key up twice
            except KeyError:
                return False, None
        if time.monotonic() - hit.checked >= CACHE_SECONDS:
            return False, None
        if hit.until is not None and time.time() >= hit.until:
            return True, None
        return True, hit.info

    def put(self, key: str, checked: float, info: TokenInfo | None,
            until: datetime | None) -> None:
        with self._lock:
            self._items[key] = _Answer(checked, info,
                                       until.timestamp() if until is not None else None)

    def drop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def drop_token(self, token_id: str) -> None:
        with self._lock:
            for key in [k for k, a in self._items.items()
                        if a.info is not None and a.info.token_id == token_id]:
                del self._items[key]


class TokenStore:
    def __init__(self, db: Database, settings: Settings,
                 fallback: Callable[[str], Principal | None] | None = None,
                 fallback_cached: Callable[[str], Principal | None] | None = None) -> None:
        self.db = db
        self.settings = settings
        self.fallback = fallback  # e.g. JupyterHub token checks in service mode
        # the fallback's callers known without asking it (the hub's short cache): hub users'
        # requests then need no thread hop and no query (and tiles take the fast lane)
        self.fallback_cached = fallback_cached
        self._cache = AnswerCache()
        from plexhub.api.sessions import SessionStore

        self.sessions: SessionStore = SessionStore(db, settings)

    # -- issuing and revoking -----------------------------------------------------------
    def create(self, user: str, role: Role, groups: list[str], created_by: str,
               expires_at: datetime | None = None,
               session: Session | None = None) -> tuple[ApiToken, str]:
        """A new token: its row (id, created_at, expires_at...) and the secret, shown once.
        With ``session`` the row is only added to it (the caller commits, e.g. with its
        audit event); without, it is committed here."""
        token = new_token()
        row = ApiToken(id=uuid.uuid4().hex, token_hash=hash_token(token), user=user,
                       role=role, groups=sorted(set(groups)), created_by=created_by,
                       created_at=utcnow(), expires_at=expires_at)
        if session is not None:
            session.add(row)
            return row, token
        with self.db.session() as s:
            s.add(row)
            s.commit()
        return row, token

    def issue(self, user: str, role: Role, groups: list[str], created_by: str,
              expires_at: datetime | None = None) -> str:
        """The secret of a new token (see :meth:`create`)."""
        return self.create(user, role, groups, created_by, expires_at)[1]

    def forget(self, row: ApiToken) -> None:
        """Drop what this process cached about a revoked token and its portal sessions (other
        processes drop it within ``CACHE_SECONDS``)."""
        self._cache.drop(row.token_hash)
        self.sessions.forget_token(row.id)

    # -- bearer tokens --------------------------------------------------------------------
    def _is_admin(self, token: str) -> bool:
        admin = self.settings.admin_token
        return admin is not None and hmac.compare_digest(token.encode(),
                                                         admin.get_secret_value().encode())

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        """(True, the caller) when the answer is known without a query, else (False, None)."""
        if self._is_admin(token):
            return True, Principal(user="admin", role="admin")
        known, info = self._cache.get(hash_token(token))
        if known:
            return True, info.principal if info is not None else None
        if self.fallback_cached is not None:
            # only tokens with no catalog row ever reach the fallback, so its accepted
            # tokens are not plexhub tokens; refusals go through resolve() again
            principal = self.fallback_cached(token)
            if principal is not None:
                return True, principal
        return False, None

    def resolve(self, token: str) -> Principal | None:
        info = self.lookup(token)
        return info.principal if info is not None else None

    def lookup(self, token: str) -> TokenInfo | None:
        """The valid token's caller and row, asking the catalog (or the hub) when needed."""
        if self._is_admin(token):
            return TokenInfo(Principal(user="admin", role="admin"))
        key = hash_token(token)
        known, info = self._cache.get(key)
        if known:
            return info
        now, checked = utcnow(), time.monotonic()
        with self.db.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == key))
            info = None
            expires = aware(row.expires_at) if row is not None else None
            if row is not None and _valid(aware(row.revoked_at), expires, now):
                info = TokenInfo(Principal(user=row.user, role=row.role,  # type: ignore[arg-type]
                                           groups=frozenset(row.groups or [])),
                                 row.id, expires)
                _touch(s, row, now)
        if info is None and row is None and self.fallback is not None:
            principal = self.fallback(token)  # the fallback keeps its own short cache
            return TokenInfo(principal) if principal is not None else None
        self._cache.put(key, checked, info, expires)
        return info

    # -- the portal's cookie ----------------------------------------------------------------
    def _cookie_is_hub_token(self, value: str) -> bool:
        """In hub mode the cookie holds the hub's OAuth token: never one of plexhub's own
        tokens (a cookie must not be a bearer token) and never the admin token."""
        return (self.fallback is not None and not value.startswith(TOKEN_PREFIX)
                and not self._is_admin(value))

    def cookie_cached(self, value: str) -> tuple[bool, Principal | None]:
        """Like :meth:`cached`, for the ``plexhub-session`` cookie."""
        if value.startswith(SESSION_PREFIX):
            return self.sessions.cached(value)
        if self._cookie_is_hub_token(value):
            return self.cached(value)
        return True, None

    def cookie_resolve(self, value: str) -> Principal | None:
        """Like :meth:`resolve`, for the ``plexhub-session`` cookie."""
        if value.startswith(SESSION_PREFIX):
            return self.sessions.resolve(value)
        if self._cookie_is_hub_token(value):
            return self.resolve(value)
        return None


def _valid(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> bool:
    return (revoked_at is None or revoked_at > now) and (expires_at is None or expires_at > now)


def _touch(s: Session, row: ApiToken, now: datetime) -> None:
    """Record the token's use, at most once per ``LAST_USED_STEP``; a failure to write it
    is logged, never the request's failure."""
    last = aware(row.last_used_at)
    if last is not None and now - last < LAST_USED_STEP:
        return
    try:
        s.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        s.commit()
    except SQLAlchemyError as exc:
        s.rollback()
        log.warning("could not record the use of token %s: %s", row.id, exc)
