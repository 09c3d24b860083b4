"""job leases: the owning API process, its heartbeat, a cancel request seen by any process

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 23:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("cancel_requested", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("owner")
