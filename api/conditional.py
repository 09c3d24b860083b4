"""Conditional responses for rendered images (tiles, DeepZoom, webgateway regions and
thumbnails): one set of cache headers and one If-None-Match check, so that a 200 and its 304
carry the same ``ETag``, ``Cache-Control`` and ``Vary`` on every route.

``Vary: Authorization, Cookie``: the same URL answers differently (or not at all) for another
caller, and the portal authenticates with a cookie. ``Cache-Control`` is ``private``: a shared
cache must never hand one caller's image to another. An answer whose rendering the URL pins
(a preset version, an inline document) never changes and is cached for a year; any other
(the image's current default preset) for 30 seconds, after which the client revalidates with
If-None-Match and gets a 304 as long as the ETag holds.
"""

from __future__ import annotations

from starlette.responses import Response

IMMUTABLE = "private, max-age=31536000, immutable"
SHORT = "private, max-age=30"
VARY = "Authorization, Cookie"


def cache_control(pinned: bool) -> str:
    """For an answer the URL pins (``pinned``), or one that may change with the catalog."""
    return IMMUTABLE if pinned else SHORT


def cache_headers(tag: str, pinned: bool) -> dict[str, str]:
    """The headers of a rendered image's 200 and of its 304."""
    return {"ETag": tag, "Cache-Control": cache_control(pinned), "Vary": VARY}


def not_modified(if_none_match: str | None, tag: str) -> bool:
    """Whether a request's If-None-Match matches strong ETag ``tag`` (RFC 9110: a list of
    tags, compared weakly, or ``*``)."""
    if if_none_match is None:
        return False
    if if_none_match == tag:  # what a browser or viewer sends back: no parsing
        return True
    for part in if_none_match.split(","):
        part = part.strip()
        if part == "*" or part.removeprefix("W/") == tag:
            return True
    return False


def answer_304(headers: dict[str, str]) -> Response:
    return Response(status_code=304, headers=headers)
