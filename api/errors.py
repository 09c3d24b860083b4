"""Domain errors -> HTTP status codes, in one place. Clients get ``{"detail": "..."}``;
a 5xx is logged with a request id and never shows a traceback. Errors that only malformed
input causes (a value PostgreSQL refuses, a number SQLite cannot hold, a name too long for
the filesystem) are a 422, never a 500, even where no check caught them earlier."""

from __future__ import annotations

import errno
import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
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


def _input_problem(exc: Exception) -> str | None:
    """The one-line answer for an error that only a client's malformed input causes (the nets
    behind the checks at the edge, ``api.inputcheck`` and ``api.schemas.Strict``), or None
    for anything else."""
    if isinstance(exc, DataError):  # PostgreSQL refused a value: a NUL, a number in no range
        cause = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "invalid"
        return (f"a value in the request cannot be stored or compared ({cause}); "
                "remove NUL characters and keep numbers in range")
    if isinstance(exc, OverflowError) and "SQLite INTEGER" in str(exc):
        return f"a number in the request is out of range (at most {2**63 - 1})"
    if isinstance(exc, UnicodeEncodeError) and exc.reason == "surrogates not allowed":
        return "the request holds text that is not valid Unicode (a lone surrogate)"
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        return "a name in the request is too long for a file name (at most 255 bytes)"
    return None


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

    async def _malformed(request: Request, exc: Exception) -> JSONResponse:
        problem = _input_problem(exc)
        if problem is None:
            return _internal_error(request, exc)
        log.info("refused %s %s: %s", request.method, request.url.path, problem)
        return JSONResponse({"detail": problem}, status_code=422)

    for cls in (DataError, OverflowError, UnicodeEncodeError, OSError):
        app.add_exception_handler(cls, _malformed)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return _internal_error(request, exc)


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = uuid.uuid4().hex[:12]
    log.exception("internal error %s on %s %s", request_id, request.method,
                  request.url.path, exc_info=exc)
    return JSONResponse({"detail": f"internal error (request id {request_id})"},
                        status_code=500, headers=INERT)  # sent outside InertHeaders
