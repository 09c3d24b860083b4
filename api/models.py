"""Catalog tables (SQLAlchemy 2). Changes go through an Alembic migration in migrations/."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    event,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session

from plexhub.api.db import Base, utcnow
from plexhub.errors import ConflictError, NotFoundError
from plexhub.model import FINISHED as FINISHED
from plexhub.model import JobState as JobState
from plexhub.policies.tiers import READABLE
from plexhub.storage import StoreLocation, StoreRoots, is_url, storage_options

TS = DateTime(timezone=True)


class ApiToken(Base):
    """A bearer token (only its SHA-256 is kept); revoked or expired tokens stay as rows."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    user: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)  # ~1 min steps


class PortalSession(Base):
    """A browser session of the standalone portal: the cookie holds a random secret whose
    SHA-256 is kept here, never the token the user logged in with. Ends at logout
    (``revoked_at``), after ``expires_at``, when idle too long, or with its token."""

    __tablename__ = "portal_sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # the catalog token it was opened with; None for the settings' admin token or a hub token
    token_id: Mapped[str | None] = mapped_column(ForeignKey("api_tokens.id"), nullable=True,
                                                 index=True)
    user: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(TS, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(TS)
    revoked_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    title: Mapped[str] = mapped_column(String(500))
    sponsor: Mapped[str] = mapped_column(String(200))
    profile: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), default="open")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)
    # image metadata keys that only staff see (sponsors get them removed)
    internal_fields: Mapped[list[str]] = mapped_column(JSON, default=list)


class Grant(Base):
    __tablename__ = "grants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    principal: Mapped[str] = mapped_column(String(250), index=True)
    capabilities: Mapped[list[str]] = mapped_column(JSON)
    expires_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    granted_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("study_id", "fingerprint", "series_index"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    name: Mapped[str] = mapped_column(String(500), default="")
    series_index: Mapped[int] = mapped_column(Integer, default=0)
    source_uri: Mapped[str] = mapped_column(Text)
    source_format: Mapped[str | None] = mapped_column(String(40), nullable=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)  # quick identity
    checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)  # full SHA-256
    # the OME-Zarr root: a key under the named storage root ``storage_root`` (migration
    # 0008), or an absolute folder / URL when ``storage_root`` is None (rows outside any root)
    store_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    store_key: Mapped[str] = mapped_column(String(200), default="")  # image group in the store
    storage_root: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ngff_version: Mapped[str | None] = mapped_column(String(8), nullable=True)
    axes: Mapped[str | None] = mapped_column(String(8), nullable=True)
    levels: Mapped[list[Any]] = mapped_column(JSON, default=list)  # shape per level
    dtype: Mapped[str | None] = mapped_column(String(16), nullable=True)
    physical_sizes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    channels: Mapped[list[Any]] = mapped_column(JSON, default=list)  # index, label, marker, color
    tier: Mapped[str] = mapped_column(String(16), default="hot")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)
    # retirement (migration 0011, api/retirement.py): a retired image is hidden from normal
    # lists and from sponsors, kept and exported; a purged one has lost its store after its
    # retention period (the row stays: a tombstone)
    retired_at: Mapped[datetime | None] = mapped_column(TS, nullable=True, index=True)
    retired_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)

    def store_root(self) -> StoreLocation:
        """Where this image's OME-Zarr is (the store's root, then the image's group in it),
        a local folder or a URL with its storage options: what tiles, the zarr route,
        thumbnails and histograms read. The one place that resolves the catalog's location
        (a named storage root and a key under it) against the configured roots. NotFoundError
        until its conversion has made the image ready."""
        if self.purged_at is not None:
            raise NotFoundError(f"image {self.id}", "was purged after its retention period",
                                "its audit trail keeps what it was")
        self.check_readable()  # archived or being restored: 409 saying how to restore it
        found = self.location() if self.status == "ready" else None
        if found is None:
            raise NotFoundError(f"image {self.id}", "has no converted store yet",
                                "wait for its conversion job")
        return found

    def location(self, group: bool = True) -> StoreLocation | None:
        """Where the image's store is (``group``: its image group in it; else the whole
        store, which the images of one multi-series source share), whatever its status;
        None when the catalog records none."""
        if not self.store_uri:
            return None
        key = self.store_key.strip("/") if group else ""
        if self.storage_root is not None:
            return _roots_of(self).resolve(self.storage_root,
                                           f"{self.store_uri}/{key}" if key else self.store_uri)
        base = self.store_uri.rstrip("/")  # an absolute location (no root records it)
        url = f"{base}/{key}" if key else base
        return StoreLocation(url, storage_options(url) if is_url(url) else None)

    def same_store(self) -> ColumnElement[bool]:
        """The SQL condition for the images whose store is this image's (the series of one
        source file share one store): what a tier move moves and a purge must spare."""
        root = Image.storage_root.is_(None) if self.storage_root is None \
            else Image.storage_root == self.storage_root
        return and_(Image.study_id == self.study_id, root, Image.store_uri == self.store_uri)

    def recorded_location(self) -> dict[str, str | None]:
        """The location as the catalog records it (a root's name, a key under it and the
        image's group; never a local path): what an audit event names."""
        return {"storage_root": self.storage_root, "store": self.store_uri,
                "group": self.store_key}

    def check_readable(self) -> None:
        """:class:`ImageArchivedError` (409, naming how to restore it) unless the image's
        store is served: hot, or on its way to the archive (read from the hot copy)."""
        if self.tier is not None and self.tier not in READABLE:  # None: not stored yet (hot)
            raise ImageArchivedError(self.id, self.tier)


class ImageArchivedError(ConflictError):
    """An image whose store is archived (or on its way back) was read: 409, saying how to
    restore it."""

    def __init__(self, image_id: str, tier: str) -> None:
        restore = f"POST /api/v1/images/{image_id}/restore"
        if tier == "restoring":
            super().__init__(f"image {image_id}", "is archived and being restored to hot "
                             "storage", "retry in a few minutes; GET /api/v1/images/"
                             f"{image_id} shows tier 'hot' once it is back")
        else:
            super().__init__(f"image {image_id}", f"is {tier}: its store is in the archive "
                             "storage root and is not served",
                             f"restore it with {restore} (staff or a holder of a grant on its "
                             "study), then retry once its tier is 'hot'")
        self.tier = tier


ROOTS_INFO = "store_roots"  # the session's StoreRoots (plexhub.api.db.Database puts them)


def _roots_of(image: Image) -> StoreRoots:
    """The storage roots of the catalog ``image`` was loaded from (the process's settings
    when it was made outside a session)."""
    roots: StoreRoots | None = image.__dict__.get("_plexhub_roots")
    if roots is None:
        session = object_session(image)
        roots = session.info.get(ROOTS_INFO) if session is not None else None
    if roots is None:
        from plexhub.settings import get_settings

        roots = StoreRoots.from_settings(get_settings())
    return roots


@event.listens_for(Image, "load")
def _remember_roots(image: Image, context: Any) -> None:
    # images outlive their session (the tile routes cache them): keep the roots they need
    roots = context.session.info.get(ROOTS_INFO) if context.session is not None else None
    if roots is not None:
        image.__dict__["_plexhub_roots"] = roots


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="convert")
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)  # a JobState
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_uri: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    # the lease: which API process runs it and when that process last said so (api/jobs.py)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False, server_default=false())


class Preset(Base):
    __tablename__ = "presets"
    __table_args__ = (UniqueConstraint("scope", "target", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(16))  # image | panel | study
    target: Mapped[str] = mapped_column(String(200))  # image id, panel name or study code
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), nullable=True)
    owner: Mapped[str] = mapped_column(String(200))
    visibility: Mapped[str] = mapped_column(String(16), default="study")
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)


class PresetVersion(Base):
    __tablename__ = "preset_versions"
    __table_args__ = (UniqueConstraint("preset_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    preset_id: Mapped[str] = mapped_column(ForeignKey("presets.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)


class PublishedNotebook(Base):
    """One published version of a notebook; versions are immutable and stay readable."""

    __tablename__ = "published_notebooks"
    __table_args__ = (UniqueConstraint("study_id", "name", "version"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    ipynb: Mapped[str] = mapped_column(Text)  # nbformat 4 JSON as published (and executed)
    content_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the canonical JSON
    published_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)


class AuditEvent(Base):
    """Append-only: the database refuses UPDATE and DELETE of a row (triggers, migration
    0005; a later migration that rebuilds this table on SQLite must create them again).

    Tamper-evident: ``hash`` is the SHA-256 of the event's canonical JSON, which includes
    ``prev_hash`` (the previous event's hash: the global chain) and ``study_prev_hash`` (the
    previous event of the same study: the study's chain); see ``api/auditchain.py``."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_study_seq", "study_code", "seq"),
                      # a forwarded hub login failure is recorded once per id (its request_id)
                      Index("ix_audit_events_action_request", "action", "request_id"))
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(TS, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(200))
    study_code: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    role: Mapped[str | None] = mapped_column(String(20), nullable=True)  # "system": no user
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client: Mapped[str | None] = mapped_column(String(100), nullable=True)  # client address
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    study_prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Signature(Base):
    """An electronic signature (issue 14): who signed what, when, with which meaning.

    ``content`` is the canonical JSON of what was signed (it names the object's type and
    id); ``content_hash`` its SHA-256, and ``hash`` the SHA-256 of the signature's own
    manifest (every other column), so neither the record nor its binding to the object can
    change unseen. Append-only like ``audit_events`` (triggers, migration 0006)."""

    __tablename__ = "signatures"
    __table_args__ = (Index("ix_signatures_entity", "entity_type", "entity_id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_code: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    meaning: Mapped[str] = mapped_column(String(20))
    signer: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(20))  # password | token | oidc
    signed_at: Mapped[datetime] = mapped_column(TS)
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Annotation(Base):
    """One version of an annotation drawn on an image: a GeoJSON Feature in level-0 pixel
    coordinates (x right, y down) with its class and note. An edit adds the next version
    (the same ``annotation_id``); a deletion adds a version with ``deleted`` set. Rows are
    never changed, and each one is audited."""

    __tablename__ = "annotations"
    __table_args__ = (UniqueConstraint("annotation_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    annotation_id: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # point | rectangle | polygon | freehand
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    label: Mapped[str] = mapped_column(String(200), default="")  # the class
    note: Mapped[str] = mapped_column(Text, default="")
    deleted: Mapped[bool] = mapped_column(default=False, server_default=false())
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)


class Finding(Base):
    """One version of a pathologist's finding on a slide (same versioning as
    :class:`Annotation`): organ, a term of the controlled vocabulary, severity 0-5,
    distribution, free text, linked annotations and its review state."""

    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("finding_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    finding_id: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    tissue: Mapped[str] = mapped_column(String(200))
    term: Mapped[str] = mapped_column(String(200))
    severity: Mapped[int] = mapped_column(Integer)
    distribution: Mapped[str] = mapped_column(String(40), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    annotations: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(20), default="draft")  # draft | signed
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)


class Review(Base):
    """A study's peer review (issue 19): the pathologists the study director assigned, and
    when both sign-offs locked its findings (``policies/review.py`` has the rules)."""

    __tablename__ = "reviews"
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    primary_pathologist: Mapped[str] = mapped_column(String(200))
    peer_reviewer: Mapped[str] = mapped_column(String(200))
    assigned_by: Mapped[str] = mapped_column(String(200))
    assigned_at: Mapped[datetime] = mapped_column(TS, default=utcnow)
    locked_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)


class ReviewVerdict(Base):
    """One peer-review verdict (agree / disagree, with a comment) on one version of a
    finding; a change of mind adds a row. The newest row of a finding is its verdict."""

    __tablename__ = "review_verdicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    finding_id: Mapped[str] = mapped_column(String(32), index=True)
    finding_version: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(200))
    verdict: Mapped[str] = mapped_column(String(16))  # agree | disagree
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)


class SlideRead(Base):
    """A pathologist of the review completed a slide: ``role`` primary (read done) or peer
    (peer review done)."""

    __tablename__ = "slide_reads"
    __table_args__ = (UniqueConstraint("image_id", "role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    reader: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)


class WebhookDelivery(Base):
    """An outbox row: a webhook call to make (the findings export on sign-off), kept until
    it is delivered or runs out of attempts, so that a restart does not lose it. A sender
    leases a due row (``lease_owner``/``lease_until``) before it calls."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    study_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payload: Mapped[str] = mapped_column(Text)  # the JSON body, as it is sent
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(TS, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)


class SavedView(Base):
    """A reader's own named view of an image (issue 19): the preset version it started from,
    its channel settings (the viewer's ``c=``) and the viewport. Listed for its owner only;
    it never changes a preset."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("owner", "image_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    name: Mapped[str] = mapped_column(String(200))
    view: Mapped[dict[str, Any]] = mapped_column(JSON)  # preset, c, x, y, zoom
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TS, default=utcnow)


class GuidedView(Base):
    """One published version of a guided view (Minerva-Story-like): an ordered list of
    waypoints over a study's images that a sponsor steps through. Versions are never changed;
    revoking one sets ``revoked_at`` (it is then a 404 for sponsors)."""

    __tablename__ = "guided_views"
    __table_args__ = (UniqueConstraint("study_id", "name", "version"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    waypoints: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    published_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(TS, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
