"""Retirement and retention of images (issue 14, "no hard deletes on GLP studies").

An image is never deleted from the catalog. ``POST /images/{id}/retire`` (api/routes/
retirement.py) marks it retired: it leaves the normal lists, sponsors get the 404 of an
unknown image, staff still open it and list it with ``?include_retired=true``, and its audit
trail stays in every export. ``plexhub retention`` lists the retired images with the day
their retention ends: the study profile's ``retention_years`` counted **from the
retirement** (the catalog records no end of a study, so the retirement is the one date
every image has). With ``--apply`` it purges the images whose retention has ended and
whose profile allows hard deletes (``policies.profiles.purge_decision``): first an audited
``image.purge`` event and the row marked purged (a tombstone, committed together), then its
store is removed through its storage root (a local folder or an fsspec URL). A GLP image is
never purged: the report says it is kept, why, and until when. Nothing on a locked study is
purged (a lock refuses every change).

The functions take ``now`` so that tests set the clock.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit
from plexhub.api.db import aware
from plexhub.api.models import Image, Study
from plexhub.api.tiermove import MOVING
from plexhub.policies.profiles import (
    ComplianceProfile,
    profile_of,
    purge_decision,
    retained_until,
)
from plexhub.storage import remove_tree

PURGE = "image.purge"
Outcome = Literal["keep", "purge", "purged"]


MOVING_TIERS = frozenset(MOVING.values())  # a tier move copies the store: never purge then


@dataclass(frozen=True)
class RetentionItem:
    """One retired image, what ``plexhub retention`` decides for it and why."""

    image_id: str
    study: str
    name: str
    profile: str
    retired_at: datetime
    retained_until: datetime
    outcome: Outcome
    why: str


def retention_end(profile: ComplianceProfile, retired_at: datetime) -> datetime:
    """The day a retired image's retention ends (``retention_years`` from its retirement)."""
    return retained_until(profile, aware(retired_at))


def plan(session: Session, profiles: Mapping[str, ComplianceProfile], now: datetime,
         study: str | None = None) -> list[RetentionItem]:
    """Every retired image (of ``study``), oldest retirement first, with what happens to it
    at ``now``."""
    q = (select(Image, Study).join(Study, Study.id == Image.study_id)
         .where(Image.retired_at.is_not(None)))
    if study is not None:
        q = q.where(Study.code == study)
    items = []
    for image, s in session.execute(q.order_by(Image.retired_at, Image.id)).all():
        assert image.retired_at is not None
        profile = profile_of(profiles, s.profile)
        until = retention_end(profile, image.retired_at)
        outcome: Outcome
        if image.purged_at is not None:
            outcome, why = "purged", f"purged on {aware(image.purged_at):%Y-%m-%d}"
        elif s.state == "locked":
            outcome, why = "keep", "the study is locked; unlock it first"
        elif image.tier in MOVING_TIERS:
            outcome, why = "keep", f"its store is {image.tier} (a tier move); run again after it"
        else:
            decided = purge_decision(profile, aware(image.retired_at), now)
            outcome, why = ("purge" if decided else "keep"), decided.reason
        items.append(RetentionItem(image.id, s.code, image.name, profile.name,
                                   aware(image.retired_at), until, outcome, why))
    return items


@dataclass(frozen=True)
class Purged:
    image_id: str
    removed: list[str]  # the locations removed (a store or an image group in it)
    error: str = ""


def purge(session: Session, item: RetentionItem, now: datetime, by: str = "") -> Purged:
    """Purge one image ``plan`` said to purge: the audited ``image.purge`` event and the
    tombstone first (committed), then its store. A store that other images still use loses
    only this image's group."""
    image = session.get(Image, item.image_id)
    study = session.scalar(select(Study).where(Study.code == item.study))
    if image is None or image.purged_at is not None or image.retired_at is None \
            or study is None or study.state == "locked" or item.outcome != "purge" \
            or image.tier in MOVING_TIERS:
        session.rollback()
        return Purged(item.image_id, [], "no longer to be purged (restored, purged or "
                      "locked meanwhile)")
    own = image.location(group=True)
    whole = image.location(group=False)
    shared = session.scalar(select(Image.id).where(
        image.same_store(), Image.id != image.id, Image.purged_at.is_(None)).limit(1)) \
        if whole is not None else None
    targets, what = [], "nothing"
    if own is not None and whole is not None:
        if shared is None:
            targets, what = [whole], "store"  # the image's own store (its group with it)
        elif own.url != whole.url:
            targets, what = [own], "group"  # a store others still use: this image's group
    # the location as the catalog records it (a root's name and a key, never a local path)
    audit.record(session, audit.SYSTEM, PURGE, "image", image.id, study_code=item.study,
                 before={"state": "retired", "retired_at": item.retired_at.isoformat(),
                         **image.recorded_location()},
                 after={"state": "purged", "retained_until": item.retained_until.isoformat(),
                        "removed": what, "by": by},
                 reason=f"retention ended: {item.why}")
    image.purged_at = now
    session.commit()  # the event and the tombstone before anything is removed
    removed, errors = [], []
    for t in targets:
        try:
            if remove_tree(t):
                removed.append(t.url)
        except OSError as exc:
            errors.append(f"{t.url}: {exc}")
    return Purged(image.id, removed, "; ".join(errors))


def report(items: list[RetentionItem], applied: bool) -> str:
    """The table ``plexhub retention`` prints."""
    if not items:
        return "plexhub: no retired images\n"
    rows = [("image", "study", "profile", "retired", "retained until", "outcome", "why")]
    verb = {"purge": "purged" if applied else "would purge", "keep": "kept",
            "purged": "purged"}
    rows += [(it.image_id, it.study, it.profile, f"{it.retired_at:%Y-%m-%d}",
              f"{it.retained_until:%Y-%m-%d}", verb[it.outcome], it.why) for it in items]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
             for r in rows]
    return "\n".join(lines) + "\n"


def run(url: str, profiles: Mapping[str, ComplianceProfile], roots: Any, now: datetime,
        study: str | None = None, apply: bool = False) -> tuple[int, str]:
    """Plan (and with ``apply`` carry out) the purge on the catalog at ``url``; (exit
    status, what to print). Exit 1 when a store could not be removed."""
    from plexhub.api.db import Database

    db = Database(url, profiles=profiles, store_roots=roots)
    try:
        db.check()
        with db.session() as session:
            items = plan(session, profiles, now, study)
            if not apply:
                return 0, report(items, False)
            try:
                by = getpass.getuser()
            except (KeyError, OSError):
                by = ""
            problems = []
            for item in items:
                if item.outcome == "purge":
                    done = purge(session, item, now, by)
                    if done.error:
                        problems.append(f"plexhub: error: image {item.image_id}: "
                                        f"{done.error}")
            out = report(items, True)
            return (1, out + "\n".join(problems) + "\n") if problems else (0, out)
    finally:
        db.dispose()


def cmd_retention(args: argparse.Namespace) -> int:
    """``plexhub retention [--study CODE] [--apply]``."""
    from plexhub.api.db import utcnow
    from plexhub.policies.profiles import load_profiles
    from plexhub.settings import get_settings
    from plexhub.storage import StoreRoots

    settings = get_settings()
    rc, said = run(settings.catalog_url, load_profiles(settings.profiles_dir),
                   StoreRoots.from_settings(settings), utcnow(), args.study, args.apply)
    print(said, end="", file=sys.stdout if rc == 0 else sys.stderr)
    return rc


def register(sub: Any) -> None:
    """Add ``plexhub retention`` (the ``plexhub.commands`` entry point)."""
    rt = sub.add_parser("retention", help="list retired images and when their retention "
                        "ends; --apply purges those whose profile allows it")
    rt.add_argument("--study", default=None, help="only this study (its code)")
    rt.add_argument("--apply", action="store_true",
                    help="purge the images whose retention has ended and whose profile "
                    "allows hard deletes (default: a dry run that changes nothing)")
    rt.set_defaults(func=cmd_retention)
