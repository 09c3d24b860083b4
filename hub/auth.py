"""The local deployment's authenticator: the hub's login form, checked against users.json,
with brute-force protection (:mod:`plexhub.hub.lockout`).

Production deployments use an identity provider instead (GenericOAuthenticator, see the
README); this one is for ``plexhub up`` and small single-machine installations.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Bool, Float, Integer, Unicode

from plexhub.hub.lockout import LoginGuard, Refusal
from plexhub.hub.loginforward import ForwardError, LoginEventForwarder
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
    ``DELETE /hub/api/plexhub/lockouts/NAME|ADDRESS``. Failures and refusals are forwarded
    to the API's audit chain when ``login_events_url`` is set (``plexhub.hub.loginforward``)."""

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
    login_events_url = Unicode(
        "", config=True,
        help="The API's POST /api/v1/audit/login-events: failed logins (wrong password, "
        "locked out) are forwarded there into the audit chain, from login-audit.jsonl "
        "(see plexhub.hub.loginforward). Empty: not forwarded.")
    login_events_key = Unicode(
        "", config=True, help="The hub's credential for login_events_url: "
        "plexhub.policies.loginaudit.hub_key of the API service's hub token.")
    login_events_retry_seconds = Float(
        10.0, config=True, help="Seconds between tries to forward failed logins while the "
        "API does not take them (they wait in login-audit.jsonl meanwhile).")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard: LoginGuard | None = None
        self._serial = KeyedLocks()
        self._forwarder: LoginEventForwarder | None = None
        self._wake: asyncio.Event | None = None
        self._forwarding: asyncio.Task[None] | None = None

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

    @property
    def forwarder(self) -> LoginEventForwarder | None:
        """Sends failed logins to the API (None: ``login_events_url`` is not set)."""
        if self._forwarder is None and self.login_events_url:
            self._forwarder = LoginEventForwarder(self.guard.folder, self.login_events_url,
                                                  self.login_events_key)
        return self._forwarder

    def forward_login_events(self) -> None:
        """Wake the forwarding task (started on this event loop if it is not running)."""
        if self.forwarder is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = self._forwarding
        if task is None or task.done() or task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._forwarding = loop.create_task(self._forward_loop(self._wake),
                                                name="plexhub-login-events")
        assert self._wake is not None
        self._wake.set()

    async def _forward_loop(self, wake: asyncio.Event) -> None:
        """Forward at each wake-up and, while the API does not take them, every
        ``login_events_retry_seconds``."""
        forwarder = self.forwarder
        assert forwarder is not None
        failing = False
        while True:
            wake.clear()
            try:
                sent = await asyncio.to_thread(forwarder.forward)
            except (ForwardError, OSError) as exc:
                if not failing:
                    self.log.warning("failed logins not forwarded yet (kept in %s, retried "
                                     "every %.0f s): %s", forwarder.spool,
                                     self.login_events_retry_seconds, exc)
                failing = True
            else:
                if failing or sent:
                    self.log.info("%d failed login(s) forwarded to the audit chain", sent)
                failing = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.login_events_retry_seconds)

    async def authenticate(self, handler: Any, data: dict[str, Any]) -> str | None:
        name = str(self.normalize_username(str(data.get("username", ""))))
        password = str(data.get("password", ""))
        address = str(getattr(getattr(handler, "request", None), "remote_ip", "") or "unknown")
        guard = self.guard
        async with self._serial.hold(f"user:{name}", f"addr:{address}"):
            refusal = await asyncio.to_thread(guard.check, name, address)
            if refusal is not None:
                self.forward_login_events()
                raise LoginLockedError(refusal)
            user = load_users(self._path()).get(name)
            encoded = user.password_hash if user is not None else _DUMMY_HASH
            ok = await asyncio.to_thread(verify_password, password, encoded)
            if ok and user is not None:
                await asyncio.to_thread(guard.succeeded, name)
                return name
            self.log.warning("failed login for %r from %s", name, address)
            refusal = await asyncio.to_thread(guard.failed, name, address)
        self.forward_login_events()
        if refusal is not None:
            raise LoginLockedError(refusal)
        return None

    def check_allowed(self, username: str, authentication: Any = None) -> bool:
        return username in load_users(self._path())

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        from plexhub.hub.lockout_api import LockoutsHandler

        self.forward_login_events()  # at start: what an earlier run could not forward

        return [*super().get_handlers(app),
                (r"/api/plexhub/lockouts", LockoutsHandler),
                (r"/api/plexhub/lockouts/([^/]+)", LockoutsHandler)]
