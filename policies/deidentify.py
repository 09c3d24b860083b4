"""De-identification: what of images, jobs and stores a caller may see.

Staff (admin, scientist, analyst) see everything. Anyone else (a sponsor) never sees:

- a study's internal fields (image metadata keys staff mark as study-internal);
- slide identifiers (metadata ``slide_id``) unless an active grant gives it ``view_labels``,
  the capability that also shows the slide label and macro images (``associated/`` in the
  store), where the same identifiers are printed;
- the store's ``OME/`` metadata (the original OME-XML may name files, barcodes, operators);
- server paths and internals: a job's source path and error text.

The API applies these rules (``plexhub.api.deidentify``); they decide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from plexhub.policies.access import (
    INTERNAL_ROLES,
    Capability,
    Decision,
    GrantFacts,
    Principal,
    can_see_study,
)

# metadata keys that identify the physical slide (and are printed on its label)
SLIDE_KEYS = frozenset({"slide_id"})
# top-level folders of an OME-Zarr store that hold slide labels / macro photographs
LABEL_FOLDERS = frozenset({"associated"})
# top-level folders a sponsor never reads, whatever its grant
SPONSOR_NEVER = frozenset({"OME"})
JOB_FAILED = "conversion failed"  # what a sponsor reads instead of a job's error text


def sees_identified(principal: Principal) -> bool:
    """Staff see images, jobs and stores as they are; everyone else de-identified."""
    return principal.role in INTERNAL_ROLES


def can_view_labels(principal: Principal, grants: Iterable[GrantFacts],
                    now: datetime) -> Decision:
    """Slide identifiers, labels and macro images: staff, or an active ``view_labels``
    grant to the caller (or its organisation)."""
    return can_see_study(principal, grants, now, Capability.VIEW_LABELS)


def visible_metadata(metadata: Mapping[str, Any] | None, principal: Principal,
                     internal_fields: Iterable[str], labels: bool) -> dict[str, Any]:
    """An image's LIMS metadata as ``principal`` may see it; ``internal_fields``: the study's
    internal keys; ``labels``: :func:`can_view_labels` allowed it."""
    meta = dict(metadata or {})
    if sees_identified(principal):
        return meta
    hidden = set(internal_fields)
    if not labels:
        hidden |= SLIDE_KEYS
    return {k: v for k, v in meta.items() if k not in hidden}


def visible_job(job: Mapping[str, Any], principal: Principal) -> dict[str, Any]:
    """A job as ``principal`` may see it: sponsors get neither its source path nor its error
    text (only that it failed)."""
    if sees_identified(principal):
        return dict(job)
    return {**job, "source": "", "error": JOB_FAILED if job.get("error") else None}


def can_read_store_path(principal: Principal, path: str,
                        labels: Callable[[], bool]) -> Decision:
    """Whether ``principal`` may read ``path`` inside an image's OME-Zarr store. ``labels()``
    (whether :func:`can_view_labels` allows it) is asked only for a label folder."""
    if sees_identified(principal):
        return Decision(True, f"{principal.role} is internal staff")
    first = path.strip("/").split("/", 1)[0]
    if first in SPONSOR_NEVER:
        return Decision(False, f"{first}/ is never shown to sponsors")
    if first in LABEL_FOLDERS and not labels():
        return Decision(False, f"{first}/ needs the {Capability.VIEW_LABELS} capability")
    return Decision(True, "image data")
