"""What a sponsor sees of images, jobs and stores: de-identified views.

Staff (admin, scientist, analyst) see everything. A sponsor (any role that is not internal
staff) never sees:

- a study's ``internal_fields`` (image metadata keys staff mark as study-internal);
- slide identifiers (``metadata.slide_id``) unless an active grant gives it ``view_labels``,
  the capability that also shows the slide label and macro images (``associated/`` in the
  store), where the same identifiers are printed;
- the store's ``OME/`` metadata (the original OME-XML may name files, barcodes, operators);
- server paths and internals: a job's source path and error text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from plexhub.api.db import utcnow
from plexhub.api.deps import grants_of
from plexhub.api.models import Study
from plexhub.policies.access import INTERNAL_ROLES, Principal, can_see_study

# metadata keys that identify the physical slide (and are printed on its label)
SLIDE_KEYS = frozenset({"slide_id"})
# top-level folders of an OME-Zarr store that hold slide labels / macro photographs
LABEL_FOLDERS = frozenset({"associated"})
# top-level folders a sponsor never reads, whatever its grant
SPONSOR_NEVER = frozenset({"OME"})


def is_sponsor(user: Principal) -> bool:
    return user.role not in INTERNAL_ROLES


def can_view_labels(session: Session, user: Principal, study: Study) -> bool:
    if not is_sponsor(user):
        return True
    return bool(can_see_study(user, grants_of(session, study.id), utcnow(), "view_labels"))


def image_metadata(metadata: dict[str, Any] | None, user: Principal, study: Study,
                   labels: bool) -> dict[str, Any]:
    """The image's LIMS metadata as ``user`` may see it (``labels``: view_labels granted)."""
    meta = dict(metadata or {})
    if not is_sponsor(user):
        return meta
    hidden = set(study.internal_fields or [])
    if not labels:
        hidden |= SLIDE_KEYS
    return {k: v for k, v in meta.items() if k not in hidden}


def job_view(job: dict[str, Any], user: Principal) -> dict[str, Any]:
    """A job as ``user`` may see it: sponsors get neither the source path nor error text."""
    if not is_sponsor(user):
        return job
    return {**job, "source": "", "error": "conversion failed" if job.get("error") else None}


def store_path_hidden(session: Session, user: Principal, study: Study, path: str) -> bool:
    """Whether a path inside an image's OME-Zarr store is hidden from ``user``."""
    if not is_sponsor(user):
        return False
    first = path.strip("/").split("/", 1)[0]
    if first in SPONSOR_NEVER:
        return True
    return first in LABEL_FOLDERS and not can_view_labels(session, user, study)
