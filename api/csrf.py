"""Cross-site request forgery: a write authenticated by the portal's session cookie needs proof
that the portal's own page sent it.

A browser attaches the cookie to any request for the API's origin, whoever made the page that
sends it. So a request that changes state (any method but GET, HEAD and OPTIONS) and is
authenticated by the cookie rather than an ``Authorization`` header is refused (403) unless

- it carries ``X-Plexhub-CSRF`` equal to :func:`token_for` the cookie's value (the portal
  puts it in a ``<meta name="csrf-token">`` of every page for its scripts; another site can
  neither read it nor set a custom header without a CORS preflight the API never grants), and
- nothing says it came from elsewhere: an ``Origin`` header must name this host, and a
  ``Sec-Fetch-Site`` header must say ``same-origin``.

Bearer-token callers (scripts, notebooks, viewers) are not affected.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

from plexhub.errors import PermissionDeniedError

HEADER = "X-Plexhub-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_for(session: str) -> str:
    """The CSRF token of a session cookie value: derived from it, revealing nothing of it."""
    return hmac.new(b"plexhub-csrf-v1", session.encode(), hashlib.sha256).hexdigest()


def _foreign(request: Request) -> str | None:
    """Why the request evidently comes from another origin, or None."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return f"comes from another site (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin")
    if origin is not None and (origin == "null" or
                               urlsplit(origin).netloc != request.headers.get("host", "")):
        return f"comes from another origin ({origin})"
    return None


def check(request: Request, session: str) -> None:
    """Refuse a state-changing request authenticated by the session cookie ``session``
    unless it proves it comes from the portal's own pages (see the module docstring)."""
    if request.method in SAFE_METHODS:
        return
    problem = _foreign(request)
    if problem is None:
        given = request.headers.get(HEADER, "")
        if given and hmac.compare_digest(given.encode(), token_for(session).encode()):
            return
        problem = f"has no valid {HEADER} header"
    raise PermissionDeniedError(
        f"{request.method} {request.url.path}",
        f"is authenticated by the portal's session cookie and {problem}",
        f"send {HEADER} from the page's csrf-token meta tag, "
        "or authenticate with an Authorization: Bearer header")
