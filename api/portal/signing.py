"""Electronic signatures by a fresh OpenID Connect login, driven from the browser (issue 14):
for a signer whose hub login is an identity provider and who has no password or token of
their own to type in a signature field.

``GET /portal/sign/oidc`` (the signer's session) sends the browser to the provider with
``prompt=login`` (:func:`plexhub.api.oidcsign.start`); the provider sends it back to
``GET /portal/sign/oidc/done``, which checks the fresh login
(:func:`plexhub.api.oidcsign.finish`) and shows the one-time signature credential to paste
into the signature field (the portal's sign-off, JupyterLab's publish dialog) within its
validity. Register ``…/portal/sign/oidc/done`` as a redirect URI of the API's client at the
provider (scripts use ``/api/v1/signatures/oidc/*`` and its own callback).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from plexhub.api import oidcsign
from plexhub.api.deps import Public, Scope, State
from plexhub.api.portal.web import PortalRoute, page
from plexhub.errors import PlexhubError
from plexhub.policies.access import Principal

router = APIRouter(prefix="/portal/sign", route_class=PortalRoute, include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/oidc")
def sign_start(request: Request, user: Annotated[Principal, Scope("read")],
               st: State) -> Response:
    """To the identity provider, for a fresh login of the signer."""
    try:
        flow = oidcsign.start(st.settings, user, str(request.url_for("portal_oidc_done")))
    except PlexhubError as exc:  # not configured, or the provider cannot be reached
        return page(request, "signature.html", {"error": str(exc)}, user, status_code=503)
    return RedirectResponse(flow["authorize_url"], status_code=303, headers=NO_STORE)


@router.get("/oidc/done", name="portal_oidc_done", dependencies=[Public])
async def sign_done(request: Request, st: State, code: str = Query(max_length=4096),
                    state: str = Query(max_length=4096)) -> Response:
    """The one-time credential of a fresh login (open: the sealed ``state`` names the
    signer and the ID token must prove that signer's fresh login)."""
    try:
        found = await run_in_threadpool(oidcsign.finish, st.settings, code, state)
    except PlexhubError as exc:
        response = page(request, "signature.html", {"error": str(exc)}, status_code=403)
    else:
        response = page(request, "signature.html", {"error": None, **found})
    response.headers.update(NO_STORE)
    return response
