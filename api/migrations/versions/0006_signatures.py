"""electronic signatures: signer, role, meaning, UTC time and the hash of what was signed

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 22:30:00.000000

Append-only like ``audit_events``: triggers refuse UPDATE and DELETE (and TRUNCATE on
PostgreSQL) of a signature.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

REFUSED = "signatures is append-only: its rows cannot be changed or deleted"


def upgrade() -> None:
    op.create_table(
        "signatures",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("study_code", sa.String(length=64), nullable=True),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("meaning", sa.String(length=20), nullable=False),
        sa.Column("signer", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signatures_entity", "signatures", ["entity_type", "entity_id"])
    op.create_index(op.f("ix_signatures_study_code"), "signatures", ["study_code"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION plexhub_signatures_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{REFUSED}' USING ERRCODE = 'insufficient_privilege';
            END $$""")
        op.execute("CREATE TRIGGER signatures_append_only BEFORE UPDATE OR DELETE ON "
                   "signatures FOR EACH ROW EXECUTE FUNCTION plexhub_signatures_append_only()")
        op.execute("CREATE TRIGGER signatures_no_truncate BEFORE TRUNCATE ON signatures "
                   "FOR EACH STATEMENT EXECUTE FUNCTION plexhub_signatures_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER signatures_no_{verb.lower()} BEFORE {verb} ON "
                       f"signatures BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER signatures_no_truncate ON signatures")
        op.execute("DROP TRIGGER signatures_append_only ON signatures")
        op.execute("DROP FUNCTION plexhub_signatures_append_only()")
    op.drop_index(op.f("ix_signatures_study_code"), table_name="signatures")
    op.drop_index("ix_signatures_entity", table_name="signatures")
    op.drop_table("signatures")
