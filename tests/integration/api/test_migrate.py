"""The catalog's migration runs once, under a lock, before any worker serves (issue 13, 15).

Two real processes started together on one EMPTY catalog (a PostgreSQL database, a SQLite
file) both succeed, four times over: one migrates, the other waits and finds it current. The
app factory itself never migrates: on an un-migrated catalog it refuses, naming the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from plexhub.api.main import create_app
from plexhub.api.schema import head, migrate_catalog
from plexhub.client import wait_healthy
from plexhub.errors import CatalogSchemaError
from plexhub.settings import Settings
from tests.helpers.api import ADMIN
from tests.helpers.net import free_port
from tests.helpers.postgres import fresh_database

ROUNDS = 4


def _catalog(request: pytest.FixtureRequest, kind: str, folder: Path) -> tuple[str, dict[str, str]]:
    """An empty catalog of ``kind`` and the environment that points ``plexhub`` at it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXHUB_")}
    env.update(PLEXHUB_DATA_DIR=str(folder / "data"), PLEXHUB_ADMIN_TOKEN=ADMIN)
    if kind == "postgresql":
        url = fresh_database(request.getfixturevalue("pg_server"))
        env["PLEXHUB_DATABASE_URL"] = url
    else:
        url = f"sqlite:///{folder / 'data' / 'catalog.sqlite'}"
    return url, env


def _versions(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return list(rows)
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_migrations_started_together_both_succeed_once(
        request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    for round_ in range(ROUNDS):
        url, env = _catalog(request, kind, tmp_path / f"r{round_}")
        procs = [subprocess.Popen([sys.executable, "-m", "plexhub", "migrate"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], (round_, outs)
        said = sorted(out for out, _err in outs)
        assert said == [f"plexhub: catalog schema already at revision {head()}\n",
                        f"plexhub: catalog schema migrated from revision none (empty) to "
                        f"{head()}\n"], (round_, outs)
        assert _versions(url) == [head()]


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    wait_healthy(base, 120, lambda: None if proc.poll() is None else
                 f"exit {proc.poll()}:\n{log.read_text(errors='replace')[-3000:]}",
                 interval=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_services_started_together_on_an_empty_catalog_both_serve(
        request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    """Issue 15: two replicas starting together on an empty PostgreSQL raced on the migration
    (one crashed in 2 of 4 tries). ``plexhub serve`` migrates under the lock first."""
    for round_ in range(ROUNDS):
        folder = tmp_path / f"r{round_}"
        url, env = _catalog(request, kind, folder)
        folder.mkdir(parents=True)
        ports = [free_port(), free_port()]
        logs = [folder / f"serve{i}.log" for i in range(2)]
        procs = []
        for port, log in zip(ports, logs, strict=True):
            with log.open("wb") as out:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "plexhub", "serve", "--port", str(port),
                     "--log-level", "warning"], env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True))
        try:
            for port, proc, log in zip(ports, procs, logs, strict=True):
                _wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            codes = [proc.wait(60) for proc in procs]
        # a graceful stop (uvicorn re-raises the SIGTERM it handled once it has shut down)
        assert set(codes) <= {0, -signal.SIGTERM}, (
            round_, codes, [log.read_text(errors="replace") for log in logs])
        said = sorted(line for log in logs for line in log.read_text().splitlines()
                      if "catalog schema" in line)
        assert said == [f"plexhub: catalog schema already at revision {head()}",
                        f"plexhub: catalog schema migrated from revision none (empty) to "
                        f"{head()}"], (round_, said)
        assert _versions(url) == [head()]


def test_the_app_refuses_an_unmigrated_catalog_and_names_the_command(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(CatalogSchemaError) as caught:
        create_app(settings)
    text_ = str(caught.value)
    assert "none (empty catalog)" in text_
    assert f"needs {head()}" in text_
    assert "run `plexhub migrate`" in text_
    assert str(tmp_path / "data" / "catalog.sqlite") in text_  # which catalog
    engine = create_engine(settings.catalog_url)
    try:  # the factory did not migrate it
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    assert migrate_catalog(settings.catalog_url) == (None, head())
    create_app(settings).state.plexhub.db.dispose()  # now current: it builds
    assert migrate_catalog(settings.catalog_url) == (head(), head())  # a second run: nothing


def test_the_app_refuses_an_older_or_unknown_revision(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    migrate_catalog(settings.catalog_url)
    engine = create_engine(settings.catalog_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
        with pytest.raises(CatalogSchemaError, match="at revision 0003, this plexhub needs"):
            create_app(settings)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(CatalogSchemaError, match=r"9999, which this plexhub .* does not"):
            create_app(settings)
    finally:
        engine.dispose()


def test_the_migration_lock_file_is_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    migrate_catalog(settings.catalog_url)
    lock = tmp_path / "data" / "catalog.sqlite.migrate-lock"
    assert lock.exists()
    assert lock.stat().st_mode & 0o077 == 0
