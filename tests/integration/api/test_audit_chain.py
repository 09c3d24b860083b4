"""The audit trail is tamper-evident (issue 14), on SQLite and PostgreSQL: every event is
chained by hash (globally and per study) and records who, with which role, from where and
under which request; the database refuses UPDATE and DELETE of audit rows; `plexhub audit
verify` names the first broken event for an altered, a removed, an inserted and a reordered
row (the test drops the triggers, as a DBA could); concurrent writers never fork a chain; and
the change and its audit event commit together or not at all."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Table, create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from plexhub.api import audit
from plexhub.api.auditchain import GENESIS, event_hash, verify
from plexhub.api.cli import verify_audit
from plexhub.api.db import Database
from plexhub.api.models import AuditEvent
from plexhub.policies.access import Principal
from tests.helpers.api import Api

SCI = Principal("sci", "scientist")


def _db(api: Api) -> Database:
    return api.client.app.state.plexhub.db  # type: ignore[attr-defined]


def _all(api: Api) -> list[dict[str, Any]]:
    """Every event of the global chain: the service's system.config first (api/sysconfig)."""
    with _db(api).session() as s:
        return list(audit.rows(s))


def _events(api: Api) -> list[dict[str, Any]]:
    """The events of the changes the test made (without the service's system.config)."""
    return [e for e in _all(api) if e["action"] != "system.config"]


def _history(api: Api) -> None:
    """Events in two studies, interleaved: S1 create, S2 create, then three S1/S2 changes."""
    api.study("S1")
    api.study("S2")
    for code, title in (("S1", "one"), ("S2", "two"), ("S1", "three")):
        r = api.client.patch(f"/api/v1/studies/{code}", json={"title": title},
                             headers=api.h())
        assert r.status_code == 200, r.text


def _drop_triggers(engine: Engine) -> None:
    """What a DBA with the owner's rights could do."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))


@pytest.mark.requirement("audit.chain", "audit.attribution")
def test_events_are_chained_with_who_where_and_which_request(api: Api) -> None:
    _history(api)
    r = api.client.patch("/api/v1/studies/S2", json={"title": "four", "reason": "typo"},
                         headers={**api.h(), "X-Request-ID": "req-42"})
    assert r.status_code == 200, r.text
    chain = _all(api)
    assert chain[0]["action"] == "system.config"  # the service's start
    assert chain[0]["prev_hash"] == GENESIS
    for before, after in itertools.pairwise(chain):
        assert after["prev_hash"] == before["hash"]
    events = chain[1:]
    assert [e["action"] for e in events] == ["study.create"] * 2 + ["study.update"] * 4
    s1 = [e for e in events if e["study_code"] == "S1"]
    assert s1[0]["study_prev_hash"] == GENESIS
    assert [e["study_prev_hash"] for e in s1[1:]] == [e["hash"] for e in s1[:-1]]
    for e in events:
        assert e["hash"] == event_hash(e)
        assert e["role"] == "admin"
        assert e["client"] == "testclient"
        assert e["request_id"]
    assert events[-1]["request_id"] == "req-42"
    assert events[-1]["reason"] == "typo"
    assert len({e["request_id"] for e in events}) == len(events)
    assert verify(chain) == (len(chain), None)
    assert verify(events, "S1") == (3, None)
    ok, said = verify_audit(api.settings.catalog_url)
    assert ok, said
    assert said == f"the audit chains intact: {len(chain)} events"


@pytest.mark.requirement("audit.append_only")
def test_the_database_refuses_to_change_or_delete_audit_rows(api: Api) -> None:
    _history(api)
    engine = _db(api).engine
    statements = ["UPDATE audit_events SET reason = 'backdated' WHERE seq = 2",
                  "DELETE FROM audit_events WHERE seq = 2"]
    if engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_events")
    for sql in statements:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    assert len(_events(api)) == 5
    assert verify_audit(api.settings.catalog_url)[0]


def _tamper(engine: Engine, kind: str, events: list[dict[str, Any]]) -> tuple[int, int]:
    """Tamper with the trail as ``kind`` says; return the seqs the verifier must name in the
    global chain and in S1's (S1's events are the first, third and fifth)."""
    seqs = [e["seq"] for e in events]
    third = seqs[2]
    with engine.begin() as conn:
        if kind == "altered":
            conn.execute(text("UPDATE audit_events SET reason = 'approved by QA' "
                              "WHERE seq = :s"), {"s": third})
            return third, third
        if kind == "removed":
            conn.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": third})
            return seqs[3], seqs[4]
        if kind == "reordered":  # S1's second and third events swap places
            conn.execute(text("UPDATE audit_events SET seq = -1 WHERE seq = :s"), {"s": third})
            conn.execute(text("UPDATE audit_events SET seq = :a WHERE seq = :b"),
                         {"a": third, "b": seqs[4]})
            conn.execute(text("UPDATE audit_events SET seq = :b WHERE seq = -1"),
                         {"b": seqs[4]})
            return third, third
        assert kind == "inserted"
        # make room after the second event, and put a forged S1 event there whose own hash
        # and links are right: the event after it no longer follows
        conn.execute(text("UPDATE audit_events SET seq = seq + 1000 WHERE seq > :s"),
                     {"s": seqs[1]})
        forged = dict(events[2], seq=seqs[1] + 1, reason="forged", actor="mallory")
        forged["hash"] = event_hash(forged)
        conn.execute(cast(Table, AuditEvent.__table__).insert().values(**forged))
        return third + 1000, third + 1000


@pytest.mark.requirement("audit.chain")
@pytest.mark.parametrize("kind", ["altered", "removed", "inserted", "reordered"])
def test_verify_names_the_first_broken_event(api: Api, kind: str) -> None:
    _history(api)
    events = _events(api)
    assert len(events) == 5
    engine = _db(api).engine
    _drop_triggers(engine)
    at, study_at = _tamper(engine, kind, events)
    ok, said = verify_audit(api.settings.catalog_url)
    assert not ok
    assert said.startswith(f"the audit chains BROKEN at event {at}: "), said
    problem = "does not match its hash" if kind == "altered" else "does not follow"
    assert problem in said
    # the tampered study's own chain shows it too; S2's still holds
    ok, said = verify_audit(api.settings.catalog_url, "S1")
    assert not ok
    assert said.startswith(f"study S1's audit chain BROKEN at event {study_at}: "), said
    assert verify_audit(api.settings.catalog_url, "S2") == (
        True, "study S2's audit chain intact: 2 events")


def test_the_command_exits_0_when_intact_and_1_naming_the_break(api: Api) -> None:
    _history(api)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXHUB_")}
    env.update(PLEXHUB_DATA_DIR=str(api.settings.data_dir))
    if api.settings.database_url:
        env["PLEXHUB_DATABASE_URL"] = api.settings.database_url

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "plexhub", "audit", "verify", *args],
                              env=env, capture_output=True, text=True, timeout=120)

    done = run()
    assert done.returncode == 0, done.stderr
    assert done.stdout == "plexhub: the audit chains intact: 6 events\n"  # + system.config
    engine = _db(api).engine
    _drop_triggers(engine)
    broken_at, _ = _tamper(engine, "altered", _events(api))
    done = run("--study", "S1")
    assert done.returncode == 1
    assert f"study S1's audit chain BROKEN at event {broken_at}:" in done.stderr
    done = run("--study", "s1")  # no such study: an error, not an empty intact chain
    assert done.returncode == 2
    assert done.stderr == ("plexhub: error: study s1: has no audit events in this catalog "
                           "(check the study code; codes are case-sensitive)\n")


WRITERS, EACH = 6, 8


def _write_concurrently(db: Database) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(EACH):
                with db.session() as s:
                    audit.record(s, SCI, "preset.save", "preset", f"w{n}-{i}",
                                 study_code="S1" if i % 2 else None)
                    time.sleep(0.002)  # the head read and the commit far apart
                    s.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []


def test_concurrent_writers_never_fork_the_chain(api: Api,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    api.study("S1")
    db = _db(api)
    _write_concurrently(db)
    assert len(_events(api)) == 1 + WRITERS * EACH
    chain = _all(api)
    assert verify(chain) == (len(chain), None)
    # the same writers without the append lock fork it: the test can see a fork
    monkeypatch.setattr(audit, "lock_chain", lambda session: None)
    _write_concurrently(db)
    assert verify(_all(api))[1] is not None


@pytest.mark.requirement("audit.same_transaction")
def test_a_failure_between_the_change_and_its_event_leaves_neither(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api.study("S1")

    def fail(session: object) -> None:  # the study row is flushed, the event not yet written
        raise RuntimeError("injected: the audit write fails")

    monkeypatch.setattr(audit, "lock_chain", fail)
    client = TestClient(api.client.app, raise_server_exceptions=False)
    r = client.post("/api/v1/studies", json={"code": "S9", "title": "t", "sponsor": "a"},
                    headers=api.h())
    assert r.status_code == 500
    r = client.patch("/api/v1/studies/S1", json={"title": "changed"}, headers=api.h())
    assert r.status_code == 500
    monkeypatch.undo()
    assert api.get("/api/v1/studies/S9").status_code == 404
    assert api.get("/api/v1/studies/S1").json()["title"] == "Study S1"
    events = _events(api)
    assert [(e["action"], e["entity_id"]) for e in events] == [("study.create", "S1")]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_0005_chains_the_events_already_there(
        request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    from alembic import command

    from plexhub.api.schema import _config, head
    from tests.helpers.postgres import fresh_database

    url = fresh_database(request.getfixturevalue("pg_server")) if kind == "postgresql" \
        else f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    engine = create_engine(url)
    try:
        cfg = _config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0004")
            for i, code in enumerate(["S1", None, "S1", "S2"]):
                conn.execute(text(
                    "INSERT INTO audit_events (ts, actor, action, entity_type, entity_id, "
                    "study_code, reason) VALUES (:ts, 'old', 'study.update', 'study', 'x', "
                    ":code, :reason)"),
                    {"ts": datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC), "code": code,
                     "reason": f"r{i}"})
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        assert verify_audit(url) == (True, "the audit chains intact: 4 events")
        assert verify_audit(url, "S1") == (True, "study S1's audit chain intact: 2 events")
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_events"))  # append-only now
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
            command.upgrade(cfg, "head")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
                == head()
    finally:
        engine.dispose()
