"""image retirement (issue 14, "no hard deletes"): retired and purged images are tombstones

``images.retired_at`` / ``retired_by``: the image is retired (hidden from normal lists and
from sponsors, kept and exported); ``purged_at``: its store was removed once its profile's
retention period ended and the profile allows hard deletes. The row itself is never deleted.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 03:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retired_at", TS, nullable=True))
        batch_op.add_column(sa.Column("retired_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("purged_at", TS, nullable=True))
        batch_op.create_index("ix_images_retired_at", ["retired_at"])


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index("ix_images_retired_at")
        batch_op.drop_column("purged_at")
        batch_op.drop_column("retired_by")
        batch_op.drop_column("retired_at")
