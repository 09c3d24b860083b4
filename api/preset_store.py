"""Presets in the catalog: named documents with immutable, content-hashed versions.

Scopes: ``image`` (one image), ``panel`` (any image with those markers, bound by marker or
label) and ``study`` (the images of one study). Every image gets a ``default`` preset at
ingest, computed from the stored histograms (no pixel reads).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plexhub.api import audit
from plexhub.api.models import Image, Preset, PresetVersion, Study
from plexhub.errors import InputError, NotFoundError
from plexhub.model import Channel
from plexhub.ome_pipeline.confine import read_inside
from plexhub.policies.access import Principal
from plexhub.presets import RenderPreset, content_hash, parse_preset

DEFAULT_NAME = "default"


def image_channels(image: Image) -> list[Channel]:
    return [Channel(index=c["index"], label=c["label"], color=c.get("color") or "FFFFFF",
                    marker=c.get("marker")) for c in image.channels or []]


def histograms(image: Image) -> dict[str, Any]:
    """The image's stored per-channel histograms (written by the conversion)."""
    if not image.store_uri:
        raise NotFoundError(f"image {image.id}", "has no converted store yet")
    root = Path(image.store_uri) / image.store_key if image.store_key else Path(image.store_uri)
    try:
        return dict(json.loads(read_inside(root, "histograms.json")))  # never via a link out
    except FileNotFoundError:
        return {"channels": []}


def latest_version(session: Session, preset_id: str) -> PresetVersion | None:
    return session.scalar(select(PresetVersion).where(PresetVersion.preset_id == preset_id)
                          .order_by(PresetVersion.version.desc()).limit(1))


def save_version(session: Session, actor: Principal | str, *, name: str, scope: str,
                 target: str, study: Study | None, document: RenderPreset,
                 visibility: str = "study", is_default: bool = False) -> tuple[Preset,
                                                                              PresetVersion]:
    """Save ``document`` as the next version of the preset (scope, target, name)."""
    owner = actor if isinstance(actor, str) else actor.user
    preset = session.scalar(select(Preset).where(Preset.scope == scope,
                                                 Preset.target == target, Preset.name == name))
    if preset is None:
        preset = Preset(id=uuid.uuid4().hex, name=name, scope=scope, target=target,
                        study_id=study.id if study else None, owner=owner,
                        visibility=visibility, is_default=is_default)
        session.add(preset)
        session.flush()
    number = (session.scalar(select(func.max(PresetVersion.version))
                             .where(PresetVersion.preset_id == preset.id)) or 0) + 1
    doc = document.model_copy(update={"name": name})
    version = PresetVersion(preset_id=preset.id, version=number,
                            document=doc.model_dump(mode="json", exclude_none=True),
                            content_hash=content_hash(doc), created_by=owner)
    session.add(version)
    audit.record(session, actor, "preset.save", "preset", f"{preset.id}@{number}",
                 study_code=study.code if study else None,
                 after={"name": name, "scope": scope, "target": target,
                        "content_hash": version.content_hash})
    return preset, version


def create_default(session: Session, image: Image) -> None:
    """Image hook: the auto-contrast default preset, saved when an image becomes ready."""
    from plexhub.ome_pipeline.autocontrast import default_preset

    study = session.get(Study, image.study_id)
    doc = default_preset(image_channels(image), histograms(image), image.dtype or "uint16",
                         name=DEFAULT_NAME)
    save_version(session, "system", name=DEFAULT_NAME, scope="image", target=image.id,
                 study=study, document=doc, is_default=True)


def applies_to(preset: Preset, image: Image, study: Study) -> bool:
    if preset.scope == "image":
        return preset.target == image.id
    if preset.scope == "study":
        return preset.target == study.code
    return True  # panel presets apply to any image; bind() checks the markers


def visible_to(preset: Preset, user: Principal) -> bool:
    return preset.visibility != "private" or preset.owner == user.user or user.role == "admin"


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
            from plexhub.ome_pipeline.autocontrast import default_preset

            return None, default_preset(image_channels(image), histograms(image),
                                        image.dtype or "uint16", name=DEFAULT_NAME)
        version = latest_version(session, preset.id)
        assert version is not None
        return version, document_of(version)
    pid, number = parse_ref(ref)
    preset = session.get(Preset, pid)
    if preset is None or not applies_to(preset, image, study) or not visible_to(preset, user):
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
_PARSED: OrderedDict[tuple[str, int], RenderPreset] = OrderedDict()
_DIGESTS: dict[int, tuple[RenderPreset, str]] = {}
_PARSED_LOCK = threading.Lock()
PARSED_MAX = 1024


def document_of(version: PresetVersion) -> RenderPreset:
    key = (version.preset_id, version.version)
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
        if hit is not None:
            _PARSED.move_to_end(key)
            return hit
    preset = parse_preset(version.document)
    with _PARSED_LOCK:
        _PARSED[key] = preset
        _DIGESTS[id(preset)] = (preset, version.content_hash)
        while len(_PARSED) > PARSED_MAX:
            _, old = _PARSED.popitem(last=False)
            _DIGESTS.pop(id(old), None)
    return preset


def digest(preset: RenderPreset) -> str:
    """The content hash of ``preset``: the stored one for a cached version, else computed."""
    hit = _DIGESTS.get(id(preset))
    if hit is not None and hit[0] is preset:
        return hit[1]
    return content_hash(preset)
