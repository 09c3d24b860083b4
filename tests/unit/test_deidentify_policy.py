"""De-identification rules (policies/deidentify.py): what a sponsor sees of images, jobs and
stores; staff see everything."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from plexhub.policies.access import Capability, GrantFacts, Principal
from plexhub.policies.deidentify import (
    JOB_FAILED,
    can_read_store_path,
    can_view_labels,
    sees_identified,
    visible_job,
    visible_metadata,
)

NOW = datetime(2026, 12, 4, tzinfo=UTC)
SPONSOR = Principal(user="sue", role="sponsor", groups=frozenset({"acme"}))
STAFF = [Principal(user="x", role=r) for r in ("admin", "scientist", "analyst")]
META = {"slide_id": "SL-7", "animal_id": "A1", "operator": "jd", "tissue": "liver"}


def test_staff_see_identified_data_sponsors_do_not() -> None:
    assert all(sees_identified(p) for p in STAFF)
    assert not sees_identified(SPONSOR)


def test_labels_need_the_view_labels_capability() -> None:
    view = GrantFacts("group:acme", frozenset({Capability.VIEW}))
    labels = GrantFacts("user:sue", frozenset({Capability.VIEW, Capability.VIEW_LABELS}))
    assert not can_view_labels(SPONSOR, [view], NOW)
    assert can_view_labels(SPONSOR, [view, labels], NOW)
    assert all(can_view_labels(p, [], NOW) for p in STAFF)


@pytest.mark.parametrize("staff", STAFF)
def test_staff_see_all_metadata(staff: Principal) -> None:
    assert visible_metadata(META, staff, ["operator"], labels=False) == META


def test_sponsors_never_see_internal_fields_and_slide_ids_only_with_labels() -> None:
    assert visible_metadata(META, SPONSOR, ["operator"], labels=False) == {
        "animal_id": "A1", "tissue": "liver"}
    assert visible_metadata(META, SPONSOR, ["operator"], labels=True) == {
        "slide_id": "SL-7", "animal_id": "A1", "tissue": "liver"}
    assert visible_metadata(None, SPONSOR, [], labels=True) == {}


def test_sponsors_get_no_job_internals() -> None:
    job = {"id": "j1", "state": "failed", "source": "/data/incoming/x.qptiff",
           "error": "Traceback ... /srv/secret"}
    assert visible_job(job, STAFF[1]) == job
    assert visible_job(job, SPONSOR) == {"id": "j1", "state": "failed", "source": "",
                                         "error": JOB_FAILED}
    assert visible_job({**job, "error": None}, SPONSOR)["error"] is None


def test_store_paths() -> None:
    asked: list[str] = []

    def labels(answer: bool) -> Callable[[], bool]:
        def ask() -> bool:
            asked.append("labels")
            return answer
        return ask

    for staff in STAFF:
        assert can_read_store_path(staff, "OME/METADATA.ome.xml", labels(False))
        assert can_read_store_path(staff, "associated/label/0", labels(False))
    assert asked == []  # staff: the grants are never asked
    assert not can_read_store_path(SPONSOR, "OME/METADATA.ome.xml", labels(True))
    assert not can_read_store_path(SPONSOR, "/OME", labels(True))
    assert asked == []
    assert can_read_store_path(SPONSOR, "0/c/0/0/0", labels(False))
    assert can_read_store_path(SPONSOR, ".zattrs", labels(False))
    assert asked == []  # image data: labels are not asked either
    assert not can_read_store_path(SPONSOR, "associated/label/0", labels(False))
    assert can_read_store_path(SPONSOR, "associated/label/0", labels(True))
    assert asked == ["labels", "labels"]
