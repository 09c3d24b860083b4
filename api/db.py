"""Engine and sessions for the catalog: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from sqlalchemy import ColumnElement, create_engine, event, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from plexhub.errors import ConflictError
from plexhub.private import DIR_MODE, private_file


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def aware(ts: datetime) -> datetime: ...
@overload
def aware(ts: None) -> None: ...
def aware(ts: datetime | None) -> datetime | None:
    """A timestamp read back from the catalog, comparable with :func:`utcnow`: SQLite gives
    naive datetimes for the UTC values it stores."""
    return ts.replace(tzinfo=UTC) if ts is not None and ts.tzinfo is None else ts


def newest_versions(session: Session, model: Any, key: Any,
                    *where: ColumnElement[bool]) -> list[Any]:
    """The newest version of each entity of a versioned table (annotations, findings: one row
    per version, ``key`` the id the versions share, ``model.version`` their number) among the
    rows ``where`` selects, in the order they were created."""
    newest = select(key, func.max(model.version).label("v")).where(*where) \
        .group_by(key).subquery()
    return list(session.scalars(select(model).join(
        newest, (key == newest.c[key.key]) & (model.version == newest.c.v))
        .order_by(model.created_at, model.id)).all())


def next_version(session: Session, model: Any, *where: ColumnElement[bool]) -> int:
    """The number the next version gets among the rows ``where`` selects (1 for the first)."""
    return int(session.scalar(select(func.max(model.version)).where(*where)) or 0) + 1


def commit_version(session: Session, what: str) -> None:
    """Commit a new numbered version (a published notebook, a guide); when another request
    took the same number first (the table's unique constraint), roll back and answer 409."""
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(what, "was published by someone else at the same time",
                            "publish again") from exc


def sqlite_file(url: str) -> Path | None:
    """The database file of a file-backed SQLite URL, else None."""
    parsed = make_url(url)
    db = parsed.database
    if not parsed.drivername.startswith("sqlite") or not db or db == ":memory:" \
            or db.startswith("file:"):
        return None
    return Path(db)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:  # the catalog is the service's alone: 0600, also its journals
            path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            private_file(path, create=True)
            for suffix in ("-wal", "-shm", "-journal"):  # SQLite gives them the file's mode
                private_file(path.with_name(path.name + suffix))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    def __init__(self, url: str, profiles: Mapping[str, Any] | None = None,
                 store_roots: Any = None) -> None:
        """``profiles``: the compliance profiles by name, on every session's ``info``
        (``plexhub.api.audit`` enforces them; the built-in ones when None).
        ``store_roots``: the named storage roots (:class:`plexhub.storage.StoreRoots`) the
        catalog's store locations are relative to, on every session's ``info`` too
        (``Image.store_root`` resolves against them; the settings' when None)."""
        self.url = url
        self.engine = make_engine(url)
        self.store_roots = store_roots
        info: dict[str, Any] = {}
        if profiles is not None:
            info["profiles"] = profiles
        if store_roots is not None:
            info["store_roots"] = store_roots
        self._factory = sessionmaker(self.engine, expire_on_commit=False, info=info or None)

    def create(self) -> None:
        """Migrate the schema to the newest revision, under the lock (plexhub.api.schema)."""
        from plexhub.api.schema import migrate

        migrate(self.engine, store_roots=self.store_roots)

    def check(self) -> None:
        """Raise CatalogSchemaError unless the schema is current (``plexhub migrate``)."""
        from plexhub.api.schema import check

        check(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._factory() as s:
            yield s

    def new_session(self) -> Session:
        return self._factory()

    def dispose(self) -> None:
        self.engine.dispose()
