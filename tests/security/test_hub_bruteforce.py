"""Issue 12, hub login: wrong passwords lock the user name (and, from one address, every name)
with growing locks that survive a restart; the right password is refused while locked, with
a message that says so and when to retry; an admin clears a lock (CLI or hub API); every
failure, lock, refusal and unlock is audited. Against the authenticator and a real hub."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from plexhub.hub import auth as hubauth
from plexhub.hub import users as users_module
from plexhub.hub.auth import LoginLockedError, PlexhubAuthenticator
from plexhub.hub.lockout import AUDIT_NAME, DB_NAME, LoginGuard
from plexhub.hub.users import ensure_demo_users
from plexhub.policies.lockout import LockoutRule
from tests.helpers.hub import PASSWORD, clean_env, form_login, running_hub

RULE = LockoutRule(max_failures=5, window=900, lock_seconds=900, max_lock_seconds=86400)
ADDRESS_RULE = LockoutRule(max_failures=20, window=900, lock_seconds=900)


def handler(address: str) -> Any:
    return SimpleNamespace(request=SimpleNamespace(remote_ip=address))


def audit(folder: Path) -> list[dict[str, Any]]:
    path = folder / AUDIT_NAME
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def authenticator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> tuple[PlexhubAuthenticator, list[str]]:
    """The hub's authenticator on the demo users; the list collects each password check."""
    users = tmp_path / "users.json"
    ensure_demo_users(users, PASSWORD)
    checked: list[str] = []
    real_verify = users_module.verify_password

    def counting(password: str, encoded: str) -> bool:
        checked.append(password)
        return real_verify(password, encoded)

    monkeypatch.setattr(hubauth, "verify_password", counting)
    return PlexhubAuthenticator(users_file=str(users), lockout_dir=str(tmp_path)), checked


def login(auth: PlexhubAuthenticator, user: str, password: str,
          address: str = "192.0.2.1") -> Any:
    return asyncio.run(auth.authenticate(handler(address),
                                         {"username": user, "password": password}))


# -- the authenticator -------------------------------------------------------------------

def test_twenty_wrong_passwords_lock_the_name_and_the_right_one_is_refused(
        authenticator: tuple[PlexhubAuthenticator, list[str]], tmp_path: Path) -> None:
    auth, checked = authenticator
    outcomes = []
    for i in range(20):
        try:
            outcomes.append(login(auth, "sponsor", f"guess-{i:04d}"))
        except LoginLockedError as exc:
            outcomes.append(exc.status_code)
    assert outcomes == [None] * 4 + [429] * 16
    assert len(checked) == 5  # no password is even looked at while locked
    with pytest.raises(LoginLockedError) as refused:
        login(auth, "sponsor", PASSWORD)
    message = refused.value.get_message() or ""
    assert refused.value.status_code == 429
    assert "temporarily locked" in message
    assert re.search(r"Try again after \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in about 1[45] "
                     r"minutes\)", message), message
    assert len(checked) == 5
    # a name that does not exist is locked the same way (nothing tells names apart)
    for i in range(5):
        with pytest.raises(LoginLockedError) if i == 4 else contextlib.nullcontext():
            assert login(auth, "nobody", f"guess-{i:04d}") is None
    # other names from the same address still log in (the address has 10 failures of 20)
    assert login(auth, "analyst", PASSWORD) == "analyst"
    # an admin clears the lock; the right password then works
    assert auth.guard.unlock("sponsor", actor="test-admin") == 5
    assert login(auth, "sponsor", PASSWORD) == "sponsor"
    events = [e["event"] for e in audit(tmp_path) if e.get("user") == "sponsor"
              or e.get("subject") == "sponsor"]
    assert events == (["login.failure"] * 4 + ["login.failure", "login.locked"]
                      + ["login.refused"] * 15 + ["login.refused", "login.unlock"])
    unlock = next(e for e in audit(tmp_path) if e["event"] == "login.unlock")
    assert unlock["actor"] == "test-admin"
    for name in (DB_NAME, AUDIT_NAME):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


def test_one_address_guessing_many_names_is_locked(
        authenticator: tuple[PlexhubAuthenticator, list[str]], tmp_path: Path) -> None:
    auth, _ = authenticator
    for i in range(19):
        assert login(auth, f"user{i}", "wrong-password", address="198.51.100.7") is None
    with pytest.raises(LoginLockedError, match="logins from your address are temporarily"):
        login(auth, "user19", "wrong-password", address="198.51.100.7")
    with pytest.raises(LoginLockedError, match="from your address"):
        login(auth, "scientist", PASSWORD, address="198.51.100.7")
    assert login(auth, "scientist", PASSWORD, address="198.51.100.8") == "scientist"
    locks = auth.guard.lockouts()
    assert [(x["kind"], x["subject"]) for x in locks] == [("address", "198.51.100.7")]
    auth.guard.unlock("198.51.100.7", actor="test-admin")
    assert login(auth, "scientist", PASSWORD, address="198.51.100.7") == "scientist"


def test_concurrent_guesses_are_checked_one_at_a_time(
        authenticator: tuple[PlexhubAuthenticator, list[str]]) -> None:
    auth, checked = authenticator

    async def storm() -> list[Any]:
        return await asyncio.gather(*(
            auth.authenticate(handler(f"203.0.113.{i}"),
                              {"username": "sponsor", "password": f"guess-{i:04d}"})
            for i in range(30)), return_exceptions=True)

    results = asyncio.run(storm())
    assert len(checked) == 5
    assert sum(isinstance(r, LoginLockedError) for r in results) == 26


def test_locks_survive_a_restart_grow_and_end(tmp_path: Path) -> None:
    clock = Clock()
    guard = LoginGuard(tmp_path, RULE, ADDRESS_RULE, clock=clock)
    for _ in range(5):
        guard.failed("ann", "192.0.2.9")
    first = guard.check("ann", "192.0.2.1")
    assert first is not None
    assert first.until == clock.now + 900
    restarted = LoginGuard(tmp_path, RULE, ADDRESS_RULE, clock=clock)  # a new hub process
    assert restarted.check("ann", "192.0.2.1") is not None
    clock.now += 901
    assert restarted.check("ann", "192.0.2.1") is None
    for _ in range(5):
        restarted.failed("ann", "192.0.2.9")
    second = restarted.check("ann", "192.0.2.1")
    assert second is not None
    assert second.until == clock.now + 1800  # the second lock lasts twice as long
    restarted.succeeded("ann")  # (the hub never calls this while locked; it clears)
    assert restarted.check("ann", "192.0.2.1") is None


def test_the_cli_clears_a_lock(tmp_path: Path) -> None:
    data = tmp_path / "data"
    guard = LoginGuard(data / "hub", RULE, ADDRESS_RULE)
    for _ in range(5):
        guard.failed("sponsor", "192.0.2.1")
    assert guard.check("sponsor", "192.0.2.2") is not None
    env = clean_env(PLEXHUB_DATA_DIR=str(data))
    listed = subprocess.run([sys.executable, "-m", "plexhub", "hub", "lockouts"], env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    assert re.search(r"user\s+sponsor\s+until ", listed.stdout), listed.stdout
    done = subprocess.run([sys.executable, "-m", "plexhub", "hub", "unlock", "sponsor"],
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    assert "5 failed login(s) cleared" in done.stdout
    assert guard.check("sponsor", "192.0.2.2") is None
    unlock = audit(data / "hub")[-1]
    assert unlock["event"] == "login.unlock"
    assert unlock["subject"] == "sponsor"
    assert unlock["actor"].startswith("cli:")


# -- a real hub ------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_real_hub_locks_refuses_and_lets_an_admin_unlock(tmp_path: Path) -> None:
    with running_hub(tmp_path) as hub:
        statuses = [form_login(hub, "sponsor", f"wrong-password-{i}").status_code
                    for i in range(20)]
        assert statuses == [403] * 4 + [429] * 16, statuses
        refused = form_login(hub, "sponsor", PASSWORD)
        assert refused.status_code == 429
        assert "temporarily locked" in refused.text
        assert "Try again after" in refused.text
        assert 'name="password"' in refused.text  # the login form, with the message
        locks = hub.hub_api("GET", "/plexhub/lockouts")
        assert locks.status_code == 200, locks.text
        assert [(x["kind"], x["subject"]) for x in locks.json()["lockouts"]] \
            == [("user", "sponsor")]
        # only admins clear locks
        sponsor_token = hub.user_token("sponsor")
        assert hub.hub_api("DELETE", "/plexhub/lockouts/sponsor",
                           token=sponsor_token).status_code == 403
        assert hub.hub_api("DELETE", "/plexhub/lockouts/sponsor").status_code == 204
        _, location = hub.login("sponsor")  # the right password works again
        assert location.endswith("/portal/")

        # the CLI, another process, clears a lock of the running hub too
        for i in range(5):
            form_login(hub, "analyst", f"wrong-password-{i}")
        assert form_login(hub, "analyst", PASSWORD).status_code == 429
        env = clean_env(PLEXHUB_DATA_DIR=str(hub.data_dir))
        subprocess.run([sys.executable, "-m", "plexhub", "hub", "unlock", "analyst"],
                       env=env, capture_output=True, timeout=120, check=True)
        hub.login("analyst")

        events = audit(hub.data_dir / "hub")
        kinds = [(e["event"], e.get("user") or e.get("subject")) for e in events]
        assert kinds.count(("login.failure", "sponsor")) == 5
        assert ("login.locked", "sponsor") in kinds
        assert kinds.count(("login.refused", "sponsor")) == 16
        assert ("login.unlock", "sponsor") in kinds
        assert ("login.unlock", "analyst") in kinds
        assert {e["address"] for e in events if "address" in e} == {"127.0.0.1"}
        hub_unlock = next(e for e in events if e["event"] == "login.unlock")
        assert hub_unlock["actor"] == "hub:plexhub-ops"
        log = hub.log_path.read_text(errors="replace")
        assert "plexhub login audit" in log
        assert "login.locked" in log
    assert "Traceback" not in hub.log_path.read_text(errors="replace")
