"""Electronic signatures (issue 14; 21 CFR Part 11 §11.50, §11.70, §11.200).

A signature is a re-authentication with the signer's own credential, bound to what was
signed and given a meaning. The interface other routes call (a review, a finding, ...)::

    from plexhub.api import signatures
    sig = signatures.sign(session, verifier, user, credential,
                          action="review.sign", meaning="reviewed",
                          entity_type="review", entity_id=review.id,
                          content={"verdict": "agree", ...}, study_code=code)
    session.commit()                     # the signature, its audit event and the change
    signatures.public(sig)               # what an API response shows
    signatures.of(session, "review", review.id)   # every signature of an object
    signatures.verify(sig, "review", review.id, content)   # False once copied or changed

``verifier`` is :func:`verifier_of` the app state (a route takes ``st: State``). What the
credential is depends on how the signer logs in:

- a local user (the hub's user registry, ``PLEXHUB_HUB_USERS_FILE``, has a password for
  them): their password, checked against the registry's scrypt hash (the scheme is shared in
  ``policies/passwords.py``, so the API never imports the hub);
- anyone else (standalone or headless users, whose credential is a personal API token; the
  admin token's ``admin``): a plexhub API token of their own, valid now, typed in again.
- users who log in through an outside identity provider (OIDC, ``PLEXHUB_OIDC_*`` set):
  the one-time credential ``oidc:...`` of a fresh ``prompt=login`` round trip
  (``api/oidcsign.py``), method ``oidc``.

A wrong credential is refused (403), written to the audit trail as ``signature.refused``
(committed, while the change is rolled back), and ``policies/lockout.py``'s rule over the
signer's refusals since their last signature locks signing for them (429 with Retry-After).

What is signed is ``content`` plus the object's type and id, as canonical JSON; the row keeps
that text, its SHA-256 and the SHA-256 of the whole record, and its audit event keeps both
hashes in the chain. A signature therefore cannot be copied onto another object: the object
it names and the hash of the other object's content do not match.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit, oidcsign
from plexhub.api.auditchain import canonical, plain_json, timestamp
from plexhub.api.auditreport import system_facts
from plexhub.api.auth import TokenStore
from plexhub.api.db import utcnow
from plexhub.api.models import AuditEvent, Signature, Study
from plexhub.api.schemas import CREDENTIAL_HELP, SignaturePublic
from plexhub.errors import BusyError, InputError, PermissionDeniedError
from plexhub.policies.access import Principal
from plexhub.policies.lockout import LockoutRule, evaluate
from plexhub.policies.passwords import registry_hash, verify_password
from plexhub.policies.profiles import profile_of, signature_meaning
from plexhub.settings import Settings

SIGNED = "signature.sign"
REFUSED = "signature.refused"
RULE = LockoutRule()  # 5 refusals in 15 minutes lock signing for 15 minutes, then doubling


class SignatureRequiredError(InputError):
    """The profile needs a signature for the action and no credential came (422)."""


class SignatureRefusedError(PermissionDeniedError):
    """The credential is not the signer's (403)."""


class SigningLockedError(BusyError):
    """Too many refused signatures: signing is locked for the signer (429)."""


@dataclass(frozen=True)
class CredentialVerifier:
    """Checks a signer's re-entered credential (see the module's docstring)."""

    settings: Settings
    tokens: TokenStore

    def method(self, user: str) -> str:
        """``password`` when ``user`` is a local user with a password, else ``token``."""
        return "password" if registry_hash(self.settings.hub_users_path, user) else "token"

    def check(self, signer: Principal, credential: str) -> tuple[bool, str]:
        """(whether ``credential`` is ``signer``'s own, the method it was checked by)."""
        encoded = registry_hash(self.settings.hub_users_path, signer.user)
        if encoded is not None:
            return verify_password(credential, encoded), "password"
        info = self.tokens.lookup(credential)
        ok = info is not None and info.principal.user == signer.user \
            and info.principal.role == signer.role
        return ok, "token"


def verifier_of(settings: Settings, tokens: TokenStore) -> CredentialVerifier:
    return CredentialVerifier(settings, tokens)


def signed_text(entity_type: str, entity_id: str, content: Mapping[str, Any],
                system: Mapping[str, Any] | None = None) -> str:
    """The canonical JSON of what a signature of the object covers (and the system it was
    signed on: :func:`plexhub.api.auditreport.system_facts`)."""
    doc = {"entity_type": entity_type, "entity_id": entity_id, "content": plain_json(content),
           "system": plain_json(system)}
    return canonical(doc).decode("utf-8")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


MANIFEST = ("id", "study_code", "entity_type", "entity_id", "action", "meaning", "signer",
            "role", "method", "signed_at", "content_hash")


def record_hash(sig: Signature) -> str:
    """SHA-256 of the signature's manifest (every column but the content and this hash)."""
    doc = {k: getattr(sig, k) for k in MANIFEST}
    doc["signed_at"] = timestamp(sig.signed_at)
    return hashlib.sha256(canonical(doc)).hexdigest()


def intact(sig: Signature) -> bool:
    """The record and its stored content match their hashes, and the content names the
    object the record names."""
    try:
        doc = json.loads(sig.content)
    except ValueError:
        return False
    return (_sha(sig.content) == sig.content_hash and record_hash(sig) == sig.hash
            and doc.get("entity_type") == sig.entity_type
            and doc.get("entity_id") == sig.entity_id)


def verify(sig: Signature, entity_type: str, entity_id: str,
           content: Mapping[str, Any]) -> bool:
    """Whether ``sig`` is a signature of this object as it is now (``content`` as it was
    given to :func:`sign`): False for a signature copied from another object."""
    if not intact(sig):
        return False
    system = json.loads(sig.content).get("system")
    return sig.content_hash == _sha(signed_text(entity_type, entity_id, content, system))


def public(sig: Signature) -> SignaturePublic:
    return SignaturePublic(id=sig.id, signer=sig.signer, role=sig.role, meaning=sig.meaning,
                           action=sig.action, signed_at=sig.signed_at,
                           entity_type=sig.entity_type, entity_id=sig.entity_id,
                           method=sig.method, content_hash=sig.content_hash, hash=sig.hash,
                           valid=intact(sig))


def of(session: Session, entity_type: str, entity_id: str) -> list[Signature]:
    """The object's signatures, oldest first."""
    return list(session.scalars(select(Signature).where(
        Signature.entity_type == entity_type, Signature.entity_id == entity_id)
        .order_by(Signature.signed_at, Signature.id)).all())


def of_study(session: Session, study_code: str) -> list[Signature]:
    return list(session.scalars(select(Signature).where(Signature.study_code == study_code)
                                .order_by(Signature.signed_at, Signature.id)).all())


def _aware_seconds(ts: datetime) -> float:
    return (ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts).timestamp()


def lock_state(session: Session, user: str, now: datetime) -> tuple[bool, float | None]:
    """Whether signing is locked for ``user`` (and until when, epoch seconds): the lockout
    rule over their refused signatures since their last signature."""
    since = datetime.fromtimestamp(now.timestamp() - RULE.horizon, UTC)
    rows = session.execute(select(AuditEvent.action, AuditEvent.ts).where(
        AuditEvent.actor == user, AuditEvent.action.in_((SIGNED, REFUSED)),
        AuditEvent.ts >= since).order_by(AuditEvent.seq)).all()
    failures: list[float] = []
    for action, ts in rows:
        if action == SIGNED:
            failures = []  # a signature clears the history
        else:
            failures.append(_aware_seconds(ts))
    state = evaluate(failures, now.timestamp(), RULE)
    return state.locked, state.until


def _refuse(session: Session, signer: Principal, action: str, entity_type: str,
            entity_id: str, study_code: str | None, why: str) -> None:
    """Roll the change back and commit only the audit event of the refused signature."""
    session.rollback()
    audit.record(session, signer, REFUSED, entity_type, entity_id, study_code=study_code,
                 after={"action": action, "why": why}, enforce=False)
    session.commit()


def sign(session: Session, verifier: CredentialVerifier, signer: Principal,
         credential: str | None, *, action: str, meaning: str, entity_type: str,
         entity_id: str, content: Mapping[str, Any], study_code: str | None = None,
         reason: str = "") -> Signature:
    """Sign the object: check the signer's credential, then add the signature and its audit
    event to ``session`` (the caller commits them with its change). Call it before changing
    anything: a refusal rolls the session back, commits the refusal's audit event and
    raises (422 no credential, 403 a wrong one, 429 while signing is locked)."""
    if not credential:
        raise SignatureRequiredError(
            "credential", f"is required: {action} needs your electronic signature "
            f"({meaning})", f"send {CREDENTIAL_HELP}, in the body's `credential` field")
    now = utcnow()
    locked, until = lock_state(session, signer.user, now)
    if locked:
        _refuse(session, signer, action, entity_type, entity_id, study_code, "locked")
        wait = max(1, int((until or now.timestamp()) - now.timestamp()) + 1)
        raise SigningLockedError(f"signing as {signer.user}",
                                 "is locked after repeated refused signatures",
                                 f"try again in {wait} s, or ask an admin", retry_after=wait)
    login: dict[str, Any] = {}
    if oidcsign.is_ticket(credential):  # a fresh login at the identity provider
        ok, login = oidcsign.check(session, verifier.settings, signer, credential)
        method = "oidc"
    else:
        ok, method = verifier.check(signer, credential)
    if not ok:
        what = "OIDC login credential is not yours, used or expired" if method == "oidc" \
            else f"{method} is not yours"
        _refuse(session, signer, action, entity_type, entity_id, study_code,
                f"wrong {method}")
        raise SignatureRefusedError(
            f"signature of {signer.user}", f"refused: the {what}",
            f"re-enter {CREDENTIAL_HELP}; repeated failures lock signing")
    system = system_facts(session.get_bind().dialect.name, audit.profiles(session))
    text = signed_text(entity_type, entity_id, content, system)
    sig = Signature(id=uuid.uuid4().hex, study_code=study_code, entity_type=entity_type,
                    entity_id=entity_id, action=action, meaning=meaning, signer=signer.user,
                    role=signer.role, method=method, signed_at=now, content=text,
                    content_hash=_sha(text), hash="")
    sig.hash = record_hash(sig)
    session.add(sig)
    audit.record(session, signer, SIGNED, entity_type, entity_id, study_code=study_code,
                 after={"signature": sig.id, "action": action, "meaning": meaning,
                        "method": method, "content_hash": sig.content_hash,
                        "hash": sig.hash, **login}, reason=reason, enforce=False)
    return sig


def required_meaning(session: Session, study_code: str, action: str) -> str | None:
    """The meaning the study's profile asks a signature of ``action`` to carry, or None."""
    name = session.scalar(select(Study.profile).where(Study.code == study_code))
    if name is None:
        return None
    return signature_meaning(profile_of(audit.profiles(session), name), action)


def sign_if_required(session: Session, verifier: CredentialVerifier, signer: Principal,
                     credential: str | None, *, study_code: str, action: str,
                     entity_type: str, entity_id: str, content: Mapping[str, Any],
                     reason: str = "") -> Signature | None:
    """:func:`sign` when the study's profile asks for a signature of ``action`` (with the
    profile's meaning); None, and nothing checked, when it does not."""
    meaning = required_meaning(session, study_code, action)
    if meaning is None:
        return None
    return sign(session, verifier, signer, credential, action=action, meaning=meaning,
                entity_type=entity_type, entity_id=entity_id, content=content,
                study_code=study_code, reason=reason)


def publics(sigs: Sequence[Signature]) -> list[SignaturePublic]:
    return [public(s) for s in sigs]
