"""peer review (issue 19): assignments, verdicts, slide completion, the webhook outbox

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-05 00:40:00.000000

Numbered 0009 while 0008 is written in parallel; the lead chains the revisions at merge.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("primary_pathologist", sa.String(length=200), nullable=False),
        sa.Column("peer_reviewer", sa.String(length=200), nullable=False),
        sa.Column("assigned_by", sa.String(length=200), nullable=False),
        sa.Column("assigned_at", TS, nullable=False),
        sa.Column("locked_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"]),
        sa.PrimaryKeyConstraint("study_id"),
    )
    op.create_table(
        "review_verdicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("finding_id", sa.String(length=32), nullable=False),
        sa.Column("finding_version", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.String(length=32), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for col in ("finding_id", "image_id", "study_id"):
        op.create_index(f"ix_review_verdicts_{col}", "review_verdicts", [col])
    op.create_table(
        "slide_reads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_id", sa.String(length=32), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("reader", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("image_id", "role"),
    )
    for col in ("image_id", "study_id"):
        op.create_index(f"ix_slide_reads_{col}", "slide_reads", [col])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("study_code", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_deliveries_state", "webhook_deliveries", ["state"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_state", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    for col in ("image_id", "study_id"):
        op.drop_index(f"ix_slide_reads_{col}", "slide_reads")
    op.drop_table("slide_reads")
    for col in ("finding_id", "image_id", "study_id"):
        op.drop_index(f"ix_review_verdicts_{col}", "review_verdicts")
    op.drop_table("review_verdicts")
    op.drop_table("reviews")
