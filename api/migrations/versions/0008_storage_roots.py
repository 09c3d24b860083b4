"""storage roots: an image's store is recorded relative to a named storage root

``images.storage_root`` names the root (``stores``: ``PLEXHUB_STORE_ROOT``) and ``store_uri``
then holds the store's key under it, so a root can move (a new ``PLEXHUB_STORE_ROOT``) without
touching the catalog. Existing rows whose absolute location lies under a configured root are
converted; others keep their absolute location (``storage_root`` NULL).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 00:50:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

images = sa.table("images", sa.column("id", sa.String), sa.column("store_uri", sa.Text),
                  sa.column("storage_root", sa.String))


def _roots() -> Any:
    from plexhub.storage import StoreRoots

    roots = context.config.attributes.get("store_roots")
    if roots is None:
        from plexhub.settings import get_settings

        roots = StoreRoots.from_settings(get_settings())
    return roots


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("storage_root", sa.String(length=64), nullable=True))
    roots = _roots()
    conn = op.get_bind()
    rows = conn.execute(sa.select(images.c.id, images.c.store_uri)
                        .where(images.c.store_uri.is_not(None))).all()
    for image_id, uri in rows:
        found = roots.relative(uri)
        if found is None or not found[1]:
            continue  # outside every root (or the root itself): stays absolute
        conn.execute(images.update().where(images.c.id == image_id)
                     .values(storage_root=found[0], store_uri=found[1]))


def downgrade() -> None:
    roots = _roots()
    conn = op.get_bind()
    rows = conn.execute(sa.select(images.c.id, images.c.store_uri, images.c.storage_root)
                        .where(images.c.storage_root.is_not(None))).all()
    for image_id, key, name in rows:
        conn.execute(images.update().where(images.c.id == image_id)
                     .values(store_uri=roots.resolve(name, key).url))
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("storage_root")
