"""Alembic environment: runs on the connection plexhub hands in (see api/db.py)."""

from __future__ import annotations

from alembic import context

from plexhub.api import models  # noqa: F401  (registers the tables)
from plexhub.api.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` on the command line: use PLEXHUB_DATABASE_URL
    from plexhub.api.db import make_engine
    from plexhub.settings import Settings

    engine = make_engine(Settings().catalog_url)
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
