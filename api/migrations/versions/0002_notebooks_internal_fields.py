"""published notebooks; study-internal metadata fields

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "published_notebooks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ipynb", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "name", "version"),
    )
    with op.batch_alter_table("published_notebooks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_published_notebooks_study_id"), ["study_id"], unique=False
        )
    # existing studies get an empty list; the server default keeps raw INSERTs valid too
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("internal_fields", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("internal_fields")
    with op.batch_alter_table("published_notebooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_published_notebooks_study_id"))
    op.drop_table("published_notebooks")
