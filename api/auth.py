"""Bearer tokens: random secrets shown once, stored as SHA-256; the admin token from settings.

A token resolves to a :class:`Principal` (user, role, groups). Lookups are cached for a few
seconds at most, so a revoked token stops working within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy import select

from plexhub.api.db import Database, utcnow
from plexhub.api.models import ApiToken
from plexhub.policies.access import Principal, Role
from plexhub.settings import Settings

CACHE_SECONDS = 2.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "phk_" + secrets.token_urlsafe(32)


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
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def issue(self, user: str, role: Role, groups: list[str], created_by: str) -> str:
        token = new_token()
        with self.db.session() as s:
            s.add(ApiToken(id=uuid.uuid4().hex, token_hash=hash_token(token), user=user,
                           role=role, groups=sorted(set(groups)), created_by=created_by))
            s.commit()
        return token

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        """(True, the caller) when the answer is known without a query, else (False, None)."""
        admin = self.settings.admin_token
        if admin is not None and hmac.compare_digest(token.encode(),
                                                     admin.get_secret_value().encode()):
            return True, Principal(user="admin", role="admin")
        with self._lock:
            hit = self._cache.get(hash_token(token))
        if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
            return True, hit[1]
        if self.fallback_cached is not None:
            # only tokens with no catalog row ever reach the fallback, so its accepted
            # tokens are not plexhub tokens; refusals go through resolve() again
            principal = self.fallback_cached(token)
            if principal is not None:
                return True, principal
        return False, None

    def resolve(self, token: str) -> Principal | None:
        known, cached = self.cached(token)
        if known:
            return cached
        key = hash_token(token)
        now = time.monotonic()
        with self.db.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == key))
            principal = None
            if row is not None and (row.revoked_at is None or row.revoked_at > utcnow()):
                principal = Principal(user=row.user, role=row.role,  # type: ignore[arg-type]
                                      groups=frozenset(row.groups or []))
        if principal is None and row is None and self.fallback is not None:
            return self.fallback(token)  # the fallback keeps its own short cache
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, principal)
        return principal
