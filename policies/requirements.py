"""The requirements of the validation pack (issue 14): each compliance-profile rule and each
control of the audit trail, signatures and locks, as a CRO's installation qualification
names them. Tests claim them with ``@pytest.mark.requirement("ID", ...)`` (or a module's
``pytestmark``); ``plexhub validation-pack`` maps each requirement to those tests and their
last result, and tests/unit/test_validation_pack.py fails when a requirement has no test,
a test names an unknown requirement, or a profile rule has no requirement.
"""

from __future__ import annotations

from plexhub.policies.profiles import RULES, ComplianceProfile

# one requirement per profile rule: "profile.<rule>", described by the rule's own help
PROFILE_RULES: dict[str, str] = {
    f"profile.{rule}": str(ComplianceProfile.model_fields[rule].description)
    for rule in RULES
}

CONTROLS: dict[str, str] = {
    "audit.chain": "every event carries the hash of the previous one (one global chain, one per "
                   "study); the verifier names the first altered, removed, inserted or "
                   "reordered event",
    "audit.append_only": "the database refuses UPDATE and DELETE of audit rows (and of "
                         "signatures)",
    "audit.same_transaction": "no change is stored without its audit event, nor an event "
                              "without its change",
    "audit.attribution": "events record user and role, UTC server time, request id and "
                         "client address",
    "audit.export": "a study's trail exports as CSV and JSON that a standalone script "
                    "verifies without plexhub",
    "audit.report": "a per-study auditor's report, as HTML and PDF: profile, access over time, "
                    "signatures, changes with reasons, the configuration in force at each",
    "audit.login_failures": "failed logins at the hub's form (wrong password, locked out) are "
                            "events of the global chain with the name tried and the client "
                            "address, never the password; they wait in the hub's spool while "
                            "the API does not answer and are recorded once; only the hub may "
                            "record them",
    "audit.system_config": "the system version and non-secret configuration are recorded "
                           "(with their SHA-256) in the global chain whenever a service starts "
                           "with a changed one; no secret is recorded",
    "study.lock": "a locked study refuses every change (403 naming the lock) until unlocked",
    "study.profile": "a study's profile changes only by an audited action (old and new profile "
                     "in its event), signed where either profile asks, by a role the current "
                     "profile allows, never on a locked study",
    "signature.reauthentication": "signatures need the signer's own credential (password, "
                                  "else own API token) and record signer, role, meaning, time "
                                  "and the hash of what was signed",
    "signature.binding": "a signature cannot be copied to another object (hash mismatch)",
    "signature.refusal": "a wrong credential is refused and audited; repeated refusals lock "
                         "signing",
    "image.retire": "a retired image is hidden from normal lists and from sponsors (the 404 "
                    "of an unknown image), listed for staff on request, kept and still "
                    "exported; retiring is audited, takes the profile's reason and is refused "
                    "on a locked study",
    "retention.purge": "a retired image is purged only after its profile's retention period "
                       "and only where the profile allows hard deletes, by an audited "
                       "image.purge first; the catalog row stays (a tombstone)",
    "reason.clients": "the CLI, the API client and the viewers send the reason for change",
    "storage.tier_move": "an image's store moves between storage roots only after its copy is "
                         "verified object for object; the catalog's new root and tier and "
                         "their audited event (old and new root and tier) commit together; a "
                         "failure or a crash mid-move leaves it readable where it was",
}

REQUIREMENTS: dict[str, str] = {**PROFILE_RULES, **CONTROLS}
