"""Published notebooks: publish a version (optionally executed), list, read, and read-only
HTML. Sponsors need the ``view_notebooks`` capability on an active grant, or get 404."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit, nbsandbox, requestctx, signatures
from plexhub.api import notebooks as nbs
from plexhub.api.db import commit_version, next_version
from plexhub.api.deps import (
    DbSession,
    NotebookStudy,
    Scope,
    State,
    VisibleNotebook,
    VisibleStudy,
)
from plexhub.api.models import PublishedNotebook, Study
from plexhub.api.schemas import (
    NotebookPublic,
    NotebookPublish,
    NotebookPublished,
    NotebookSummary,
    NotebookVersion,
)
from plexhub.policies.access import Principal

router = APIRouter(prefix="/api/v1", tags=["notebooks"])


def _version(row: PublishedNotebook) -> NotebookVersion:
    return NotebookVersion(id=row.id, version=row.version, content_hash=row.content_hash,
                           published_by=row.published_by, created_at=row.created_at)


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
def publish(code: str, body: NotebookPublish, study: VisibleStudy,
            user: Annotated[Principal, Scope("presets:write")], st: State,
            session: DbSession) -> NotebookPublished:
    """Publish the next version of notebook ``name`` (analysts and scientists)."""
    name = nbs.parse_name(body.name)
    nb = nbs.parse_notebook(body.notebook)
    session.commit()  # no transaction stays open while a kernel runs
    if body.execute:
        nb = nbsandbox.execute(nb, st.settings)  # never as this service's OS user
    text = nbs.to_text(nb)
    digest = nbs.content_hash(json.loads(text))
    number = next_version(session, PublishedNotebook, PublishedNotebook.study_id == study.id,
                          PublishedNotebook.name == name)
    row_id = uuid.uuid4().hex
    audit.check_change(session, code, "notebook.publish",
                       body.reason.strip() or requestctx.current().reason)
    sig = signatures.sign_if_required(
        session, signatures.verifier_of(st.settings, st.tokens), user, body.credential,
        study_code=code, action="notebook.publish", entity_type="notebook", entity_id=row_id,
        content=signed_notebook(code, name, number, digest), reason=body.reason)
    row = PublishedNotebook(id=row_id, study_id=study.id, name=name, version=number,
                            ipynb=text, content_hash=digest, published_by=user.user)
    session.add(row)
    audit.record(session, user, "notebook.publish", "notebook", row.id, study_code=code,
                 after={"name": name, "version": number, "content_hash": digest,
                        "executed": body.execute}, reason=body.reason)
    commit_version(session, f"notebook {name!r} version {number}")
    return NotebookPublished(id=row.id, name=name, version=number, content_hash=digest,
                             signatures=[signatures.public(sig)] if sig is not None else [])


def signed_notebook(code: str, name: str, version: int, digest: str) -> dict[str, object]:
    """What a publication's signature covers: the version and its content hash."""
    return {"study": code, "name": name, "version": version, "content_hash": digest}


@router.get("/studies/{code}/notebooks", response_model=list[NotebookSummary])
def list_notebooks(study: NotebookStudy, session: DbSession) -> list[NotebookSummary]:
    """Every notebook name of the study: its latest version and all versions."""
    return study_notebooks(session, study)


@router.get("/notebooks/{notebook_id}", response_model=NotebookPublic)
def get_notebook(found: VisibleNotebook) -> NotebookPublic:
    """One version: its metadata and the .ipynb document as published."""
    row, study = found
    return NotebookPublic(id=row.id, study=study.code, name=row.name, version=row.version,
                          content_hash=row.content_hash, published_by=row.published_by,
                          created_at=row.created_at, ipynb=json.loads(row.ipynb))


@router.get("/notebooks/{notebook_id}/html", response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {}}}})
def get_notebook_html(found: VisibleNotebook) -> HTMLResponse:
    """Read-only HTML (no kernel, no scripts: sanitized, images embedded)."""
    row, study = found
    fragment = nbs.CACHE.fragment(row.content_hash, row.ipynb)
    page = nbs.standalone_html(f"{row.name} v{row.version} ({study.code})", fragment)
    # sandbox: the page runs no script anyway, and gets an opaque origin (no cookie use)
    return HTMLResponse(page, headers={"Content-Security-Policy": f"sandbox; {nbs.HTML_CSP}",
                                       "X-Content-Type-Options": "nosniff",
                                       "Cache-Control": "private, no-store"})

