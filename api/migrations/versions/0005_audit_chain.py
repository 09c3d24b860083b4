"""audit trail: hash chain (global and per study), role, request id, client; append-only

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:30:00.000000

Existing events are chained in ``seq`` order (their role, request id and client stay
unknown). Then triggers make the table append-only: UPDATE and DELETE (and on PostgreSQL
TRUNCATE) of an audit row fail, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

REFUSED = "audit_events is append-only: its rows cannot be changed or deleted"
COLUMNS = (("role", 20), ("request_id", 64), ("client", 100), ("prev_hash", 64),
           ("study_prev_hash", 64), ("hash", 64))


def _chain_existing() -> None:
    from plexhub.api.auditchain import GENESIS, event_hash

    bind = op.get_bind()
    events = sa.table("audit_events", *(sa.column(n) for n in (
        "seq", "actor", "role", "action", "entity_type", "entity_id", "study_code",
        "reason", "request_id", "client", "prev_hash", "study_prev_hash", "hash")),
        sa.column("before", sa.JSON()), sa.column("after", sa.JSON()),
        sa.column("ts", sa.DateTime(timezone=True)))
    head, heads = GENESIS, dict[str, str]()
    for row in bind.execute(sa.select(events).order_by(events.c.seq)).mappings().all():
        e = dict(row)
        e["prev_hash"] = head
        code = e["study_code"]
        e["study_prev_hash"] = None if code is None else heads.get(code, GENESIS)
        e["hash"] = event_hash(e)
        bind.execute(events.update().where(events.c.seq == e["seq"]).values(
            prev_hash=e["prev_hash"], study_prev_hash=e["study_prev_hash"], hash=e["hash"]))
        head = e["hash"]
        if code is not None:
            heads[code] = head


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        for name, length in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=True))
        batch_op.create_index("ix_audit_events_study_seq", ["study_code", "seq"], unique=False)
    _chain_existing()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION plexhub_audit_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{REFUSED}' USING ERRCODE = 'insufficient_privilege';
            END $$""")
        op.execute("CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON "
                   "audit_events FOR EACH ROW EXECUTE FUNCTION plexhub_audit_append_only()")
        op.execute("CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION plexhub_audit_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON "
                       f"audit_events BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION plexhub_audit_append_only()")
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute("DROP TRIGGER audit_events_no_delete")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_study_seq")
        for name, _length in reversed(COLUMNS):
            batch_op.drop_column(name)
