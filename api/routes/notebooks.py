"""Published notebooks: publish a version (optionally executed), list, read, and read-only
HTML. Sponsors need the ``view_notebooks`` capability on an active grant, or get 404."""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plexhub.api import audit, nbsandbox
from plexhub.api import notebooks as nbs
from plexhub.api.deps import AppState, CurrentUser, DbSession, State, require, visible_study
from plexhub.api.models import PublishedNotebook, Study
from plexhub.api.schemas import (
    NotebookPublic,
    NotebookPublish,
    NotebookPublished,
    NotebookSummary,
    NotebookVersion,
)
from plexhub.errors import ConflictError, NotFoundError
from plexhub.policies.access import Capability, Principal

router = APIRouter(prefix="/api/v1", tags=["notebooks"])
CAPABILITY = Capability.VIEW_NOTEBOOKS


def _version(row: PublishedNotebook) -> NotebookVersion:
    return NotebookVersion(id=row.id, version=row.version, content_hash=row.content_hash,
                           published_by=row.published_by, created_at=row.created_at)


def visible_notebook(session: Session, user: Principal,
                     notebook_id: str) -> tuple[PublishedNotebook, Study]:
    """The notebook, or 404 when it does not exist or its study is not visible to the
    caller with ``view_notebooks``."""
    row = session.get(PublishedNotebook, notebook_id)
    study = session.get(Study, row.study_id) if row is not None else None
    if row is None or study is None:
        raise NotFoundError(f"notebook {notebook_id}", "not found")
    try:
        visible_study(session, user, study.code, capability=CAPABILITY)
    except NotFoundError:
        raise NotFoundError(f"notebook {notebook_id}", "not found") from None
    return row, study


def versions_of(session: Session, study_id: int, name: str) -> list[PublishedNotebook]:
    return list(session.scalars(select(PublishedNotebook).where(
        PublishedNotebook.study_id == study_id, PublishedNotebook.name == name)
        .order_by(PublishedNotebook.version)).all())


def study_notebooks(session: Session, study: Study) -> list[NotebookSummary]:
    rows = session.scalars(select(PublishedNotebook)
                           .where(PublishedNotebook.study_id == study.id)
                           .order_by(PublishedNotebook.name, PublishedNotebook.version)).all()
    by_name: dict[str, list[PublishedNotebook]] = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row)
    return [NotebookSummary(name=name, latest=_version(versions[-1]),
                            versions=[_version(v) for v in versions])
            for name, versions in by_name.items()]


@router.post("/studies/{code}/notebooks", response_model=NotebookPublished, status_code=201)
def publish(code: str, body: NotebookPublish, user: CurrentUser, st: State,
            session: DbSession) -> NotebookPublished:
    """Publish the next version of notebook ``name`` (analysts and scientists)."""
    study = visible_study(session, user, code)
    require(user, "presets:write")
    name = nbs.parse_name(body.name)
    nb = nbs.parse_notebook(body.notebook)
    session.commit()  # no transaction stays open while a kernel runs
    if body.execute:
        nb = nbsandbox.execute(nb, st.settings)  # never as this service's OS user
    text = nbs.to_text(nb)
    digest = nbs.content_hash(json.loads(text))
    number = (session.scalar(select(func.max(PublishedNotebook.version)).where(
        PublishedNotebook.study_id == study.id, PublishedNotebook.name == name)) or 0) + 1
    row = PublishedNotebook(id=uuid.uuid4().hex, study_id=study.id, name=name, version=number,
                            ipynb=text, content_hash=digest, published_by=user.user)
    session.add(row)
    audit.record(session, user, "notebook.publish", "notebook", row.id, study_code=code,
                 after={"name": name, "version": number, "content_hash": digest,
                        "executed": body.execute}, reason=body.reason)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"notebook {name!r} version {number}",
                            "was published by someone else at the same time",
                            "publish again") from exc
    return NotebookPublished(id=row.id, name=name, version=number, content_hash=digest)


@router.get("/studies/{code}/notebooks", response_model=list[NotebookSummary])
def list_notebooks(code: str, user: CurrentUser, session: DbSession) -> list[NotebookSummary]:
    """Every notebook name of the study: its latest version and all versions."""
    study = visible_study(session, user, code, capability=CAPABILITY)
    return study_notebooks(session, study)


@router.get("/notebooks/{notebook_id}", response_model=NotebookPublic)
def get_notebook(notebook_id: str, user: CurrentUser, session: DbSession) -> NotebookPublic:
    """One version: its metadata and the .ipynb document as published."""
    row, study = visible_notebook(session, user, notebook_id)
    return NotebookPublic(id=row.id, study=study.code, name=row.name, version=row.version,
                          content_hash=row.content_hash, published_by=row.published_by,
                          created_at=row.created_at, ipynb=json.loads(row.ipynb))


@router.get("/notebooks/{notebook_id}/html", response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {}}}})
def get_notebook_html(notebook_id: str, user: CurrentUser, session: DbSession) -> HTMLResponse:
    """Read-only HTML (no kernel, no scripts: sanitized, images embedded)."""
    row, study = visible_notebook(session, user, notebook_id)
    fragment = nbs.CACHE.fragment(row.content_hash, row.ipynb)
    page = nbs.standalone_html(f"{row.name} v{row.version} ({study.code})", fragment)
    # sandbox: the page runs no script anyway, and gets an opaque origin (no cookie use)
    return HTMLResponse(page, headers={"Content-Security-Policy": f"sandbox; {nbs.HTML_CSP}",
                                       "X-Content-Type-Options": "nosniff",
                                       "Cache-Control": "private, no-store"})


def setup(app: FastAPI, state: AppState) -> None:
    app.include_router(router)
