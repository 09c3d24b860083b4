"""The local deployment's authenticator: the hub's login form, checked against users.json,
with brute-force protection (:mod:`plexhub.hub.lockout`).

Production deployments use an identity provider instead (GenericOAuthenticator, see the
README); this one is for ``plexhub up`` and small single-machine installations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Bool, Float, Integer, Unicode

from plexhub.hub.lockout import LoginGuard, Refusal
from plexhub.hub.users import hash_password, load_users, verify_password
from plexhub.policies.lockout import LockoutRule

# compared against when the user does not exist, so both cases take the same time
_DUMMY_HASH = hash_password("not-a-real-password", n=2**14)


class LoginLockedError(web.HTTPError):
    """A login refused while the user name or the client address is locked (429); the
    hub's login page shows the message above its form."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        # no % formatting: the message is passed through as is
        super().__init__(429, refusal.message(time.time()).replace("%", "%%"))


class KeyedLocks:
    """One asyncio lock per key: a user name's (or an address's) logins are checked one at a
    time, so concurrent guesses cannot all pass before the first failure is counted."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        registered: list[str] = []
        acquired: set[str] = set()
        try:
            for key in sorted(set(keys)):  # one order for everyone: no deadlock
                lock, users = self._locks.get(key, (asyncio.Lock(), 0))
                self._locks[key] = (lock, users + 1)
                registered.append(key)
                await lock.acquire()
                acquired.add(key)
            yield
        finally:
            for key in reversed(registered):
                lock, users = self._locks[key]
                if key in acquired:
                    lock.release()
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class PlexhubAuthenticator(Authenticator):  # type: ignore[misc]  # jupyterhub is untyped
    """Username + password from ``users_file`` (scrypt hashes, see plexhub.hub.users).

    Only users in the file can log in; the file is read at every login, so password
    changes need no restart (group changes do: groups are loaded when the hub starts).
    Failed logins lock the user name after ``lockout_max_failures`` and the client address
    after ``lockout_address_max_failures`` (see :mod:`plexhub.policies.lockout`); an admin
    clears a lock with ``plexhub hub unlock NAME|ADDRESS`` or
    ``DELETE /hub/api/plexhub/lockouts/NAME|ADDRESS``."""

    users_file = Unicode("", config=True, help="Path of the users JSON file.")
    any_allow_config = Bool(True)  # the users file is the allow list
    lockout_dir = Unicode(
        "", config=True,
        help="Folder of the failed-login counters (login-lockout.sqlite) and their audit "
        "file (login-audit.jsonl); the users file's folder when empty.")
    lockout_max_failures = Integer(
        5, config=True, help="Wrong passwords for one user name within lockout_window "
        "seconds that lock the name.")
    lockout_address_max_failures = Integer(
        20, config=True, help="Wrong passwords from one client address within "
        "lockout_window seconds that lock every login from it.")
    lockout_window = Float(900.0, config=True,
                           help="Seconds in which failed logins count toward a lock.")
    lockout_seconds = Float(
        900.0, config=True, help="Length of a first lock; each further lock doubles it.")
    lockout_max_seconds = Float(86400.0, config=True, help="Longest lock.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard: LoginGuard | None = None
        self._serial = KeyedLocks()

    def _path(self) -> Path:
        if not self.users_file:
            raise RuntimeError("PlexhubAuthenticator.users_file is not set")
        return Path(self.users_file)

    @property
    def guard(self) -> LoginGuard:
        if self._guard is None:
            common = {"window": self.lockout_window, "lock_seconds": self.lockout_seconds,
                      "max_lock_seconds": self.lockout_max_seconds}
            folder = Path(self.lockout_dir) if self.lockout_dir else self._path().parent
            self._guard = LoginGuard(
                folder, LockoutRule(max_failures=self.lockout_max_failures, **common),
                LockoutRule(max_failures=self.lockout_address_max_failures, **common),
                logger=self.log)
        return self._guard

    async def authenticate(self, handler: Any, data: dict[str, Any]) -> str | None:
        name = str(self.normalize_username(str(data.get("username", ""))))
        password = str(data.get("password", ""))
        address = str(getattr(getattr(handler, "request", None), "remote_ip", "") or "unknown")
        guard = self.guard
        async with self._serial.hold(f"user:{name}", f"addr:{address}"):
            refusal = await asyncio.to_thread(guard.check, name, address)
            if refusal is not None:
                raise LoginLockedError(refusal)
            user = load_users(self._path()).get(name)
            encoded = user.password_hash if user is not None else _DUMMY_HASH
            ok = await asyncio.to_thread(verify_password, password, encoded)
            if ok and user is not None:
                await asyncio.to_thread(guard.succeeded, name)
                return name
            self.log.warning("failed login for %r from %s", name, address)
            refusal = await asyncio.to_thread(guard.failed, name, address)
        if refusal is not None:
            raise LoginLockedError(refusal)
        return None

    def check_allowed(self, username: str, authentication: Any = None) -> bool:
        return username in load_users(self._path())

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        from plexhub.hub.lockout_api import LockoutsHandler

        return [*super().get_handlers(app),
                (r"/api/plexhub/lockouts", LockoutsHandler),
                (r"/api/plexhub/lockouts/([^/]+)", LockoutsHandler)]
