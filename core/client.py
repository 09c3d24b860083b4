"""The one HTTP client of the plexhub API (httpx, synchronous).

Everything that reaches the API from outside its process uses it: the notebook viewer and the
napari plugin (``plexhub.widgets``), ``plexhub publish``, the demo data of ``plexhub up`` and
the tests. ``ApiClient(url, token)`` talks to one API; ``ApiClient.from_settings()`` finds it.

Where the API is: one rule, first match wins, for the URL and the token separately
(:func:`locate_api`):

1. what the caller passes (``ApiClient(url, token)``, ``plexhub publish --api/--token``, the
   URL of an image opened in a viewer);
2. the settings ``PLEXHUB_API_URL`` and ``PLEXHUB_API_TOKEN`` (the hub sets the URL for its
   single-user servers);
3. inside a server JupyterHub spawned (``JUPYTERHUB_SERVICE_PREFIX`` is set there): the hub's
   plexhub service, ``<origin><JUPYTERHUB_BASE_URL>services/plexhub``, where the origin comes
   from ``JUPYTERHUB_PUBLIC_URL`` or ``JUPYTERHUB_PUBLIC_HUB_URL`` and is the local proxy
   ``http://127.0.0.1:<PLEXHUB_HUB_PORT>`` otherwise; and the server's own hub token
   ``JUPYTERHUB_API_TOKEN`` (the API accepts hub tokens in hub mode);
4. otherwise there is no API: ``from_settings()`` returns None (the viewers then open local
   OME-Zarr only; ``plexhub publish`` says what to set).

The environment is read through :class:`plexhub.settings.Settings` and
:class:`plexhub.settings.HubServerEnvironment`, fresh at each look-up (a notebook may set
``PLEXHUB_API_URL`` after import). A URL is the API's root, without ``/api/v1`` (a trailing
``/api/v1`` is accepted and dropped).

Errors: every failure is an :class:`ApiError` carrying ``status`` (None when the API was not
reached), the server's own message ``detail`` (the API answers ``{"detail": "..."}``) and the
``url``; its message is one line naming what was asked. Each is also the domain error a caller
already catches: 404 :class:`~plexhub.errors.NotFoundError`, 401 and 403
:class:`~plexhub.errors.PermissionDeniedError`, 409 :class:`~plexhub.errors.ConflictError`, 429
:class:`~plexhub.errors.BusyError`, another 4xx :class:`~plexhub.errors.InputError`, an API
that cannot be reached ``ConnectionError``, a job or a start that takes too long
``TimeoutError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypedDict, cast
from urllib.parse import quote, urlsplit

import httpx

from plexhub.errors import (
    BusyError,
    ConflictError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    PlexhubError,
)
from plexhub.model import FINISHED as FINISHED  # the job states a wait ends on
from plexhub.model import JobState
from plexhub.settings import HubServerEnvironment, Settings

API_PREFIX = "/api/v1"
REASON_HEADER = "X-Plexhub-Reason"  # the API reads it (api/requestctx.py)
HUB_SERVICE = "plexhub"  # the API's service name in the hub (hub/config.py registers it)


class Job(TypedDict):
    """A conversion job as ``GET /api/v1/jobs/{id}`` returns it (times as ISO 8601 text)."""

    id: str
    state: JobState  # its text ("done" == JobState.DONE)
    progress: float
    error: str | None
    study: str
    source: str
    image_ids: list[str]
    created_at: str
    started_at: str | None
    finished_at: str | None


class IngestAccepted(TypedDict):
    """The answer to an ingest request (202): the conversion job and the image(s)."""

    job_id: str
    image_id: str
    image_ids: list[str]
    existing: bool


# -- errors ------------------------------------------------------------------------------


class ApiError(PlexhubError):
    """The API refused or failed a request, could not be reached, or did not finish in time.
    ``status`` is the HTTP status (None when no answer came), ``detail`` the API's message."""

    def __init__(self, subject: str, problem: str, hint: str = "", *,
                 status: int | None = None, detail: str = "", url: str = "") -> None:
        super().__init__(subject, problem, hint)
        self.status = status
        self.detail = detail
        self.url = url


class ApiNotFoundError(ApiError, NotFoundError):
    """404: the thing does not exist, or the caller may not know that it exists."""


class ApiPermissionError(ApiError, PermissionDeniedError):
    """401 (no valid token) or 403 (the token's user may not do this)."""


class ApiConflictError(ApiError, ConflictError):
    """409: the request conflicts with the current state (a duplicate, a finished job...)."""


class ApiBusyError(ApiError, BusyError):
    """429: too many expensive requests in flight; try again after ``retry_after`` s."""


class ApiInputError(ApiError, InputError):
    """Another 4xx: the request is not what the API accepts (the detail says why)."""


class ApiUnreachableError(ApiError, ConnectionError):
    """No answer: nothing listens at the URL, the name does not resolve, the answer is late."""


class ApiTimeoutError(ApiError, TimeoutError):
    """A job did not finish, or the API did not become healthy, within the time given."""


_HINT_AUTH = "check PLEXHUB_API_TOKEN (or --token), or log in again"
_HINT_REACH = "is PLEXHUB_API_URL (or --api) right and the service running?"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _detail(resp: httpx.Response) -> str:
    """The API's ``detail`` message (validation errors are lists), else the body's start."""
    try:
        body = resp.json()
    except ValueError:
        return _one_line(resp.text) or resp.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        return _one_line(detail if isinstance(detail, str) else str(detail))
    return _one_line(str(body))


def error_for(resp: httpx.Response, what: str) -> ApiError:
    """The :class:`ApiError` for an error answer (status >= 400) to the request ``what``."""
    status = resp.status_code
    detail = _detail(resp)
    phrase = (resp.reason_phrase or httpx.codes.get_reason_phrase(status)).lower()
    problem = f"the API answered {status} {phrase}: {detail}"
    kw: dict[str, Any] = {"status": status, "detail": detail, "url": str(resp.request.url)}
    if status == 404:
        return ApiNotFoundError(what, problem, **kw)
    if status in (401, 403):
        return ApiPermissionError(what, problem, _HINT_AUTH, **kw)
    if status == 409:
        return ApiConflictError(what, problem, **kw)
    if status == 429:
        err = ApiBusyError(what, problem, "try again in a moment", **kw)
        retry = resp.headers.get("retry-after", "")
        err.retry_after = int(retry) if retry.isdigit() else 1
        return err
    if status < 500:
        return ApiInputError(what, problem, **kw)
    return ApiError(what, problem, "try again; report it with the request id if it persists",
                    **kw)


def _unreachable(base_url: str, exc: httpx.HTTPError) -> ApiUnreachableError:
    reason = _one_line(str(exc), 200) or type(exc).__name__
    return ApiUnreachableError(f"the API at {base_url}", f"cannot be reached ({reason})",
                               _HINT_REACH, url=base_url)


# -- where the API is --------------------------------------------------------------------


def api_root(url: str) -> str:
    """``url`` as an API root: no trailing slash, no trailing ``/api/v1``; http(s) only."""
    base = url.strip().rstrip("/")
    if base.endswith(API_PREFIX):
        base = base[: -len(API_PREFIX)]
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"API URL {url!r}", "is not an http(s) URL",
                         "for example http://127.0.0.1:8000/services/plexhub")
    return base


def hub_service_url(hub: HubServerEnvironment | None = None,
                    settings: Settings | None = None) -> str | None:
    """The plexhub service as seen from a server the hub spawned; None elsewhere."""
    hub = hub or HubServerEnvironment()
    if not hub.in_hub_server:
        return None
    settings = settings or Settings()
    parts = urlsplit(hub.public_url or hub.public_hub_url or "")
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc \
        else f"http://127.0.0.1:{settings.hub_port}"
    path = "/".join(p for p in (hub.base_url.strip("/"), "services", HUB_SERVICE) if p)
    return f"{origin}/{path}"


def locate_api(url: str | None = None, token: str | None = None
               ) -> tuple[str | None, str | None]:
    """(API root or None, token or None) by the module's rule: arguments, then
    ``PLEXHUB_API_URL``/``PLEXHUB_API_TOKEN``, then the hub's service and hub token inside a
    hub-spawned server."""
    settings = Settings()
    hub = HubServerEnvironment()
    found_url = url or settings.api_url or hub_service_url(hub, settings)
    found_token = token \
        or (settings.api_token.get_secret_value() if settings.api_token else None) \
        or (hub.api_token.get_secret_value() if hub.in_hub_server and hub.api_token else None)
    return (api_root(found_url) if found_url else None), found_token


# -- the client --------------------------------------------------------------------------


def reason_header(reason: str) -> dict[str, str]:
    """The ``X-Plexhub-Reason`` header for a reason for change (percent-encoded UTF-8);
    none for a blank reason."""
    reason = reason.strip()
    return {REASON_HEADER: quote(reason, safe=" ")} if reason else {}


class ApiClient:
    """Bearer-token access to one plexhub API at ``base_url`` (its root, see the module).

    ``http`` lends an existing httpx client (Starlette's TestClient, say) whose base URL is
    that root; the ApiClient then neither configures nor closes it."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None,
                 http: httpx.Client | None = None) -> None:
        self.base_url = api_root(base_url)
        self.token = token or None
        self._own = http is None
        self._http = http if http is not None else httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport)

    @classmethod
    def from_settings(cls, url: str | None = None, token: str | None = None,
                      **kw: Any) -> ApiClient | None:
        """The API that :func:`locate_api` finds, or None when there is none."""
        found_url, found_token = locate_api(url, token)
        return cls(found_url, found_token, **kw) if found_url else None

    @property
    def headers(self) -> dict[str, str]:
        """The authorization header (for fsspec and other HTTP readers of the API)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r})"

    # -- transport ------------------------------------------------------------------------

    def request(self, method: str, path: str, *, what: str | None = None,
                **kw: Any) -> httpx.Response:
        """``method`` on ``/api/v1<path>``; an error answer or no answer raises
        :class:`ApiError` (``what`` names the request in its message)."""
        url = API_PREFIX + path
        headers = {**self.headers, **kw.pop("headers", {})}
        try:
            resp = self._http.request(method, url, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from exc
        if resp.status_code >= 400:
            raise error_for(resp, what or f"{method} {url}")
        return resp

    def get_json(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def post_json(self, path: str, body: Any = None, **kw: Any) -> Any:
        resp = self.request("POST", path, json=body, **kw)
        return resp.json() if resp.content else None

    # -- health and jobs ------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return dict(self.get_json("/health", what="the API's health"))

    def wait_healthy(self, timeout: float = 30.0,
                     why_not: Callable[[], str | None] = lambda: None, *,
                     interval: float = 0.05) -> None:
        """Wait until ``/api/v1/health`` answers 200 (see :func:`wait_healthy`)."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            try:
                resp = self._http.get(API_PREFIX + "/health", timeout=2)
                if resp.status_code == 200:
                    return
                last = f"answered {resp.status_code}"
            except httpx.HTTPError as exc:
                last = _one_line(str(exc), 200) or type(exc).__name__
            reason = why_not()
            if reason is not None:
                raise ApiUnreachableError(f"the API at {self.base_url}",
                                          f"did not start: {reason}", url=self.base_url)
            if time.monotonic() > deadline:
                raise ApiTimeoutError(f"the API at {self.base_url}",
                                      f"not healthy after {timeout:g} s (last: {last})",
                                      _HINT_REACH, url=self.base_url)
            time.sleep(interval)

    def job(self, job_id: str) -> Job:
        return cast(Job, self.get_json(f"/jobs/{quote(job_id, safe='')}",
                                       what=f"job {job_id}"))

    def retry_job(self, job_id: str) -> Job:
        return cast(Job, self.post_json(f"/jobs/{quote(job_id, safe='')}/retry",
                                        what=f"retrying job {job_id}"))

    def wait_for_job(self, job_id: str, timeout: float = 600.0,
                     progress: Callable[[Job], None] | None = None, *,
                     interval: float = 1.0) -> Job:
        """Poll the job until it is done, failed or cancelled and return it (whatever its
        end state: look at ``state`` and ``error``). ``progress`` gets every polled job.
        Polls start at 50 ms apart and grow to ``interval``; past ``timeout`` seconds
        :class:`ApiTimeoutError`."""
        deadline = time.monotonic() + timeout
        pause = min(0.05, interval)
        while True:
            job = self.job(job_id)
            if progress is not None:
                progress(job)
            if job["state"] in FINISHED:
                return job
            if time.monotonic() > deadline:
                raise ApiTimeoutError(
                    f"job {job_id}", f"still {job['state']} ({job['progress']:.0%}) after "
                    f"{timeout:g} s", "wait longer, or look at the API's log",
                    url=f"{self.base_url}{API_PREFIX}/jobs/{job_id}")
            time.sleep(pause)
            pause = min(pause * 1.5, interval)

    # -- tokens, studies, ingest, grants, notebooks ---------------------------------------

    def create_token(self, user: str, role: str, groups: list[str] | None = None
                     ) -> dict[str, Any]:
        """A new API token for ``user`` (admins only); ``["token"]`` is its secret, shown
        this once."""
        return dict(self.post_json("/tokens", {"user": user, "role": role,
                                               "groups": groups or []},
                                   what=f"a token for {user}"))

    def create_study(self, code: str, title: str, sponsor: str, profile: str = "non-glp",
                     *, exist_ok: bool = False) -> dict[str, Any] | None:
        """Create the study; with ``exist_ok`` an existing code is no error (returns None)."""
        try:
            return dict(self.post_json("/studies", {"code": code, "title": title,
                                                    "sponsor": sponsor, "profile": profile},
                                       what=f"creating study {code}"))
        except ApiConflictError:
            if exist_ok:
                return None
            raise

    def images(self, study: str) -> list[dict[str, Any]]:
        return list(self.get_json(f"/studies/{quote(study, safe='')}/images",
                                  what=f"images of study {study}"))

    def ingest(self, study: str, source: str,
               metadata: Mapping[str, Any] | None = None, *,
               reason: str = "") -> IngestAccepted:
        """Start converting ``source`` (a path under an ingest root) into study ``study``
        (``reason``: the reason for change, which a GLP study requires)."""
        body = {"source": source, "metadata": dict(metadata or {})}
        return cast(IngestAccepted, self.post_json(
            f"/studies/{quote(study, safe='')}/images", body, headers=reason_header(reason),
            what=f"ingesting {source} into study {study}"))

    def grants(self, study: str) -> list[dict[str, Any]]:
        return list(self.get_json(f"/studies/{quote(study, safe='')}/grants",
                                  what=f"grants of study {study}"))

    def grant(self, study: str, principal: str, capabilities: list[str],
              reason: str = "") -> dict[str, Any]:
        return dict(self.post_json(f"/studies/{quote(study, safe='')}/grants",
                                   {"principal": principal, "capabilities": capabilities,
                                    "reason": reason},
                                   what=f"granting study {study} to {principal}"))

    def publish_notebook(self, study: str, name: str, notebook: Mapping[str, Any], *,
                         execute: bool = False, reason: str = "",
                         credential: str | None = None) -> dict[str, Any]:
        """Publish ``notebook`` (the .ipynb document) as ``name`` in the study; the same name
        again makes its next version. ``credential`` signs it where the study's profile asks
        (GLP): your password, or without one your own API token."""
        return dict(self.post_json(f"/studies/{quote(study, safe='')}/notebooks",
                                   {"name": name, "notebook": dict(notebook),
                                    "execute": execute, "reason": reason,
                                    "credential": credential},
                                   what=f"publishing to study {study}"))

    # -- compliance: locks, signatures, the audit trail -----------------------------------

    def lock_study(self, study: str, reason: str = "",
                   credential: str | None = None) -> dict[str, Any]:
        """Lock the study (signed with ``credential`` where the profile asks)."""
        return dict(self.post_json(f"/studies/{quote(study, safe='')}/lock",
                                   {"reason": reason, "credential": credential},
                                   what=f"locking study {study}"))

    def unlock_study(self, study: str, reason: str = "",
                     credential: str | None = None) -> dict[str, Any]:
        return dict(self.post_json(f"/studies/{quote(study, safe='')}/unlock",
                                   {"reason": reason, "credential": credential},
                                   what=f"unlocking study {study}"))

    def change_study_profile(self, study: str, profile: str, reason: str = "",
                             credential: str | None = None) -> dict[str, Any]:
        """Move the study to another compliance profile (signed with ``credential`` where
        either profile asks)."""
        return dict(self.request("PUT", f"/studies/{quote(study, safe='')}/profile",
                                 json={"profile": profile, "reason": reason,
                                       "credential": credential},
                                 what=f"changing the profile of study {study}").json())

    def approve_preset(self, ref: str, reason: str = "",
                       credential: str | None = None) -> dict[str, Any]:
        """Approve a preset version (``<id>`` latest or ``<id>@<version>``) as its study's
        reference, signed with ``credential`` where the profile asks."""
        pid, _, version = ref.partition("@")
        body: dict[str, Any] = {"reason": reason, "credential": credential}
        if version:
            body["version"] = int(version)
        return dict(self.post_json(f"/presets/{quote(pid)}/approve", body,
                                   what=f"approving preset {ref}"))

    def signatures(self, study: str) -> list[dict[str, Any]]:
        return list(self.get_json(f"/studies/{quote(study, safe='')}/signatures",
                                  what=f"signatures of study {study}"))

    # -- images and presets (the viewers) -------------------------------------------------

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

    def save_preset(self, image_id: str, document: Mapping[str, Any],
                    visibility: str | None = None, *, reason: str = "") -> dict[str, Any]:
        """Save ``document`` for the image; the same name again makes the next version.
        ``visibility`` None keeps a preset's visibility (a new one is visible to its study).
        ``reason``: the reason for change (a GLP study refuses a save without one)."""
        body = dict(document) | ({"visibility": visibility} if visibility is not None else {})
        return dict(self.post_json(f"/images/{quote(image_id)}/presets", body,
                                   headers=reason_header(reason),
                                   what=f"preset {document.get('name')!r}"))

    def tile(self, image_id: str, level: int, row: int, col: int, document: Mapping[str, Any],
             *, size: int = 256, fmt: str = "png", t: int = 0, z: int = 0) -> bytes:
        """A rendered tile for an inline preset document (POST, so 60 channels fit)."""
        path = f"/images/{quote(image_id)}/tiles/{level}/{row}/{col}.{fmt}"
        return self.request("POST", path, json=dict(document),
                            params={"size": size, "t": t, "z": z},
                            what=f"tile {level}/{row}/{col} of image {image_id}").content

    def zarr_url(self, image_id: str) -> str:
        """The image's OME-Zarr over HTTP (read it with :attr:`headers`)."""
        return f"{self.base_url}{API_PREFIX}/images/{quote(image_id)}/zarr"


def wait_healthy(base_url: str, timeout: float = 30.0,
                 why_not: Callable[[], str | None] = lambda: None, *,
                 interval: float = 0.05) -> None:
    """Wait until the API at ``base_url`` answers ``/api/v1/health`` with 200. Past
    ``timeout`` seconds :class:`ApiTimeoutError`; as soon as ``why_not()`` returns a reason
    (the server's process ended, say) :class:`ApiUnreachableError` with that reason."""
    with ApiClient(base_url) as client:
        client.wait_healthy(timeout, why_not=why_not, interval=interval)
