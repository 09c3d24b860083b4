"""``plexhub tiers [--apply]``: evaluate the storage-tier rules over the catalog.

A dry run by default: it lists each hot image a rule would archive, with the rule and its
reason. ``--apply`` queues those moves as jobs in the catalog (audited as ``image.tier`` by
``system`` with the rule as the reason); a running ``plexhub serve`` or ``plexhub worker``
claims them. ``plexhub.cli`` finds :func:`register` through the ``plexhub.commands`` entry
point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from plexhub.api.models import Image, Study
    from plexhub.policies.access import Decision
    from plexhub.policies.tiers import TierRules
    from plexhub.settings import Settings

USED = ("image.download", "image.restore", "image.tier")  # what counts as use (and creation)


@dataclass(frozen=True)
class Planned:
    image: Image
    study: Study
    decision: Decision


def plan(session: Session, rules: TierRules, now: datetime) -> Iterator[Planned]:
    """Every ready hot image and whether the rules archive it now (pure decisions over the
    catalog's facts: the study's last lock and the image's last use from the audit trail)."""
    from plexhub.api import audit
    from plexhub.api.db import aware
    from plexhub.api.models import AuditEvent, Image, Study
    from plexhub.policies.profiles import profile_of
    from plexhub.policies.tiers import TierFacts, archive_decision

    profiles = audit.profiles(session)
    locks = dict(session.execute(select(AuditEvent.study_code, func.max(AuditEvent.ts))
                                 .where(AuditEvent.action == "study.lock")
                                 .group_by(AuditEvent.study_code)).all())
    used = dict(session.execute(select(AuditEvent.entity_id, func.max(AuditEvent.ts))
                                .where(AuditEvent.entity_type == "image",
                                       AuditEvent.action.in_(USED))
                                .group_by(AuditEvent.entity_id)).all())
    rows = session.execute(select(Image, Study).join(Study, Study.id == Image.study_id)
                           .where(Image.status == "ready", Image.tier == "hot",
                                  Image.purged_at.is_(None))
                           .order_by(Study.code, Image.created_at, Image.id)).all()
    for image, study in rows:
        created = aware(image.created_at)
        last = aware(used.get(image.id))
        facts = TierFacts(tier=image.tier, ready=True, study_state=study.state,
                          locked_at=aware(locks.get(study.code)) if study.state == "locked"
                          else None, last_used=max(created, last) if last else created)
        yield Planned(image, study, archive_decision(rules, profile_of(profiles,
                                                                       study.profile),
                                                     facts, now))


def run_tiers(settings: Settings, apply: bool, out: IO[str],
              now: datetime | None = None) -> int:
    """Evaluate the rules (and with ``apply`` queue the moves); returns how many images
    move (or would)."""
    from plexhub.api import audit, tiermove
    from plexhub.api.db import Database
    from plexhub.policies.profiles import load_profiles
    from plexhub.policies.tiers import load_rules
    from plexhub.storage import StoreRoots

    rules = load_rules(settings.tier_rules_file)
    if apply:
        tiermove.archive_root(settings)  # a ConflictError saying how to configure one
    when = now or datetime.now(UTC)
    db = Database(settings.catalog_url, profiles=load_profiles(settings.profiles_dir),
                  store_roots=StoreRoots.from_settings(settings))
    moved = 0
    try:
        db.check()
        with db.session() as session:
            for p in list(plan(session, rules, when)):
                if not p.decision or p.image.tier != "hot":  # a sibling moved it already
                    continue
                moved += 1
                line = f"archive {p.study.code} {p.image.id} {p.image.name!r}: " \
                       f"{p.decision.reason}"
                if apply:
                    job = tiermove.queue_move(session, settings, p.image, p.study, "archive",
                                              audit.SYSTEM, f"tier {p.decision.reason}")
                    session.commit()
                    line += f" (job {job.id} queued)"
                print(line, file=out)
    finally:
        db.dispose()
    verb = "queued" if apply else "would be archived (dry run; --apply queues them)"
    print(f"plexhub: {moved} image(s) {verb}", file=out)
    return moved


def cmd_tiers(args: argparse.Namespace) -> int:
    from plexhub.settings import get_settings

    run_tiers(get_settings(), args.apply, sys.stdout)
    return 0


def register(sub: Any) -> None:
    """Add ``plexhub tiers`` to ``plexhub``'s subparsers ``sub``."""
    tp = sub.add_parser("tiers", help="evaluate the storage-tier rules over the catalog "
                        "(a dry run; --apply queues the archive moves)")
    tp.add_argument("--apply", action="store_true",
                    help="queue the moves as jobs (run by plexhub serve or plexhub worker)")
    tp.set_defaults(func=cmd_tiers)
