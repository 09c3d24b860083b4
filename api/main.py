"""The FastAPI application factory (``plexhub serve`` runs it under uvicorn)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from plexhub import __version__
from plexhub.api import errors, logredact, preset_store, sysconfig
from plexhub.api.auth import TokenStore
from plexhub.api.bodylimit import BodyLimit
from plexhub.api.db import Database
from plexhub.api.deps import AppState, Scope
from plexhub.api.headers import InertHeaders
from plexhub.api.hubauth import HubAuth, HubConfig
from plexhub.api.inputcheck import RejectNul
from plexhub.api.jobs import JobRunner
from plexhub.api.prefix import ForwardedPrefix
from plexhub.api.requestctx import RequestContext
from plexhub.api.tilelane import TileLane
from plexhub.malloc import tune_malloc
from plexhub.policies.profiles import load_profiles
from plexhub.private import private_dir
from plexhub.settings import Settings, get_settings
from plexhub.storage import StoreRoots, connect, is_url

log = logging.getLogger("plexhub.api")


def create_app(settings: Settings | None = None, *, migrate: bool = False) -> FastAPI:
    """The app on ``settings`` (default: from the environment). The catalog's schema must be
    current (``plexhub migrate``, which ``plexhub serve`` runs before its workers start), else
    CatalogSchemaError; ``migrate=True`` migrates it first, under the same lock (tests)."""
    settings = settings or get_settings()
    private_dir(settings.data_dir)  # 0700: the catalog, stores and hub state are ours alone
    logredact.install()  # no OAuth code, state or token in the access log
    tune_malloc()  # tiles allocate MBs per render: reuse the heap instead of fresh pages
    db = Database(settings.catalog_url, profiles=load_profiles(settings.profiles_dir),
                  store_roots=StoreRoots.from_settings(settings))
    if is_url(settings.store_root_url):  # the S3 client, made before the first tile needs it
        threading.Thread(target=connect, args=(settings.store_root_url,),
                         name="plexhub-storage", daemon=True).start()
    try:
        if migrate:
            db.create()
        else:
            db.check()
    except BaseException:
        db.dispose()
        raise
    hub_config = HubConfig.from_env()
    hub = HubAuth(hub_config) if hub_config is not None else None
    state = AppState(settings=settings, db=db,
                     tokens=TokenStore(db, settings, hub.resolve if hub else None,
                                       hub.cached if hub else None),
                     # a converted image gets its default preset
                     jobs=JobRunner(db, settings, image_hooks=[preset_store.create_default]),
                     hub=hub)
    from plexhub.api.webhooks import WebhookSender

    sender = state.webhooks = WebhookSender(db, settings)  # the findings webhook's outbox

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from plexhub.api.tiles import warm_up

        with db.session() as session:  # the first tile should not pay for compiling queries
            warm_up(session)
        with db.session() as session:  # the version and configuration in force, if new
            sysconfig.record(session, settings)
        if hub is not None:
            hub.start()
        if settings.run_jobs:  # else `plexhub worker` processes run them (--no-jobs)
            state.jobs.start()
            sender.start()  # only when a findings webhook is configured
        try:
            yield
        finally:
            state.jobs.shutdown()
            sender.shutdown()
            if hub is not None:
                hub.close()
            db.dispose()

    app = FastAPI(title="plexhub API", version=__version__, lifespan=lifespan,
                  description="Catalog, render presets, tiles and sharing for multiplex images.",
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.plexhub = state
    errors.install(app)
    app.add_middleware(RequestContext)  # request id, client, reason header (the audit's)
    app.add_middleware(TileLane)  # most tile requests, answered before FastAPI's routing
    app.add_middleware(RejectNul)  # a NUL in the path or query: 422, before anything else
    app.add_middleware(ForwardedPrefix)  # proxies that forward the full /services/... path
    app.add_middleware(BodyLimit)  # 413 before a body over its route's limit is read
    app.add_middleware(InertHeaders)  # outermost: nosniff and a sandbox CSP on every answer
    from plexhub.api.tiles import TileEngine

    app.state.tiles = TileEngine(settings.tile_cache_bytes)  # rendered tiles, shared
    include_routes(app, hub=hub is not None)
    return app


def include_routes(app: FastAPI, *, hub: bool) -> None:
    """The routes of :func:`routers`, the portal's static files and the OpenAPI document
    (with plexhub's error shape) on ``app``."""
    from plexhub.api.portal.web import ASSETS

    _document_errors(app)
    for router in routers(hub=hub):
        app.include_router(router)
    app.mount("/portal/static", ASSETS, name="portal-static")  # gzip, versioned URLs


ERROR_SCHEMA = {"title": "Error", "type": "object", "required": ["detail"],
                "properties": {"detail": {"type": "string", "title": "Detail"}}}
ERROR_STATUSES = {"401": "no or unknown bearer token", "403": "the role may not do this",
                  "404": "not found, or not visible to the caller",
                  "409": "conflicts with the current state",
                  "413": "the body or a document in it is over a limit (plexhub.limits)",
                  "422": "the request is invalid; detail says what and why",
                  "429": "this caller has as many renders in flight as allowed; see Retry-After"}


def _document_errors(app: FastAPI) -> None:
    """Every operation answers errors as {"detail": "..."}; say so in the OpenAPI document
    (FastAPI would describe its default list-shaped validation errors)."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version,
                              description=app.description, routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas["Error"] = ERROR_SCHEMA
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            ref = {"content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Error"}}}}
            for path, ops in doc.get("paths", {}).items():
                for op in ops.values():
                    responses = op.setdefault("responses", {})
                    for code, text in ERROR_STATUSES.items():
                        if code == "401" and path == "/api/v1/health":
                            continue
                        responses[code] = {"description": text, **ref}
                    op.setdefault("security", [{"HTTPBearer": []}])
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


service = APIRouter(tags=["service"], include_in_schema=False)


@service.get("/api/v1/openapi.json", dependencies=[Scope("read")])
def openapi(request: Request) -> dict[str, Any]:
    """The OpenAPI document, behind the same bearer authentication as everything else."""
    return request.app.openapi()  # type: ignore[no-any-return]


def routers(*, hub: bool) -> list[APIRouter]:
    """Every router of the app, in the order their routes are matched. Each routes module
    exposes ``router`` and nothing else to register: what its routes need of the app (the
    state, the tile engine, the caller, authorization) comes through ``plexhub.api.deps``.
    ``hub``: with the JupyterHub OAuth login routes (service mode)."""
    from plexhub.api.portal import login, pages, reviewpage, signing
    from plexhub.api.routes import (
        catalog,
        cells,
        compliance,
        guides,
        images,
        notebooks,
        peerreview,
        presets,
        retirement,
        review,
        thumbnails,
        tiers,
        tiles,
        tokens,
        viewing,
        webgateway,
        zarr,
    )
    from plexhub.api.routes import hub as hub_routes

    # tiles first: routes are matched in order, and tiles are most of the requests
    # (measured: matching the tile route behind the others cost ~0.2 ms per tile)
    found = [tiles.router, catalog.router, tokens.router, service, images.router,
             presets.router, zarr.router, webgateway.router,
             notebooks.router, thumbnails.router,  # published notebooks, portal thumbnails
             compliance.router,  # study locks and audit exports
             retirement.router,  # retiring an image (no hard deletes)
             tiers.router,  # storage tiers: archive and restore
             cells.router,  # analysis results (plexhub analyze)
             review.router,  # annotations and findings
             peerreview.router,  # the findings' peer review and sign-off
             viewing.router, guides.router,  # saved views, cursor values, guided views
             login.router, pages.router,  # the sponsor portal
             reviewpage.router,  # and its peer-review page (staff)
             signing.router]  # signatures by a fresh identity-provider login
    return [*found, hub_routes.router] if hub else found
