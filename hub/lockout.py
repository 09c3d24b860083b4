"""Brute-force protection of the hub's login form: failed logins counted per user name and per
client address, locks decided by :mod:`plexhub.policies.lockout`, cleared by an admin.

The failures live in ``<hub_dir>/login-lockout.sqlite`` (mode 0600), so a restart of the
hub resets nothing and ``plexhub hub unlock`` (another process) can clear a lock while the
hub runs. Every failure, refusal, lock and unlock is one JSON line in
``<hub_dir>/login-audit.jsonl`` (mode 0600; each line with an ``id``) and a line in the hub's
log; the hub forwards the failures and refusals from that file to the API's audit chain
(:mod:`plexhub.hub.loginforward`), so the file is also their spool. A success clears the
user name's failures (not the address's: logging into one's own account must not reset a
guesser's count).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from plexhub.policies.lockout import LockoutRule, LockState, evaluate
from plexhub.settings import Settings

DB_NAME = "login-lockout.sqlite"
AUDIT_NAME = "login-audit.jsonl"
FIELD_MAX = 1000  # characters of a field of an audit line (a name tried, say)
Kind = Literal["user", "address"]
_PREFIX: dict[Kind, str] = {"user": "user:", "address": "addr:"}
log = logging.getLogger("plexhub.hub.lockout")


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Refusal:
    """Why a login is refused without looking at the password."""

    kind: Kind
    subject: str
    until: float

    def message(self, now: float) -> str:
        minutes = max(1, round((self.until - now) / 60))
        when = f"after {utc(self.until).replace('T', ' ').replace('+00:00', ' UTC')} " \
               f"(in about {minutes} minute{'s' if minutes != 1 else ''})"
        what = "this account is" if self.kind == "user" else "logins from your address are"
        return (f"Too many failed logins: {what} temporarily locked. Try again {when}, "
                "or ask an administrator to unlock it.")


def _open_private(path: Path) -> None:
    """Create ``path`` readable by the owner only (an existing file is made so)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


class LoginGuard:
    """Failure counters of one hub (see the module docstring)."""

    def __init__(self, folder: Path, user_rule: LockoutRule, address_rule: LockoutRule,
                 clock: Callable[[], float] = time.time,
                 logger: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
        self.folder = folder
        self.log = logger or log
        self.db_path = folder / DB_NAME
        self.audit_path = folder / AUDIT_NAME
        self.rules: dict[Kind, LockoutRule] = {"user": user_rule, "address": address_rule}
        self.clock = clock
        _open_private(self.db_path)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS failures "
                       "(key TEXT NOT NULL, ts REAL NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS failures_key ON failures (key, ts)")

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginGuard:
        return cls(settings.hub_dir.absolute(), *rules_from(settings))

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=10, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # -- the login form ---------------------------------------------------------------------
    def check(self, user: str, address: str) -> Refusal | None:
        """Before the password is checked: a refusal while the name or the address is locked
        (audited as ``login.refused``)."""
        now = self.clock()
        with self._db() as db:
            refusal = self._refusal(db, user, address, now)
        if refusal is not None:
            self._audit("login.refused", user=user, address=address, until=utc(refusal.until),
                        locked=refusal.kind)
        return refusal

    def failed(self, user: str, address: str) -> Refusal | None:
        """After a wrong password: count it for the name and the address (audited as
        ``login.failure``, and ``login.locked`` when it starts a lock); the refusal when the
        name or address is locked now."""
        now = self.clock()
        keys: dict[Kind, str] = {"user": _PREFIX["user"] + user,
                                 "address": _PREFIX["address"] + address}
        with self._db() as db:
            horizon = max(r.horizon for r in self.rules.values())
            db.execute("DELETE FROM failures WHERE ts < ?", (now - horizon,))
            db.executemany("INSERT INTO failures (key, ts) VALUES (?, ?)",
                           [(k, now) for k in keys.values()])
            states = {kind: self._state(db, kind, key, now) for kind, key in keys.items()}
        self._audit("login.failure", user=user, address=address)
        for kind, state in states.items():
            if state.locked and state.until is not None:
                self._audit("login.locked", user=user, address=address, locked=kind,
                            until=utc(state.until), lock_number=state.locks)
        return self._first(user, address, states)

    def succeeded(self, user: str) -> None:
        """A right password while not locked: the name starts over."""
        with self._db() as db:
            db.execute("DELETE FROM failures WHERE key = ?", (_PREFIX["user"] + user,))

    # -- admins -----------------------------------------------------------------------------
    def unlock(self, subject: str, actor: str) -> int:
        """Clear the failures of a user name or an address (both when ``subject`` could be
        either); audited as ``login.unlock``. Returns how many failures were cleared."""
        keys = sorted({p + s for p in _PREFIX.values() for s in (subject, subject.lower())})
        with self._db() as db:
            cleared = sum(db.execute("DELETE FROM failures WHERE key = ?", (k,)).rowcount
                          for k in keys)
        self._audit("login.unlock", subject=subject, actor=actor, cleared=cleared)
        return cleared

    def lockouts(self) -> list[dict[str, Any]]:
        """The names and addresses locked now, with when each lock ends."""
        now, out = self.clock(), []
        with self._db() as db:
            keys = [k for (k,) in db.execute("SELECT DISTINCT key FROM failures ORDER BY key")]
            for key in keys:
                kind: Kind = "user" if key.startswith(_PREFIX["user"]) else "address"
                state = self._state(db, kind, key, now)
                if state.locked and state.until is not None:
                    out.append({"kind": kind, "subject": key.split(":", 1)[1],
                                "until": utc(state.until), "locks": state.locks})
        return out

    # -- internals --------------------------------------------------------------------------
    def _state(self, db: sqlite3.Connection, kind: Kind, key: str, now: float) -> LockState:
        times = [ts for (ts,) in db.execute("SELECT ts FROM failures WHERE key = ?", (key,))]
        return evaluate(times, now, self.rules[kind])

    def _refusal(self, db: sqlite3.Connection, user: str, address: str,
                 now: float) -> Refusal | None:
        subjects: dict[Kind, str] = {"user": user, "address": address}
        states = {kind: self._state(db, kind, _PREFIX[kind] + subject, now)
                  for kind, subject in subjects.items()}
        return self._first(user, address, states)

    @staticmethod
    def _first(user: str, address: str, states: dict[Kind, LockState]) -> Refusal | None:
        """The lock that lasts longest, if any."""
        found = [Refusal(kind, user if kind == "user" else address, s.until)
                 for kind, s in states.items() if s.locked and s.until is not None]
        return max(found, key=lambda r: r.until) if found else None

    def _audit(self, event: str, **fields: Any) -> None:
        fields = {k: _short(v) for k, v in fields.items()}  # a name tried may be huge
        record = {"ts": utc(self.clock()), "event": event, "id": uuid.uuid4().hex, **fields}
        line = json.dumps(record, sort_keys=True)
        level = logging.INFO if event == "login.unlock" else logging.WARNING
        self.log.log(level, "plexhub login audit: %s", line)
        _open_private(self.audit_path)
        fd = os.open(self.audit_path, os.O_WRONLY | os.O_APPEND)
        with os.fdopen(fd, "a") as f:
            f.write(line + "\n")


def _short(value: Any) -> Any:
    """Text over :data:`FIELD_MAX` characters cut, saying how long it was."""
    if isinstance(value, str) and len(value) > FIELD_MAX:
        return f"{value[:FIELD_MAX]}... ({len(value)} characters)"
    return value


def rules_from(settings: Settings) -> tuple[LockoutRule, LockoutRule]:
    """(per user name, per address) from the ``hub_login_*`` settings."""
    common = {"window": float(settings.hub_login_window_seconds),
              "lock_seconds": float(settings.hub_login_lock_seconds),
              "max_lock_seconds": float(settings.hub_login_max_lock_seconds)}
    return (LockoutRule(max_failures=settings.hub_login_max_failures, **common),
            LockoutRule(max_failures=settings.hub_login_address_max_failures, **common))
