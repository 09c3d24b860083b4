"""Compliance of a study (issue 14): lock and unlock, and the audit export an auditor checks
with the standalone verifier (``api/auditchain.py``, served at ``/api/v1/audit/verifier.py``).

A locked study refuses every change (403 naming the lock: ``api/audit.record`` enforces it
for every audited change) until an unlock by a role its profile allows. Where the profile
asks for an electronic signature (GLP: lock and unlock, "approved"), the body's
``credential`` re-authenticates the caller (``api/signatures.py``); the signature covers the
study as locked or unlocked and the head of its audit chain at that moment.

A study's profile changes only through ``PUT /studies/{code}/profile`` (``study.profile``):
never on a locked study, only by a role the current profile's ``profile_change_roles``
names, with a reason and a signature where either the current or the new profile asks for
one (so moving into GLP is signed as much as moving out of it); its audit event carries the
old and the new profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plexhub import __version__
from plexhub.api import (
    audit,
    auditchain,
    auditpdf,
    auditreport,
    oidcsign,
    requestctx,
    signatures,
    sysconfig,
)
from plexhub.api.db import utcnow
from plexhub.api.deps import (
    AppState,
    DbSession,
    Public,
    Scope,
    State,
    VisiblePreset,
    VisibleStudy,
)
from plexhub.api.headers import INERT
from plexhub.api.models import AuditEvent, Grant, Preset, PresetVersion, Signature, Study
from plexhub.api.schemas import SignaturePublic, SignedChange, StudyPublic
from plexhub.errors import ConflictError, NotFoundError, PermissionDeniedError, TooLargeError
from plexhub.limits import AUDIT_REPORT_EVENTS
from plexhub.policies import loginaudit
from plexhub.policies.access import Principal
from plexhub.policies.profiles import (
    profile_change_decision,
    profile_change_meaning,
    profile_change_reason,
    profile_of,
    unlock_decision,
)

router = APIRouter(prefix="/api/v1", tags=["compliance"])


class StudyLockChange(SignedChange):
    """Lock or unlock a study (``study.lock``, ``study.unlock``)."""


class StudyProfileChange(SignedChange):
    """Change a study's profile (``study.profile``): a reason and a signature where either
    the current or the new profile asks for them."""
    profile: str = Field(pattern=r"^[a-z][a-z0-9-]{0,19}$",
                         description="the new compliance profile: glp, non-glp or one of the "
                         "installation's own (plexhub profiles)")


class StudySigned(StudyPublic):
    signatures: list[SignaturePublic] = Field(
        default_factory=list, description="the study's electronic signatures, oldest first")


def _public(session: Session, s: Study) -> StudySigned:
    """The study as staff see it (only staff may lock or unlock), with its signatures."""
    return StudySigned(code=s.code, title=s.title, sponsor=s.sponsor, profile=s.profile,
                       state=s.state, created_at=s.created_at,
                       internal_fields=list(s.internal_fields or []),
                       signatures=signatures.publics(signatures.of(session, "study", s.code)))


def signed_study(session: Session, s: Study, state: str) -> dict[str, Any]:
    """What a lock or unlock signature covers: the study in its new state and the head of
    its audit chain (every event before the signature)."""
    head = session.scalar(select(AuditEvent.hash).where(AuditEvent.study_code == s.code)
                          .order_by(AuditEvent.seq.desc()).limit(1))
    return {"code": s.code, "title": s.title, "sponsor": s.sponsor, "profile": s.profile,
            "state": state, "audit_head": head}


def _move(study: Study, body: StudyLockChange, user: Principal, st: AppState,
          session: Session, action: str, to: str) -> StudySigned:
    """Move ``study`` to state ``to``: the reason its profile asks for, then the signature
    (a refused one rolls back and is audited), then the audit event, then the change."""
    code = study.code
    audit.check_change(session, code, action, body.reason.strip() or requestctx.current().reason)
    signatures.sign_if_required(
        session, signatures.verifier_of(st.settings, st.tokens), user, body.credential,
        study_code=code, action=action, entity_type="study", entity_id=code,
        content=signed_study(session, study, to), reason=body.reason)
    audit.record(session, user, action, "study", code, study_code=code,
                 before={"state": study.state}, after={"state": to}, reason=body.reason)
    study.state = to
    session.commit()
    return _public(session, study)


@router.post("/studies/{code}/lock", response_model=StudySigned)
def lock_study(code: str, study: VisibleStudy, body: StudyLockChange,
               user: Annotated[Principal, Scope("studies:write")], st: State,
               session: DbSession) -> StudySigned:
    """Lock an open study: every change is refused until it is unlocked (audited; signed
    where the profile asks)."""
    if study.state != "open":
        raise ConflictError(f"study {code}", f"is {study.state}, not open",
                            "only an open study can be locked")
    return _move(study, body, user, st, session, "study.lock", "locked")


@router.post("/studies/{code}/unlock", response_model=StudySigned)
def unlock_study(code: str, study: VisibleStudy, body: StudyLockChange,
                 user: Annotated[Principal, Scope("studies:write")], st: State,
                 session: DbSession) -> StudySigned:
    """Unlock a locked study; only the roles its profile names (GLP: admin)."""
    if study.state != "locked":
        raise ConflictError(f"study {code}", f"is {study.state}, not locked")
    allowed = unlock_decision(profile_of(audit.profiles(session), study.profile), user.role)
    if not allowed:
        raise PermissionDeniedError(user.user, f"may not unlock study {code} "
                                    f"({allowed.reason})")
    return _move(study, body, user, st, session, "study.unlock", "open")


@router.put("/studies/{code}/profile", response_model=StudySigned)
def change_profile(code: str, study: VisibleStudy, body: StudyProfileChange,
                   user: Annotated[Principal, Scope("studies:write")], st: State,
                   session: DbSession) -> StudySigned:
    """Change the study's compliance profile (``study.profile``): refused on a locked study
    and for roles the current profile does not let change it; a reason and an electronic
    signature where either profile asks for them (GLP: both); audited with the old and the
    new profile."""
    known = audit.profiles(session)
    new = profile_of(known, body.profile)  # 422 naming the known ones
    current = profile_of(known, study.profile)
    reason = body.reason.strip() or requestctx.current().reason
    audit.check_change(session, code, "study.profile", reason)  # the lock; current's reason
    if new.name == current.name:
        raise ConflictError(f"study {code}", f"has profile {new.name} already")
    allowed = profile_change_decision(current, new, user.role)
    if not allowed:
        raise PermissionDeniedError(user.user, f"may not change the profile of study {code} "
                                    f"({allowed.reason})")
    needed = profile_change_reason(current, new, reason)
    if not needed:
        raise audit.ReasonRequiredError(
            "reason", f"is required: {needed.reason} (study {code})",
            "send the reason for change in the request body's `reason` field or the "
            f"{requestctx.REASON_HEADER} header")
    meaning = profile_change_meaning(current, new)
    if meaning is not None:
        content = {**signed_study(session, study, study.state), "profile": new.name,
                   "previous_profile": current.name}
        signatures.sign(session, signatures.verifier_of(st.settings, st.tokens), user,
                        body.credential, action="study.profile", meaning=meaning,
                        entity_type="study", entity_id=code, content=content,
                        study_code=code, reason=body.reason)
    audit.record(session, user, "study.profile", "study", code, study_code=code,
                 before={"profile": current.name}, after={"profile": new.name},
                 reason=body.reason)
    study.profile = new.name
    session.commit()
    return _public(session, study)


@router.get("/studies/{code}/signatures", response_model=list[SignaturePublic])
def study_signatures(code: str, study: VisibleStudy,
                     user: Annotated[Principal, Scope("audit:read")],
                     session: DbSession) -> list[SignaturePublic]:
    """Every electronic signature on the study and its objects, oldest first, each with
    whether it still matches its hashes."""
    return signatures.publics(signatures.of_study(session, code))


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


@router.get("/studies/{code}/audit/report", response_model=None,
            responses={200: {"content": {"text/html": {}, "application/pdf": {}}}})
def audit_report(code: str, study: VisibleStudy,
                 user: Annotated[Principal, Scope("audit:read")], session: DbSession,
                 format: Literal["html", "pdf"] = Query(
                     default="html", description="html: one page; pdf: the same as a PDF")
                 ) -> Response:
    """The auditor's report of the study (HTML or PDF, an inert attachment): profile, access
    over time, the failed logins to the system while the study existed, signatures, every
    change with its reason, the system version and configuration in force at each of them,
    the system now (the report is audited first, so it is its last event). At most
    ``audit_report_events`` events (plexhub.limits)."""
    count = session.scalar(select(func.count()).select_from(AuditEvent)
                           .where(AuditEvent.study_code == code)) or 0
    if count >= AUDIT_REPORT_EVENTS:
        raise TooLargeError(f"study {code}'s audit trail",
                            f"has {count} events, with the report's own {count + 1}: more "
                            "than the report renders "
                            f"(audit_report_events: {AUDIT_REPORT_EVENTS})",
                            f"export it as CSV or JSON: /api/v1/studies/{code}/audit")
    audit.record(session, user, "audit.export", "study", code, study_code=code,
                 after={"format": format})
    session.commit()
    profile = profile_of(audit.profiles(session), study.profile)
    grants = list(session.scalars(select(Grant).where(Grant.study_id == study.id)
                                  .order_by(Grant.created_at, Grant.id)).all())
    sigs = [(s, signatures.intact(s)) for s in signatures.of_study(session, code)]
    events = list(audit.rows(session, code))
    configs = sysconfig.events(session)
    study = session.scalars(select(Study).where(Study.code == code)).one()
    system = auditreport.system_facts(session.get_bind().dialect.name, audit.profiles(session))
    logins, logins_total = failed_logins(session, study)
    report = auditreport.build(study, profile, events, grants, sigs, system, utcnow(),
                               user.user, configs, logins, logins_total)
    name = f"study-{code}-audit-report.{format}"
    headers = {**INERT, "Content-Disposition": f'attachment; filename="{name}"'}
    if format == "pdf":
        return Response(auditpdf.pdf(report), media_type="application/pdf", headers=headers)
    return Response(auditreport.html(report), media_type="text/html; charset=utf-8",
                    headers=headers)


LOGIN_ACTIONS = (loginaudit.ACTION, "login.failure")  # the hub's, the portal's
REPORT_LOGINS = 500  # failed logins the report lists (the last ones; it counts them all)


def failed_logins(session: Session, study: Study) -> tuple[list[dict[str, Any]], int]:
    """The last :data:`REPORT_LOGINS` failed logins since ``study`` was created (oldest
    first), and how many there were."""
    where = (AuditEvent.action.in_(LOGIN_ACTIONS), AuditEvent.study_code.is_(None),
             AuditEvent.ts >= study.created_at)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
    last = session.scalars(select(AuditEvent).where(*where)
                           .order_by(AuditEvent.seq.desc()).limit(REPORT_LOGINS)).all()
    return [audit.fields(e) for e in reversed(last)], total


@router.get("/audit/verifier.py", response_model=None,
            responses={200: {"content": {"text/x-python": {}}}})
def verifier(user: Annotated[Principal, Scope("audit:read")]) -> Response:
    """The standalone verifier of audit exports (Python 3.11+, standard library only)."""
    return Response(Path(auditchain.__file__).read_text(encoding="utf-8"),
                    media_type="text/x-python; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="verify_audit.py"'})



class PresetApproval(SignedChange):
    """Approve a preset version as the study's reference (``preset.approve``)."""
    version: int | None = Field(default=None, ge=1,
                                description="the version to approve (default: the latest)")


class PresetApproved(BaseModel):
    preset_id: str
    version: int
    content_hash: str
    study: str
    signatures: list[SignaturePublic]


def signed_preset(preset: Preset, version: PresetVersion, study: str) -> dict[str, Any]:
    """What a preset approval covers: the immutable version and its content hash."""
    return {"preset": preset.id, "name": preset.name, "version": version.version,
            "content_hash": version.content_hash, "study": study}


@router.post("/presets/{preset_id}/approve", response_model=PresetApproved)
def approve_preset(preset: VisiblePreset, body: PresetApproval,
                   user: Annotated[Principal, Scope("studies:write")], st: State,
                   session: DbSession) -> PresetApproved:
    """Approve a version of a study's preset as the study's reference (audited; signed
    where the profile asks: GLP, "approved")."""
    study = session.get(Study, preset.study_id) if preset.study_id is not None else None
    if study is None:
        raise ConflictError(f"preset {preset.id}", "belongs to no study",
                            "only a study's preset can be its reference")
    q = select(PresetVersion).where(PresetVersion.preset_id == preset.id)
    q = q.where(PresetVersion.version == body.version) if body.version is not None \
        else q.order_by(PresetVersion.version.desc()).limit(1)
    version = session.scalar(q)
    if version is None:
        raise NotFoundError(f"preset {preset.id} version {body.version}", "not found")
    entity = f"{preset.id}@{version.version}"
    audit.check_change(session, study.code, "preset.approve",
                       body.reason.strip() or requestctx.current().reason)
    content = signed_preset(preset, version, study.code)
    signatures.sign_if_required(
        session, signatures.verifier_of(st.settings, st.tokens), user, body.credential,
        study_code=study.code, action="preset.approve", entity_type="preset_version",
        entity_id=entity, content=content, reason=body.reason)
    audit.record(session, user, "preset.approve", "preset_version", entity,
                 study_code=study.code, after=content, reason=body.reason)
    session.commit()
    return PresetApproved(preset_id=preset.id, version=version.version,
                          content_hash=version.content_hash, study=study.code,
                          signatures=signatures.publics(
                              signatures.of(session, "preset_version", entity)))


@router.get("/presets/{preset_id}/signatures", response_model=list[SignaturePublic])
def preset_signatures(preset: VisiblePreset, session: DbSession) -> list[SignaturePublic]:
    """The approvals signed on any version of the preset, oldest first."""
    return signatures.publics(list(session.scalars(
        select(Signature).where(Signature.entity_type == "preset_version",
                                Signature.entity_id.startswith(f"{preset.id}@"))
        .order_by(Signature.signed_at, Signature.id)).all()))


@router.get("/signatures/oidc/start")
def oidc_start(request: Request, user: Annotated[Principal, Scope("read")],
               st: State) -> dict[str, Any]:
    """Start a signature by a fresh login at the identity provider (``PLEXHUB_OIDC_*``):
    the authorization URL (``prompt=login``) to open in the signer's browser; the provider
    sends it back to ``/signatures/oidc/callback``, which answers the one-time credential
    to send as ``credential`` with the signed action."""
    redirect = str(request.url_for("oidc_callback"))
    return oidcsign.start(st.settings, user, redirect)


@router.get("/signatures/oidc/callback", name="oidc_callback", dependencies=[Public])
def oidc_callback(st: State, code: str = Query(max_length=4096),
                  state: str = Query(max_length=4096)) -> dict[str, Any]:
    """Where the identity provider returns the signer (open: the sealed ``state`` names
    the signer, and the ID token must prove a fresh login by that signer)."""
    return oidcsign.finish(st.settings, code, state)
