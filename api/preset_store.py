"""Presets in the catalog: named documents with immutable, content-hashed versions.

Scopes: ``image`` (one image), ``panel`` (any image with those markers, bound by marker or
label) and ``study`` (the images of one study). Every image gets a ``default`` preset at
ingest, computed from the stored histograms (no pixel reads).

Who sees a preset (:func:`may_see`) and who may change its visibility is
:mod:`plexhub.policies.presets`; this module applies it with what the caller may see: an image
preset through its image, a study preset through its study, a panel preset through an image
whose channels carry every marker of the panel. Visibility given with a later version of a
preset changes it, audited as ``preset.visibility``.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from cachetools import LRUCache
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit
from plexhub.api.db import next_version, utcnow
from plexhub.api.models import Grant, Image, Preset, PresetVersion, Study
from plexhub.errors import ConflictError, InputError, NotFoundError, PermissionDeniedError
from plexhub.model import Channel
from plexhub.ome_pipeline.confine import read_inside
from plexhub.ome_pipeline.histogram import HISTOGRAMS_FILES, histograms_document
from plexhub.policies.access import Principal, can_see_study, is_staff
from plexhub.policies.presets import (
    DEFAULT_VISIBILITY,
    can_change_visibility,
    can_see_preset,
    sees_every_panel,
)
from plexhub.policies.presets import VISIBILITIES as VISIBILITIES  # the routes check it too
from plexhub.presets import RenderPreset, bind, content_hash, parse_preset

DEFAULT_NAME = "default"


def image_channels(image: Image) -> list[Channel]:
    return [Channel(index=c["index"], label=c["label"], color=c.get("color") or "FFFFFF",
                    marker=c.get("marker")) for c in image.channels or []]


def histograms(image: Image) -> dict[str, Any]:
    """The image's stored per-channel histograms (written by the conversion)."""
    root = image.store_root()
    fs = root.filesystem() if root.remote else None
    for name in HISTOGRAMS_FILES:  # the histograms group, or an older store's file
        try:
            data = bytes(fs[0].cat_file(f"{fs[1]}/{name}")) if fs is not None else \
                read_inside(root.path, name)  # no links out of a local store
            doc = histograms_document(name, json.loads(data))
        except FileNotFoundError:
            continue
        if doc is not None:
            return doc
    return {"channels": []}


def latest_version(session: Session, preset_id: str) -> PresetVersion | None:
    return session.scalar(select(PresetVersion).where(PresetVersion.preset_id == preset_id)
                          .order_by(PresetVersion.version.desc()).limit(1))


def save_version(session: Session, actor: Principal | str, *, name: str, scope: str,
                 target: str, study: Study | None, document: RenderPreset,
                 visibility: str | None = None, is_default: bool = False
                 ) -> tuple[Preset, PresetVersion]:
    """Save ``document`` as the next version of the preset (scope, target, name).

    ``visibility`` None: ``study`` for a new preset, unchanged for a later version. Given for
    a later version, it replaces the preset's visibility (owner or admin only, audited). A
    name taken by a private preset the actor may not see is a conflict, never a new version
    of someone else's preset."""
    owner = actor if isinstance(actor, str) else actor.user
    if visibility is not None and visibility not in VISIBILITIES:
        raise InputError(f"visibility {visibility!r}", "is not private, study or public")
    preset = session.scalar(select(Preset).where(Preset.scope == scope,
                                                 Preset.target == target, Preset.name == name))
    if preset is None:
        preset = Preset(id=uuid.uuid4().hex, name=name, scope=scope, target=target,
                        study_id=study.id if study else None, owner=owner,
                        visibility=visibility or DEFAULT_VISIBILITY,
                        is_default=is_default)
        session.add(preset)
        session.flush()
    else:
        if isinstance(actor, Principal) and not visible_to(preset, actor):
            raise ConflictError(f"preset name {name!r}", "is taken by a preset you cannot see",
                                "choose another name")
        if visibility is not None and visibility != preset.visibility:
            _change_visibility(session, actor, preset, visibility, study)
    number = next_version(session, PresetVersion, PresetVersion.preset_id == preset.id)
    doc = document.model_copy(update={"name": name})
    version = PresetVersion(preset_id=preset.id, version=number,
                            document=doc.model_dump(mode="json", exclude_none=True),
                            content_hash=content_hash(doc), created_by=owner)
    session.add(version)
    audit.record(session, actor, "preset.save", "preset", f"{preset.id}@{number}",
                 study_code=study.code if study else None,
                 after={"name": name, "scope": scope, "target": target,
                        "visibility": preset.visibility,
                        "content_hash": version.content_hash})
    return preset, version


def _change_visibility(session: Session, actor: Principal | str, preset: Preset,
                       visibility: str, study: Study | None) -> None:
    user = actor if isinstance(actor, str) else actor.user
    if isinstance(actor, Principal) and not can_change_visibility(actor, preset.owner):
        raise PermissionDeniedError(user, f"may not change the visibility of preset "
                                    f"{preset.name!r} (owner {preset.owner}) from "
                                    f"{preset.visibility} to {visibility}",
                                    "only its owner or an admin may; save under another name")
    audit.record(session, actor, "preset.visibility", "preset", preset.id,
                 study_code=study.code if study else None,
                 before={"visibility": preset.visibility}, after={"visibility": visibility})
    preset.visibility = visibility


def create_default(session: Session, image: Image) -> None:
    """Image hook: the auto-contrast default preset, saved when an image becomes ready."""
    from plexhub.ome_pipeline.autocontrast import default_view

    study = session.get(Study, image.study_id)
    doc = default_view(image_channels(image), histograms(image), image.dtype or "uint16",
                       name=DEFAULT_NAME)
    save_version(session, "system", name=DEFAULT_NAME, scope="image", target=image.id,
                 study=study, document=doc, is_default=True)


def applies_to(session: Session, preset: Preset, image: Image, study: Study,
               user: Principal) -> bool:
    """Whether ``preset`` is one of ``image``'s presets for ``user`` (who may see the image):
    its own, its study's, or a panel preset (for staff any, for others one that fits it)."""
    if preset.scope == "image":
        return preset.target == image.id
    if preset.scope == "study":
        return preset.target == study.code
    return sees_every_panel(user) or panel_fits(session, preset, image)


def visible_to(preset: Preset, user: Principal) -> bool:
    """The private-preset rule alone: a private preset is its owner's and admins'."""
    return bool(can_see_preset(user, preset.visibility, preset.owner))


def panel_fits(session: Session, preset: Preset, image: Image) -> bool:
    """Every entry of the panel preset's latest version names a channel of ``image``."""
    doc = _latest_document(session, preset)
    return doc is not None and _fits(doc, image)


def _latest_document(session: Session, preset: Preset) -> RenderPreset | None:
    version = latest_version(session, preset.id)
    return document_of(version) if version is not None else None


def _fits(doc: RenderPreset, image: Image) -> bool:
    if doc.index_bound:
        return False
    bound = bind(doc, image_channels(image))
    return sum(c.render is not None for c in bound.channels) == len(doc.channels)


def may_see(session: Session, user: Principal, preset: Preset) -> bool:
    """Whether ``user`` may know that ``preset`` exists (see the module docstring)."""
    if not visible_to(preset, user):
        return False
    if preset.scope == "image":  # a retired image's presets are staff's, as the image is
        image = session.get(Image, preset.target)
        return image is not None and (image.retired_at is None or is_staff(user)) \
            and _sees_study(session, user, image.study_id)
    if preset.scope == "study":
        study = session.scalar(select(Study).where(Study.code == preset.target))
        return study is not None and _sees_study(session, user, study.id)
    if sees_every_panel(user):
        return True
    doc = _latest_document(session, preset)  # through an image the caller may see:
    return doc is not None and any(_fits(doc, image) for image in session.scalars(
        select(Image).where(Image.study_id.in_(_granted_studies(session, user)),
                            Image.retired_at.is_(None))))  # never a retired one


def _sees_study(session: Session, user: Principal, study_id: int) -> bool:
    from plexhub.api.deps import grants_of

    return bool(can_see_study(user, grants_of(session, study_id), utcnow()))


def _granted_studies(session: Session, user: Principal) -> list[int]:
    """The studies a non-staff caller may see: those with an active grant to it."""
    ids = set(session.scalars(select(Grant.study_id).where(
        Grant.principal.in_(sorted(user.names)))))
    return [i for i in sorted(ids) if _sees_study(session, user, i)]


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``id`` (latest version) or ``id@version``."""
    pid, _, ver = ref.partition("@")
    if not pid or (ver and not ver.isdigit()):
        raise InputError(f"preset {ref!r}", "is not a preset reference",
                         "use <preset id> or <preset id>@<version>")
    return pid, int(ver) if ver else None


def resolve(session: Session, user: Principal, image: Image, study: Study,
            ref: str | None) -> tuple[PresetVersion | None, RenderPreset]:
    """The preset version a request names (or the image's default) and its document."""
    if ref is None:
        preset = session.scalar(select(Preset).where(Preset.scope == "image",
                                                     Preset.target == image.id,
                                                     Preset.is_default.is_(True)))
        if preset is None:
            from plexhub.ome_pipeline.autocontrast import default_view

            return None, default_view(image_channels(image), histograms(image),
                                      image.dtype or "uint16", name=DEFAULT_NAME)
        version = latest_version(session, preset.id)
        assert version is not None
        return version, document_of(version)
    pid, number = parse_ref(ref)
    preset = session.get(Preset, pid)
    if preset is None or not visible_to(preset, user) \
            or not applies_to(session, preset, image, study, user):
        raise NotFoundError(f"preset {ref}", "not found for this image")
    if number is None:
        version = latest_version(session, preset.id)
    else:
        version = session.scalar(select(PresetVersion).where(
            PresetVersion.preset_id == preset.id, PresetVersion.version == number))
    if version is None:
        raise NotFoundError(f"preset {ref}", "has no such version")
    return version, document_of(version)


# Versions are immutable: their parsed documents (and stored content hashes) are kept, so a
# tile request neither re-validates the document nor re-hashes it for its ETag.
PARSED_MAX = 1024
_DIGESTS: dict[int, tuple[RenderPreset, str]] = {}


class _Parsed(LRUCache[tuple[str, int], RenderPreset]):
    """The parsed documents, least recently used dropped first, with their digests."""

    def popitem(self) -> tuple[tuple[str, int], RenderPreset]:
        key, old = super().popitem()
        _DIGESTS.pop(id(old), None)
        return key, old


_PARSED = _Parsed(PARSED_MAX)
_PARSED_LOCK = threading.Lock()  # cachetools is not thread-safe


def document_of(version: PresetVersion) -> RenderPreset:
    key = (version.preset_id, version.version)
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
    if hit is not None:
        return hit
    preset = parse_preset(version.document)
    with _PARSED_LOCK:
        first = _PARSED.get(key)  # another thread parsed it meanwhile: keep one
        if first is not None:
            return first
        _PARSED[key] = preset
        _DIGESTS[id(preset)] = (preset, version.content_hash)
    return preset


def digest(preset: RenderPreset) -> str:
    """The content hash of ``preset``: the stored one for a cached version, else computed."""
    hit = _DIGESTS.get(id(preset))
    if hit is not None and hit[0] is preset:
        return hit[1]
    return content_hash(preset)
