"""Domain errors -> HTTP status codes, in one place. Clients get ``{"detail": "..."}``;
a 5xx is logged with a request id and never shows a traceback."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from plexhub.api.headers import INERT
from plexhub.errors import (
    BusyError,
    ConflictError,
    DestinationExistsError,
    MissingFileError,
    NotFoundError,
    PermissionDeniedError,
    PlexhubError,
    TooLargeError,
)

log = logging.getLogger("plexhub.api")

STATUS: list[tuple[type[Exception], int]] = [
    (NotFoundError, 404),
    (PermissionDeniedError, 403),
    (ConflictError, 409),
    (DestinationExistsError, 409),
    (TooLargeError, 413),
    (BusyError, 429),
    (MissingFileError, 422),
    (PlexhubError, 422),
]


def status_for(exc: Exception) -> int:
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 500


def _validation_text(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(PlexhubError)
    async def _plexhub(request: Request, exc: PlexhubError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, BusyError) else None
        return JSONResponse({"detail": str(exc)}, status_code=status_for(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_text(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex[:12]
        log.exception("internal error %s on %s %s", request_id, request.method,
                      request.url.path)
        return JSONResponse({"detail": f"internal error (request id {request_id})"},
                            status_code=500, headers=INERT)  # sent outside InertHeaders
