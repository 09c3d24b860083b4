"""Audit events: one row per change, written in the same transaction as the change, chained
by hash (``api/auditchain.py``), and the one place where a study's compliance profile is
enforced on a change (a reason for change where the profile needs one; nothing on a
locked study but its unlock).

Appends are serialised so that two writers cannot fork a chain: on PostgreSQL a
transaction-level advisory lock, on SQLite the database's write lock (taken by a write
statement that changes nothing). Both are held until the caller's commit or rollback, so an
event's predecessor is always the event committed before it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from plexhub.api import requestctx
from plexhub.api.auditchain import GENESIS, event_hash, plain_json
from plexhub.api.db import utcnow
from plexhub.api.models import AuditEvent, Study
from plexhub.errors import InputError, PermissionDeniedError
from plexhub.policies.access import Principal
from plexhub.policies.profiles import (
    ComplianceProfile,
    builtin_profiles,
    change_decision,
    profile_of,
    reason_decision,
)

CHAIN_LOCK_KEY = int.from_bytes(b"plexaud", "big")  # fixed: every plexhub process takes it
SYSTEM = "system"
_BUILTIN: dict[str, ComplianceProfile] = {}


class ReasonRequiredError(InputError):
    """A change on a study whose profile needs a reason came without one (422)."""


def profiles(session: Session) -> Mapping[str, ComplianceProfile]:
    """The installation's profiles (``Database(profiles=...)`` puts them on every session;
    the built-in ones otherwise)."""
    found = session.info.get("profiles")
    if found is not None:
        return found  # type: ignore[no-any-return]
    if not _BUILTIN:
        _BUILTIN.update(builtin_profiles())
    return _BUILTIN


def check_change(session: Session, study_code: str, action: str, reason: str) -> None:
    """Refuse ``action`` on the study unless its profile allows it as it comes."""
    row = session.execute(select(Study.profile, Study.state)
                          .where(Study.code == study_code)).first()
    if row is None:
        return
    profile = profile_of(profiles(session), row.profile)
    allowed = change_decision(profile, row.state, action)
    if not allowed:
        raise PermissionDeniedError(f"study {study_code}", allowed.reason)
    needed = reason_decision(profile, action, reason)
    if not needed:
        raise ReasonRequiredError(
            "reason", f"is required: {needed.reason} (study {study_code})",
            f"send the reason for change in the request body's `reason` field or the "
            f"{requestctx.REASON_HEADER} header")


def lock_chain(session: Session) -> None:
    """Hold the chain's append lock until the session's transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
    else:  # any write takes SQLite's write lock (pysqlite begins the transaction before it)
        session.execute(text("UPDATE audit_events SET seq = seq WHERE 1 = 0"))


def record(session: Session, actor: Principal | str, action: str, entity_type: str,
           entity_id: str, *, study_code: str | None = None,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
           reason: str = "", enforce: bool = True, request_id: str | None = None,
           client: str | None = None) -> AuditEvent:
    """Add an audit event to ``session``; the caller's commit makes both durable together.

    Refuses the change (an error the caller lets through, so nothing is committed) when the
    study's profile does not take it: 403 on a locked study, 422 without a needed reason.
    The reason is ``reason`` or, when that is blank, the request's reason header.
    ``enforce=False`` records without the profile's checks: for events about a change
    that was itself checked (a signature of it) or refused (a failed signature).
    ``request_id`` and ``client`` replace the request's own (an event another server saw
    and forwards: the hub's failed logins)."""
    facts = requestctx.current()
    reason = reason.strip() or facts.reason
    role: str | None
    if isinstance(actor, Principal):
        user, role = actor.user, actor.role
    else:  # the service itself, or a user named without a role (its role is not known)
        user, role = actor, (SYSTEM if actor == SYSTEM else None)
    if study_code is not None and role != SYSTEM and enforce:
        check_change(session, study_code, action, reason)
    event = AuditEvent(ts=utcnow(), actor=user, role=role, action=action,
                       entity_type=entity_type, entity_id=entity_id, study_code=study_code,
                       before=plain_json(before), after=plain_json(after), reason=reason,
                       request_id=request_id or facts.request_id,
                       client=client or facts.client)
    session.flush()  # the change's own rows first (their locks before the chain's)
    lock_chain(session)
    event.prev_hash = session.scalar(select(AuditEvent.hash).order_by(
        AuditEvent.seq.desc()).limit(1)) or GENESIS
    event.study_prev_hash = None if study_code is None else session.scalar(
        select(AuditEvent.hash).where(AuditEvent.study_code == study_code)
        .order_by(AuditEvent.seq.desc()).limit(1)) or GENESIS
    event.hash = event_hash(fields(event))
    session.add(event)
    session.flush()  # the next event of this transaction follows this one
    return event


def fields(event: AuditEvent) -> dict[str, Any]:
    """The event's columns by name (what the chain hashes, and ``seq``)."""
    return {c.key: getattr(event, c.key) for c in AuditEvent.__table__.columns}


def rows(session: Session, study: str | None = None,
         batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every event (of ``study``) in ``seq`` order, as plain mappings, a batch at a time."""
    after = 0
    while True:
        q = select(AuditEvent).where(AuditEvent.seq > after)
        if study is not None:
            q = q.where(AuditEvent.study_code == study)
        found = session.scalars(q.order_by(AuditEvent.seq).limit(batch)).all()
        if not found:
            return
        for e in found:
            yield fields(e)
        after = found[-1].seq
        session.expunge_all()
