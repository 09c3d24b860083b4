"""Request and response bodies (XCreate / XPublic)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from plexhub.api.models import JobState
from plexhub.policies.access import CAPABILITIES, DEFAULT_CAPABILITIES


def _utc(v: datetime) -> datetime:
    """Naive datetimes (SQLite, clients) are UTC; everything leaves as aware UTC."""
    try:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:00-14:00 is past year 9999 in UTC
        raise ValueError(f"{v.isoformat()} is out of range in UTC") from exc


UtcDateTime = Annotated[datetime, AfterValidator(_utc)]

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}$")


def _bad_text(value: Any) -> str | None:
    """What makes a string anywhere in ``value`` (nested lists and dicts, keys included)
    unusable as text: a NUL character (PostgreSQL refuses it in any text value, the
    filesystem ends a name at it) or a lone surrogate (not encodable as UTF-8); None if
    there is none."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "must not contain a NUL character (\\u0000)"
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return "must be valid Unicode text (it holds a lone surrogate)"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return None


class Strict(BaseModel):
    """Request bodies: unknown fields are refused, and so is text no catalog column or file
    name can hold (see :func:`_bad_text`), in every field at any depth."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _usable_text(cls, value: Any) -> Any:
        problem = _bad_text(value)
        if problem is not None:
            raise PydanticCustomError("text", problem)
        return value



CREDENTIAL_HELP = ("your password (a local user) or, without one, your own API token, "
                   "typed in again, or the one-time credential of a fresh login at the "
                   "identity provider (GET /api/v1/signatures/oidc/start)")


class SignedChange(Strict):
    """A change that takes a reason (required where the study's profile says: GLP) and,
    where the profile asks for a signature, the signer's re-authentication."""
    reason: str = Field(default="", max_length=2000,
                        description="the reason for the change (required by GLP)")
    credential: str | None = Field(
        default=None, max_length=1000,
        description="the electronic signature's re-authentication, where the profile asks "
        f"for one: {CREDENTIAL_HELP}")

class TokenCreate(Strict):
    user: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "scientist", "analyst", "sponsor"]
    groups: list[str] = Field(default_factory=list, max_length=100)
    expires_at: UtcDateTime | None = Field(
        default=None, description="when the token stops working (UTC when no offset is "
        "given); never, or after PLEXHUB_TOKEN_MAX_DAYS when that is set, if absent")

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("user names use letters, digits and . _ @ -")
        return v

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        for g in v:
            if not _NAME.match(g):
                raise ValueError(f"group {g!r}: use letters, digits and . _ @ -")
        return v


class TokenPublic(BaseModel):
    """The creation answer: the only time the secret is shown."""

    id: str
    token: str
    user: str
    role: str
    groups: list[str]
    created_at: UtcDateTime
    expires_at: UtcDateTime | None


class TokenRecordPublic(BaseModel):
    """A token as listed: everything but its secret."""

    id: str
    user: str
    role: str
    groups: list[str]
    created_by: str
    created_at: UtcDateTime
    expires_at: UtcDateTime | None
    revoked_at: UtcDateTime | None
    last_used_at: UtcDateTime | None = Field(
        description="last use, to about a minute; null when never used")
    active: bool = Field(description="neither revoked nor expired")


class StudyCreate(Strict):
    code: str
    title: str = Field(min_length=1, max_length=500)
    sponsor: str = Field(min_length=1, max_length=200)
    profile: str = Field(default="non-glp", pattern=r"^[a-z][a-z0-9-]{0,19}$",
                         description="a compliance profile: glp, non-glp or one of the "
                         "installation's own (plexhub profiles)")

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not _CODE.match(v):
            raise ValueError("study codes use letters, digits, '.', '_' and '-' (max 64)")
        return v


class StudyPublic(BaseModel):
    code: str
    title: str
    sponsor: str
    profile: str
    state: str
    created_at: UtcDateTime
    internal_fields: list[str] | None = Field(
        default=None, description="image metadata keys sponsors never see (staff only)")


_FIELD = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class StudyUpdate(Strict):
    title: str | None = Field(default=None, min_length=1, max_length=500)
    internal_fields: list[str] | None = Field(
        default=None, max_length=200,
        description="image metadata keys that only staff see; sponsors get them removed")
    reason: str = Field(default="", max_length=2000)

    @field_validator("internal_fields")
    @classmethod
    def _fields(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        bad = [f for f in v if not _FIELD.match(f)]
        if bad:
            raise ValueError(f"metadata keys use letters, digits and . _ -: {bad[:5]}")
        return sorted(set(v))


class GrantCreate(Strict):
    principal: str = Field(pattern=r"^(user|group):[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}$")
    capabilities: list[str] = Field(default_factory=lambda: list(DEFAULT_CAPABILITIES),
                                    min_length=1)
    expires_at: UtcDateTime | None = None
    reason: str = Field(default="", max_length=2000)

    @field_validator("capabilities")
    @classmethod
    def _caps(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in CAPABILITIES]
        if bad:
            raise ValueError(f"unknown capabilities {bad}; choose from {list(CAPABILITIES)}")
        return sorted(set(v))


class GrantPublic(BaseModel):
    id: str
    study: str
    principal: str
    capabilities: list[str]
    expires_at: UtcDateTime | None
    revoked_at: UtcDateTime | None
    granted_by: str
    reason: str


class IdPublic(BaseModel):
    id: str


class LimsMetadata(Strict):
    """Study metadata from a LIMS, stored on the image."""

    animal_id: str | None = Field(default=None, max_length=200)
    tissue: str | None = Field(default=None, max_length=200)
    dose_group: str | None = Field(default=None, max_length=200)
    stain_panel: dict[str, str] | None = Field(
        default=None, description="channel name as the file names it -> marker")
    slide_id: str | None = Field(default=None, max_length=200)
    study_day: int | None = Field(default=None, ge=-10_000, le=100_000,
                                  description="day of the study the tissue was taken")
    notes: str | None = Field(default=None, max_length=5000)

    @field_validator("stain_panel")
    @classmethod
    def _panel(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is not None:
            for k, m in v.items():
                if not k.strip() or not m.strip() or len(k) > 200 or len(m) > 200:
                    raise ValueError("stain panel entries map a channel name to a marker")
        return v


class IngestRequest(Strict):
    source: str = Field(min_length=1, max_length=4000)
    metadata: LimsMetadata = Field(default_factory=LimsMetadata)
    ngff_version: Literal["0.4", "0.5"] | None = None


class BatchRequest(Strict):
    folder: str | None = None
    manifest: str | None = None
    items: list[IngestRequest] | None = None


class IngestAccepted(BaseModel):
    job_id: str
    image_id: str
    image_ids: list[str]
    existing: bool = False


class JobPublic(BaseModel):
    id: str
    state: JobState
    progress: float
    error: str | None
    study: str
    source: str
    image_ids: list[str]
    created_at: UtcDateTime
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None


class ChannelPublic(BaseModel):
    index: int
    label: str
    marker: str | None
    color: str


class ImagePublic(BaseModel):
    id: str
    study: str
    name: str
    status: str
    source_format: str | None
    ngff_version: str | None
    axes: str | None
    levels: list[list[int]]
    dtype: str | None
    physical_sizes: dict[str, Any]
    channels: list[ChannelPublic]
    metadata: dict[str, Any]
    checksum: str | None
    tier: str
    review_state: str | None = Field(
        default=None, description="the slide's peer-review state: not_reviewed, "
        "primary_done, peer_reviewed or signed_off (null for a sponsor without "
        "view_findings)")
    retired_at: UtcDateTime | None = Field(
        default=None, description="when the image was retired (staff only see retired "
        "images: `?include_retired=true`)")
    purged_at: UtcDateTime | None = Field(
        default=None, description="when its store was purged after the retention period")


class AuditPublic(BaseModel):
    seq: int
    ts: UtcDateTime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    study: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str
    role: str | None = Field(default=None, description="the actor's role; system: the service")
    request_id: str | None = Field(default=None, description="the request that made it")
    client: str | None = Field(default=None, description="the client's address")
    prev_hash: str | None = Field(default=None, description="hash of the previous event")
    study_prev_hash: str | None = Field(
        default=None, description="hash of the study's previous event")
    hash: str | None = Field(default=None, description="SHA-256 of this event (the chain)")


# --------------------------------------------------------------------------- presets

PresetFormat = Literal["ngff-omero", "omero-query", "omero-yaml", "napari"]


class PresetSaved(BaseModel):
    id: str
    version: int
    content_hash: str
    warnings: list[str] = Field(default_factory=list)


class PresetSummary(BaseModel):
    id: str
    name: str
    scope: str
    target: str
    owner: str
    visibility: str
    is_default: bool
    latest_version: int


class PresetDocument(BaseModel):
    id: str
    name: str
    version: int
    content_hash: str
    created_by: str
    document: dict[str, Any]
    warnings: list[str] = Field(default_factory=list)


class SharedPresetCreate(Strict):
    scope: Literal["panel", "study"]
    target: str = Field(min_length=1, max_length=200,
                        description="panel name, or the study code for study presets")
    visibility: Literal["private", "study", "public"] | None = Field(
        default=None, description="who may see it; default study for a new preset, unchanged "
        "for a later version (changing it: its owner or an admin)")
    document: dict[str, Any]


class ApplyRequest(Strict):
    preset: str | None = Field(default=None, description="<id> or <id>@<version>")
    document: dict[str, Any] | None = None


class ImportRequest(Strict):
    format: PresetFormat
    content: Any = Field(description="text (omero-query, omero-yaml) or JSON (others)")
    name: str = Field(min_length=1, max_length=200)
    save: bool = False


# ------------------------------------------------------------------------- notebooks

class SignaturePublic(BaseModel):
    """A signature as API responses show it on the signed object."""

    id: str
    signer: str
    role: str
    meaning: str
    action: str
    signed_at: UtcDateTime
    entity_type: str
    entity_id: str
    method: str = Field(description="how the signer re-authenticated: password, token or "
                        "oidc (a fresh login at the identity provider)")
    content_hash: str = Field(description="SHA-256 of the canonical JSON of what was signed")
    hash: str = Field(description="SHA-256 of this signature's record")
    valid: bool = Field(description="the record and its content still match their hashes")



class NotebookPublish(Strict):
    name: str = Field(min_length=1, max_length=200)
    notebook: dict[str, Any] = Field(description="the .ipynb document (nbformat 4)")
    execute: bool = Field(default=False, description="run it first (python3 kernel, in a "
                          "sandbox as an unprivileged user; 422 where the server cannot)")
    reason: str = Field(default="", max_length=2000)
    credential: str | None = Field(
        default=None, max_length=1000,
        description="the electronic signature's re-authentication where the study's profile "
        "asks for one (GLP): your password, or without one your own API token")


class NotebookPublished(BaseModel):
    id: str
    name: str
    version: int
    content_hash: str
    signatures: list[SignaturePublic] = Field(
        default_factory=list, description="the publication's electronic signature, if signed")


class NotebookVersion(BaseModel):
    id: str
    version: int
    content_hash: str
    published_by: str
    created_at: UtcDateTime


class NotebookSummary(BaseModel):
    name: str
    latest: NotebookVersion
    versions: list[NotebookVersion]


class NotebookPublic(BaseModel):
    id: str
    study: str
    name: str
    version: int
    content_hash: str
    published_by: str
    created_at: UtcDateTime
    ipynb: dict[str, Any]
