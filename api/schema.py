"""The catalog's schema: brought to the newest Alembic revision once, under a lock, by
``plexhub migrate`` (and by ``plexhub serve`` before any worker starts); the app factory only
checks that it is current.

The lock makes two processes that start together on an empty catalog both succeed: one
migrates, the other waits and then finds the schema current. On PostgreSQL it is a
transaction-level advisory lock (a fixed key) taken before Alembic reads ``alembic_version``
and held until the upgrade commits; on a SQLite file it is an exclusive ``flock`` on
``<catalog>.migrate-lock`` next to it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from plexhub.api.db import sqlite_file
from plexhub.errors import CatalogSchemaError
from plexhub.private import FILE_MODE

MIGRATIONS = Path(__file__).parent / "migrations"
PG_LOCK_KEY = int.from_bytes(b"plexmig", "big")  # fixed: every plexhub process takes this one


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@cache
def head() -> str | None:
    """The newest revision this plexhub knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(conn: Connection) -> str | None:
    """The catalog's revision (None: no schema yet)."""
    return MigrationContext.configure(conn).get_current_revision()


def lock_file(engine: Engine) -> Path | None:
    """The file whose flock serialises migrations of a file-backed SQLite catalog."""
    path = sqlite_file(str(engine.url))
    return None if path is None else path.with_name(path.name + ".migrate-lock")


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the migration lock until it ends."""
    path = lock_file(engine) if engine.dialect.name == "sqlite" else None
    fd = None
    if path is not None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close, also if this process dies
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":  # released when the transaction ends
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
            yield conn
    finally:
        if fd is not None:
            os.close(fd)


def migrate(engine: Engine, store_roots: Any = None) -> tuple[str | None, str | None]:
    """Bring the catalog to the newest revision under the lock; return (before, after).
    ``store_roots`` (:class:`plexhub.storage.StoreRoots`, default: the settings'): what
    migration 0008 makes existing absolute store locations relative to."""
    with _locked(engine) as conn:
        before = current(conn)
        if before != head():
            cfg = _config()
            cfg.attributes["connection"] = conn
            if store_roots is not None:
                cfg.attributes["store_roots"] = store_roots
            command.upgrade(cfg, "head")
        return before, current(conn)


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:  # alembic's ResolutionError for a revision it has no script of
        return False


def describe(engine: Engine) -> str:
    """The catalog as a message may name it (no password)."""
    return engine.url.render_as_string(hide_password=True)


def check(engine: Engine) -> None:
    """Raise CatalogSchemaError unless the catalog's schema is the newest revision."""
    with engine.connect() as conn:
        found = current(conn)
    newest = head()
    if found == newest:
        return
    if found is None or _known(found):
        raise CatalogSchemaError(
            f"catalog {describe(engine)}",
            f"its schema is at revision {found or 'none (empty catalog)'}, this plexhub "
            f"needs {newest}",
            "run `plexhub migrate` with the same PLEXHUB_DATA_DIR and PLEXHUB_DATABASE_URL "
            "before starting the service (`plexhub serve` does it itself)")
    raise CatalogSchemaError(
        f"catalog {describe(engine)}",
        f"its schema is at revision {found}, which this plexhub ({newest}) does not know",
        "a newer plexhub migrated it: run that version, or upgrade this one")


def migrate_catalog(url: str, store_roots: Any = None) -> tuple[str | None, str | None]:
    """``plexhub migrate``: migrate the catalog at ``url`` once; return (before, after)."""
    from plexhub.api.db import make_engine

    engine = make_engine(url)
    try:
        return migrate(engine, store_roots)
    finally:
        engine.dispose()
