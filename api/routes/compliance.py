"""Compliance of a study (issue 14): lock and unlock, and the audit export an auditor checks
with the standalone verifier (``api/auditchain.py``, served at ``/api/v1/audit/verifier.py``).

A locked study refuses every change (403 naming the lock: ``api/audit.record`` enforces it
for every audited change) until an unlock by a role its profile allows. Electronic
signatures that a profile asks for (GLP: lock and unlock, "approved") are not collected
yet: a later slice adds re-authentication with meaning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field

from plexhub import __version__
from plexhub.api import audit, auditchain
from plexhub.api.db import utcnow
from plexhub.api.deps import DbSession, Scope, VisibleStudy
from plexhub.api.models import Study
from plexhub.api.schemas import Strict, StudyPublic
from plexhub.errors import ConflictError, PermissionDeniedError
from plexhub.policies.access import Principal
from plexhub.policies.profiles import profile_of, unlock_decision

router = APIRouter(prefix="/api/v1", tags=["compliance"])


class StudyLockChange(Strict):
    reason: str = Field(default="", max_length=2000,
                        description="the reason for the change (required by GLP)")


def _public(s: Study) -> StudyPublic:
    """The study as staff see it (only staff may lock or unlock)."""
    return StudyPublic(code=s.code, title=s.title, sponsor=s.sponsor, profile=s.profile,
                       state=s.state, created_at=s.created_at,
                       internal_fields=list(s.internal_fields or []))


@router.post("/studies/{code}/lock", response_model=StudyPublic)
def lock_study(code: str, study: VisibleStudy, body: StudyLockChange,
               user: Annotated[Principal, Scope("studies:write")],
               session: DbSession) -> StudyPublic:
    """Lock an open study: every change is refused until it is unlocked (audited)."""
    if study.state != "open":
        raise ConflictError(f"study {code}", f"is {study.state}, not open",
                            "only an open study can be locked")
    audit.record(session, user, "study.lock", "study", code, study_code=code,
                 before={"state": study.state}, after={"state": "locked"}, reason=body.reason)
    study.state = "locked"
    session.commit()
    return _public(study)


@router.post("/studies/{code}/unlock", response_model=StudyPublic)
def unlock_study(code: str, study: VisibleStudy, body: StudyLockChange,
                 user: Annotated[Principal, Scope("studies:write")],
                 session: DbSession) -> StudyPublic:
    """Unlock a locked study; only the roles its profile names (GLP: admin)."""
    if study.state != "locked":
        raise ConflictError(f"study {code}", f"is {study.state}, not locked")
    allowed = unlock_decision(profile_of(audit.profiles(session), study.profile), user.role)
    if not allowed:
        raise PermissionDeniedError(user.user, f"may not unlock study {code} "
                                    f"({allowed.reason})")
    audit.record(session, user, "study.unlock", "study", code, study_code=code,
                 before={"state": study.state}, after={"state": "open"}, reason=body.reason)
    study.state = "open"
    session.commit()
    return _public(study)


@router.get("/studies/{code}/audit", response_model=None,
            responses={200: {"content": {"application/json": {}, "text/csv": {}}}})
def export_audit(code: str, study: VisibleStudy,
                 user: Annotated[Principal, Scope("audit:read")], session: DbSession,
                 format: Literal["json", "csv"] = Query(default="json")) -> Response:
    """The study's whole audit trail with its hash chain, for an auditor (the export itself
    is audited first, so it is the last event of the export)."""
    profile = study.profile
    audit.record(session, user, "audit.export", "study", code, study_code=code,
                 after={"format": format})
    session.commit()
    events = list(audit.rows(session, code))
    name = f"study-{code}-audit.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        return Response(auditchain.to_csv(events), media_type="text/csv; charset=utf-8",
                        headers=headers)
    text = auditchain.to_json(code, events, profile=profile,
                              exported_at=auditchain.timestamp(utcnow()),
                              exported_by=user.user, plexhub_version=__version__)
    return Response(text, media_type="application/json", headers=headers)


@router.get("/audit/verifier.py", response_model=None,
            responses={200: {"content": {"text/x-python": {}}}})
def verifier(user: Annotated[Principal, Scope("audit:read")]) -> Response:
    """The standalone verifier of audit exports (Python 3.11+, standard library only)."""
    return Response(Path(auditchain.__file__).read_text(encoding="utf-8"),
                    media_type="text/x-python; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="verify_audit.py"'})

