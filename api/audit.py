"""Audit events: one row per change, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from plexhub.api.models import AuditEvent
from plexhub.policies.access import Principal


def record(session: Session, actor: Principal | str, action: str, entity_type: str,
           entity_id: str, *, study_code: str | None = None,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
           reason: str = "") -> AuditEvent:
    """Add an audit event to ``session``; the caller's commit makes both durable together."""
    event = AuditEvent(actor=actor if isinstance(actor, str) else actor.user, action=action,
                       entity_type=entity_type, entity_id=entity_id, study_code=study_code,
                       before=before, after=after, reason=reason)
    session.add(event)
    return event
