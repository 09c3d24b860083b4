"""The Jupyter Server side of the Studies panel: ``<base_url>plexhub/...`` routes.

- ``GET plexhub/config``: whether an API was found and where (no token).
- ``GET plexhub/api/<path>``: a read of the plexhub API (``/api/v1/<path>``) forwarded with
  the server's token, for the few paths the panel reads (:data:`READABLE`): the studies, a
  study's images, an image, its presets and thumbnail, the unfinished jobs, a job. The API's
  answer (status, ``detail``, body, content type) comes back as it was, so a study the token
  may not see is a 404 here too.
- ``POST plexhub/publish`` ``{path, study, name, note, reason, credential}``: publishes the
  notebook at ``path`` (read from this server's contents, so what is saved is what is
  published; ``note``, the version note, goes into its metadata as ``plexhub.version_note``).
  ``reason`` and ``credential`` (the electronic signature's re-authentication) are sent where
  the study's profile asks: the API's 422 says which is missing, and the page asks for it.
- ``POST plexhub/ingest`` ``{path, study, reason}``: ingests the file or folder at ``path``
  of this server's contents into the study (the API reads it from the user's own folder,
  ``PLEXHUB_INGEST_USER_ROOT``); the API's answer ``{job_id, image_ids, existing}``, whose
  job the page follows through ``plexhub/api/jobs/<id>``.

The API and the token come from :func:`plexhub.client.locate_api` (``PLEXHUB_API_URL`` /
``PLEXHUB_API_TOKEN``, or the hub's plexhub service and ``JUPYTERHUB_API_TOKEN`` inside a
hub server). Every route needs the server's own login (``@web.authenticated``; POST also
its XSRF check); API calls run in a thread, never on the server's event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from pydantic import BaseModel, Field, ValidationError
from tornado import web

from plexhub.client import API_PREFIX, ApiClient, ApiError, locate_api

NAMESPACE = "plexhub"
_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
READABLE = [re.compile(p) for p in (
    r"studies",
    rf"studies/{_ID}",
    rf"studies/{_ID}/images",
    rf"studies/{_ID}/notebooks",
    rf"images/{_ID}",
    rf"images/{_ID}/presets",
    rf"images/{_ID}/thumbnail\.png",
    r"jobs",
    rf"jobs/{_ID}",
    r"me",
)]
_M = TypeVar("_M", bound=BaseModel)
PASSED_QUERY = frozenset({"max"})  # the thumbnail's size
PASSED_HEADERS = ("Content-Type", "ETag", "Cache-Control")


class PublishRequest(BaseModel):
    path: str = Field(min_length=1, max_length=4096)
    study: str = Field(pattern=f"^{_ID}$")
    name: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)
    reason: str = Field(default="", max_length=2000)
    credential: str | None = Field(default=None, max_length=1000)


class IngestRequest(BaseModel):
    path: str = Field(min_length=1, max_length=4096)
    study: str = Field(pattern=f"^{_ID}$")
    reason: str = Field(default="", max_length=2000)


def readable(path: str) -> bool:
    return any(p.fullmatch(path) for p in READABLE)


class _Base(APIHandler):
    def client(self) -> ApiClient:
        client = self.settings.get("plexhub_client")
        if client is None:
            client = ApiClient.from_settings()
            if client is None:
                raise web.HTTPError(503, reason="no plexhub API: set PLEXHUB_API_URL")
            self.settings["plexhub_client"] = client
        return client

    def api_error(self, exc: ApiError) -> None:
        status = exc.status or 502
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"detail": exc.detail or str(exc), "status": status}))


class ConfigHandler(_Base):
    @web.authenticated
    def get(self) -> None:
        url, token = locate_api()
        self.finish(json.dumps({"api_url": url, "api": url is not None,
                                "token": token is not None}))


class ApiReadHandler(_Base):
    @web.authenticated
    async def get(self, path: str) -> None:
        if not readable(path):
            raise web.HTTPError(404, reason="not a path the Studies panel reads")
        params = {k: self.get_argument(k) for k in PASSED_QUERY
                  if self.get_argument(k, None) is not None}
        client = self.client()
        try:
            resp = await asyncio.to_thread(client.request, "GET", f"/{path}", params=params,
                                           what=f"GET {API_PREFIX}/{path}")
        except ApiError as exc:
            self.api_error(exc)
            return
        for name in PASSED_HEADERS[1:]:
            if name in resp.headers:
                self.set_header(name, resp.headers[name])
        self.finish(resp.content, set_content_type=resp.headers.get(
            "Content-Type", "application/octet-stream"))


def _parse(model: type[_M], body: bytes, what: str) -> _M:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        raise web.HTTPError(400, reason=f"bad {what} request: "
                            f"{where + ': ' if where else ''}{err['msg']}") from None


class PublishHandler(_Base):
    @web.authenticated
    async def post(self) -> None:
        req = _parse(PublishRequest, self.request.body, "publish")
        contents: Any = self.contents_manager
        try:
            model = await _maybe_await(contents.get(req.path, content=True, type="notebook"))
        except web.HTTPError as exc:
            raise web.HTTPError(exc.status_code, reason=f"notebook {req.path!r}: "
                                f"{exc.reason or exc.log_message}") from None
        notebook = json.loads(json.dumps(model["content"]))
        if req.note.strip():
            meta = notebook.setdefault("metadata", {})
            meta["plexhub"] = {**(meta.get("plexhub") or {}), "version_note": req.note.strip()}
        client = self.client()
        try:
            done = await asyncio.to_thread(client.publish_notebook, req.study, req.name,
                                           notebook, reason=req.reason,
                                           credential=req.credential or None)
        except ApiError as exc:
            self.api_error(exc)
            return
        self.set_status(201)
        self.finish(json.dumps(done))


class IngestHandler(_Base):
    @web.authenticated
    async def post(self) -> None:
        req = _parse(IngestRequest, self.request.body, "ingest")
        contents: Any = self.contents_manager
        path = req.path.strip("/")
        os_path = getattr(contents, "_get_os_path", None)
        if os_path is None:
            raise web.HTTPError(501, reason="ingest needs files on this server's disk")
        exists = await _maybe_await(contents.file_exists(path)) or \
            await _maybe_await(contents.dir_exists(path))
        if not path or not exists:
            raise web.HTTPError(404, reason=f"{req.path!r}: no such file or folder")
        if await _maybe_await(contents.is_hidden(path)):
            raise web.HTTPError(403, reason=f"{req.path!r} is hidden")
        source = str(os_path(path))
        client = self.client()
        try:
            done = await asyncio.to_thread(client.ingest, req.study, source, reason=req.reason)
        except ApiError as exc:
            self.api_error(exc)
            return
        self.set_status(202)
        self.finish(json.dumps(done))


async def _maybe_await(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


def load(serverapp: Any) -> None:
    """Add the routes to ``serverapp`` (``_load_jupyter_server_extension``)."""
    web_app = serverapp.web_app
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [
        (url_path_join(base, NAMESPACE, "config"), ConfigHandler),
        (url_path_join(base, NAMESPACE, "api", "(.+)"), ApiReadHandler),
        (url_path_join(base, NAMESPACE, "publish"), PublishHandler),
        (url_path_join(base, NAMESPACE, "ingest"), IngestHandler),
    ])
    url, _ = locate_api()
    serverapp.log.info("plexhub extension: API %s", url or "not configured (PLEXHUB_API_URL)")
