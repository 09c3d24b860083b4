"""The portal's peer-review page (issue 19): ``/portal/studies/{code}/review``, for staff.

The page is a shell; ``static/peerreview.js`` fills it from ``GET /api/v1/studies/{code}/
review`` and writes through the review API (verdicts, slide completion, revisions of
findings, sign-off with the signer's password re-entered), sending the page's CSRF token.
The study director (``policies/review.py``) also gets a form that assigns the primary
pathologist and the peer reviewer. Sponsors get the portal's 404 page: they see signed-off
findings in the findings export.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from plexhub.api import peerreview
from plexhub.api.deps import DbSession, Scope, State, VisibleStudy
from plexhub.api.portal.web import PortalRoute, page
from plexhub.errors import NotFoundError
from plexhub.policies.access import Principal, is_staff
from plexhub.policies.review import may_direct

router = APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)


@router.get("/studies/{code}/review")
def review_page(request: Request, study: VisibleStudy,
                user: Annotated[Principal, Scope("read")], session: DbSession,
                st: State) -> Response:
    if not is_staff(user):
        raise NotFoundError(f"study {study.code}", "not found")
    review = peerreview.review_of(session, study.id)
    role = None
    if review is not None:
        role = ("primary" if user.user == review.primary_pathologist else
                "peer" if user.user == review.peer_reviewer else None)
    director = bool(may_direct(user, study.created_by))
    return page(request, "review.html", {"study": study, "review": review, "role": role,
                                         "director": director,
                                         "oidc": bool(st.settings.oidc_issuer)}, user)
