"""A small HTTP client for the plexhub API, as the viewers use it.

The viewers never import ``plexhub.api``: they reach the service over HTTP like any other
client. Where the API is comes from the arguments or the environment:

- ``PLEXHUB_API_URL`` (for example ``http://127.0.0.1:8000/services/plexhub``; the hub sets it
  for single-user servers), else nothing: no API, viewers work on local OME-Zarr only;
- the token from ``PLEXHUB_API_TOKEN``, else ``JUPYTERHUB_API_TOKEN`` (inside a hub's
  single-user server the API accepts the user's hub token).

Errors come back as :class:`plexhub.errors.PlexhubError` subclasses carrying the API's own
``detail`` message, never as raw HTTP exceptions.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx

from plexhub.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    PlexhubError,
)

API_PREFIX = "/api/v1"


class ApiError(PlexhubError):
    """The API answered with an error the caller cannot fix by changing its input."""


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        return detail if isinstance(detail, str) else str(detail)[:300]
    return str(body)[:300]


class ApiClient:
    """Bearer-token HTTP access to one plexhub API (``base_url`` without ``/api/v1``)."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        base = base_url.rstrip("/")
        if base.endswith(API_PREFIX):
            base = base[: -len(API_PREFIX)]
        if not base.startswith(("http://", "https://")):
            raise InputError(f"API URL {base_url!r}", "is not an http(s) URL",
                             "for example http://127.0.0.1:8000/services/plexhub")
        self.base_url = base
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base + API_PREFIX, headers=headers,
                                  timeout=timeout, transport=transport)

    @classmethod
    def from_env(cls) -> ApiClient | None:
        """The API named by ``PLEXHUB_API_URL``, or None when it is not set."""
        url = os.environ.get("PLEXHUB_API_URL", "").strip()
        if not url:
            return None
        token = os.environ.get("PLEXHUB_API_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN")
        return cls(url, token)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def close(self) -> None:
        self._http.close()

    # -- transport ------------------------------------------------------------------------

    def _check(self, resp: httpx.Response, what: str) -> httpx.Response:
        if resp.status_code < 400:
            return resp
        detail = _detail(resp)
        if resp.status_code == 404:
            raise NotFoundError(what, f"not found ({detail})")
        if resp.status_code in (401, 403):
            raise PermissionDeniedError(what, f"refused ({detail})",
                                        "check PLEXHUB_API_TOKEN or log in again")
        if resp.status_code == 409:
            raise ConflictError(what, detail)
        if resp.status_code < 500:
            raise InputError(what, detail)
        raise ApiError(what, f"the API failed with HTTP {resp.status_code} ({detail})",
                       "try again; report it if it persists")

    def request(self, method: str, path: str, *, what: str | None = None,
                **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ApiError(what or path, f"cannot reach the API at {self.base_url} ({exc})",
                           "is PLEXHUB_API_URL right and the service running?") from exc
        return self._check(resp, what or path)

    def get_json(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def post_json(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("POST", path, json=body, **kw).json()

    # -- catalog and presets --------------------------------------------------------------

    def image(self, image_id: str) -> dict[str, Any]:
        return dict(self.get_json(f"/images/{quote(image_id)}", what=f"image {image_id}"))

    def presets(self, image_id: str) -> list[dict[str, Any]]:
        """Summaries of the presets that apply to the image (its own, study, panel)."""
        return list(self.get_json(f"/images/{quote(image_id)}/presets",
                                  what=f"presets of image {image_id}"))

    def preset(self, ref: str) -> dict[str, Any]:
        """A preset version: ``<id>`` (latest) or ``<id>@<version>``; the API's document."""
        pid, _, version = ref.partition("@")
        path = f"/presets/{quote(pid)}" + (f"/versions/{quote(version)}" if version else "")
        return dict(self.get_json(path, what=f"preset {ref}"))

    def save_preset(self, image_id: str, document: dict[str, Any],
                    visibility: str | None = None) -> dict[str, Any]:
        """Save ``document`` for the image; the same name again makes the next version.
        ``visibility`` None keeps a preset's visibility (a new one is visible to its study)."""
        body = dict(document) | ({"visibility": visibility} if visibility is not None else {})
        return dict(self.post_json(f"/images/{quote(image_id)}/presets", body,
                                   what=f"preset {document.get('name')!r}"))

    def tile(self, image_id: str, level: int, row: int, col: int, document: dict[str, Any],
             *, size: int = 256, fmt: str = "png", t: int = 0, z: int = 0) -> bytes:
        """A rendered tile for an inline preset document (POST, so 60 channels fit)."""
        path = f"/images/{quote(image_id)}/tiles/{level}/{row}/{col}.{fmt}"
        return self.request("POST", path, json=document,
                            params={"size": size, "t": t, "z": z},
                            what=f"tile {level}/{row}/{col} of image {image_id}").content

    def zarr_url(self, image_id: str) -> str:
        """The image's OME-Zarr over HTTP (read with :meth:`headers`)."""
        return f"{self.base_url}{API_PREFIX}/images/{quote(image_id)}/zarr"
