"""an index on audit events' (action, request_id): the hub's forwarded login failures are
recorded once per id, which the API looks up before appending (issue 14)

A plain CREATE INDEX (no table rebuild): the audit table's triggers refuse UPDATE and DELETE,
and a rebuild would copy and drop the table.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 05:10:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_action_request", "audit_events", ["action", "request_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_action_request", table_name="audit_events")
