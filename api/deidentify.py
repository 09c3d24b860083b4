"""De-identified views of images, jobs and stores: the API applies
:mod:`plexhub.policies.deidentify` (what a sponsor never sees, and what only ``view_labels``
shows) with the study's facts from the catalog."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from plexhub.api.db import utcnow
from plexhub.api.deps import grants_of
from plexhub.api.models import Study
from plexhub.policies import deidentify as rule
from plexhub.policies.access import Principal


def can_view_labels(session: Session, user: Principal, study: Study) -> bool:
    if rule.sees_identified(user):  # staff: no need to read the grants
        return True
    return bool(rule.can_view_labels(user, grants_of(session, study.id), utcnow()))


def image_metadata(metadata: dict[str, Any] | None, user: Principal, study: Study,
                   labels: bool) -> dict[str, Any]:
    """The image's LIMS metadata as ``user`` may see it (``labels``: view_labels granted)."""
    return rule.visible_metadata(metadata, user, study.internal_fields or [], labels)


def job_view(job: dict[str, Any], user: Principal) -> dict[str, Any]:
    """A job as ``user`` may see it: sponsors get neither the source path nor error text."""
    return rule.visible_job(job, user)


def store_path_hidden(session: Session, user: Principal, study: Study, path: str) -> bool:
    """Whether a path inside an image's OME-Zarr store is hidden from ``user``."""
    return not rule.can_read_store_path(user, path,
                                        lambda: can_view_labels(session, user, study))
