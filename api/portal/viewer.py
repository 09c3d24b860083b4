"""What the viewer page needs to know, computed on the server: the image's geometry for
OpenSeadragon, the preset it opens with (pinned to a version, so its tiles cache forever),
that preset's channels bound to the image for the legend, the preset picker's entries, the
scale (µm per level-0 pixel) and the next slide (for prefetching its first tiles).

A sponsor's changes to channels are made in the page and kept in its URL (``c=``, see
``static/viewer.js``); they reach the tile routes as an inline ``spec=``. Nothing here
writes: the CRO's presets never change from the viewer (a reader's saved view is its own
row, ``api/routes/viewing.py``; only staff's explicit "save as preset" saves one).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from plexhub.api import peerreview, preset_store
from plexhub.api.models import AuditEvent, Image, Preset, Study
from plexhub.api.tiles import level_shape
from plexhub.errors import PlexhubError
from plexhub.ome_pipeline.metadata import micrometers_per
from plexhub.policies.access import Principal
from plexhub.policies.review import SLIDE_STATES
from plexhub.presets import RenderPreset, bind

TILE = 512
APPROVE = "preset.approve"  # the audit action that makes a preset version the reference
# metadata shown above the image, in this order (keys of the image's LIMS metadata)
FACTS = (("animal_id", "Animal"), ("dose_group", "Dose group"), ("tissue", "Tissue"),
         ("stain_panel", "Stain panel"), ("study_day", "Study day"))
# slide-list filters (query parameter = metadata key; review_state: staff only, see
# :func:`review_states`)
FILTERS = (("animal_id", "Animal"), ("dose_group", "Dose group"), ("tissue", "Tissue"),
           ("review_state", "Review state"))
# a slide's first review state, as the peer review's rules name them (policies/review.py)
NOT_REVIEWED = SLIDE_STATES[0]


@dataclass
class PickerEntry:
    ref: str  # <id>@<version>
    label: str  # what the user reads: name · v2 · author · reference


@dataclass
class Geometry:
    """What OpenSeadragon needs to address the tile route without a DeepZoom document."""

    width: int
    height: int
    levels: int  # our pyramid levels; DeepZoom level L is our level (top - L)
    top: int  # DeepZoom's top level, ceil(log2(longest side))
    tile: int = TILE

    def closest_level(self) -> int:
        """Our level that OpenSeadragon draws first and never goes below in the main view
        (its ``TileSource.getClosestLevel``: the largest level that is one tile), the one
        the page preloads."""
        level = self.levels - 1
        while level > 0 and max(self.width, self.height) / 2 ** (level - 1) <= self.tile:
            level -= 1
        return max(level, 0)

    def first_tiles(self) -> list[tuple[int, int, int]]:
        """(level, row, col) of the tiles the viewer asks for first: the main view's
        first level (:meth:`closest_level`), then the overview map's (the smallest)."""
        if self.levels < 1:
            return []
        out = [(self.closest_level(), 0, 0)]
        if self.levels - 1 != out[0][0]:
            out.append((self.levels - 1, 0, 0))
        return out


@dataclass
class ViewerModel:
    geometry: Geometry
    preset_ref: str  # the version the page opens with ("" when the image has no preset)
    preset_name: str
    channels: list[dict[str, Any]]  # the bound preset, one entry per image channel
    um_per_pixel: float | None
    picker: list[PickerEntry] = field(default_factory=list)

    doc: RenderPreset | None = field(default=None, repr=False)  # the preset_ref's document

    def first_tiles(self, base: str, image_id: str) -> list[str]:
        """The tiles the viewer draws first (:meth:`Geometry.first_tiles`), as the page's
        script will ask for them: the page preloads them while the scripts load."""
        g = self.geometry
        if not self.preset_ref:
            return []
        return [f"{base}/api/v1/images/{image_id}/tiles/{level}/{row}/{col}.jpg?size={g.tile}"
                f"&preset={quote(self.preset_ref, safe='')}"
                for level, row, col in g.first_tiles()]

    def json(self) -> str:
        """For the page's ``<script type="application/json">`` (never executed)."""
        doc = asdict(self)
        doc.pop("picker")
        doc.pop("doc")
        return json.dumps(doc, separators=(",", ":")).replace("<", "\\u003c")


def geometry(image: Image) -> Geometry:
    shape = level_shape(image, 0)
    h, w = int(shape[-2]), int(shape[-1])
    return Geometry(width=w, height=h, levels=len(image.levels or []),
                    top=(max(w, h, 1) - 1).bit_length())


def um_per_pixel(image: Image) -> float | None:
    x = (image.physical_sizes or {}).get("x")
    if not isinstance(x, dict) or not isinstance(x.get("value"), int | float):
        return None
    factor = micrometers_per(str(x.get("unit") or "micrometer"))
    return float(x["value"]) * factor if factor and x["value"] > 0 else None


def _channels(image: Image, doc: Any) -> list[dict[str, Any]]:
    """One legend entry per image channel: name, marker, colour, window, range, gamma."""
    bound = bind(doc, preset_store.image_channels(image))
    out = []
    for ch, meta in zip(bound.channels, image.channels or [], strict=False):
        r = ch.render
        entry: dict[str, Any] = {"index": ch.index, "label": meta.get("label") or "",
                                 "marker": meta.get("marker") or "",
                                 "color": (meta.get("color") or "FFFFFF").upper(),
                                 "active": False, "start": 0.0, "end": 1.0, "gamma": 1.0,
                                 "min": 0.0, "max": 1.0, "lut": None, "inverted": False}
        if r is not None:
            lo = r.window.min if r.window.min is not None else \
                (r.domain.min if r.domain else min(0.0, r.window.start))
            hi = r.window.max if r.window.max is not None else \
                (r.domain.max if r.domain else r.window.end)
            entry.update(active=r.active, start=r.window.start, end=r.window.end,
                         gamma=r.gamma, min=min(lo, r.window.start),
                         max=max(hi, r.window.end), inverted=r.inverted, lut=r.lut,
                         color=(r.color or entry["color"]).upper())
        out.append(entry)
    return out


def picker(session: Session, user: Principal, image: Image, study: Study,
           pinned: str) -> list[PickerEntry]:
    """The image's presets as people recognise them: name, version, author, and
    "reference" for a version approved as the study's reference; the pinned version is
    listed even when it is not the latest."""
    rows = session.scalars(select(Preset).where(or_(
        (Preset.scope == "image") & (Preset.target == image.id),
        (Preset.scope == "study") & (Preset.target == study.code),
        Preset.scope == "panel")).order_by(Preset.is_default.desc(), Preset.name)).all()
    rows = [p for p in rows if preset_store.visible_to(p, user)
            and preset_store.applies_to(session, p, image, study, user)]
    approved = set(session.scalars(select(AuditEvent.entity_id).where(
        AuditEvent.action == APPROVE, AuditEvent.entity_type == "preset")))
    entries = []
    versions = {p.id: preset_store.latest_version(session, p.id) for p in rows}
    wanted_id, _, wanted_v = pinned.partition("@")
    for p in rows:
        latest = versions[p.id]
        if latest is None:
            continue
        numbers = [latest.version]
        if p.id == wanted_id and wanted_v.isdigit() and int(wanted_v) != latest.version:
            numbers.append(int(wanted_v))
        for number in numbers:
            ref = f"{p.id}@{number}"
            author = latest.created_by if number == latest.version else ""
            parts = [("image default" if p.is_default else p.name), f"v{number}"]
            if author:
                parts.append("auto" if author == "system" else author)
            if p.scope != "image":
                parts.append(f"{p.scope} preset")
            if number != latest.version:
                parts.append("older version")
            if ref in approved or p.id in approved:
                parts.append("reference")
            entries.append(PickerEntry(ref, " · ".join(parts)))
    return entries


def viewer_model(session: Session, user: Principal, image: Image, study: Study,
                 ref: str | None) -> ViewerModel:
    """The page's model; ``ref`` the preset version of a share URL (None: the default)."""
    try:
        version, doc = preset_store.resolve(session, user, image, study, ref)
    except PlexhubError:  # an unknown or foreign preset in a URL: open with the default
        version, doc = preset_store.resolve(session, user, image, study, None)
    pinned = f"{version.preset_id}@{version.version}" if version is not None else ""
    return ViewerModel(geometry=geometry(image), preset_ref=pinned, preset_name=doc.name,
                       channels=_channels(image, doc), um_per_pixel=um_per_pixel(image),
                       picker=picker(session, user, image, study, pinned), doc=doc)


def default_ref(session: Session, image: Image) -> str:
    """The image's default preset version (what its page opens with), or ""."""
    preset = session.scalar(select(Preset).where(
        Preset.scope == "image", Preset.target == image.id, Preset.is_default.is_(True)))
    latest = preset_store.latest_version(session, preset.id) if preset is not None else None
    return f"{preset.id}@{latest.version}" if preset is not None and latest else ""


def facts(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) of the metadata shown above the image, those present only."""
    out = []
    for key, label in FACTS:
        value = metadata.get(key)
        if value in (None, "", {}):
            continue
        if isinstance(value, dict):  # the stain panel: channel -> marker
            value = ", ".join(str(m) for m in value.values())
        out.append((label, str(value)))
    return out


def review_states(session: Session, study: Study) -> dict[str, str]:
    """Each slide's review state (one of ``policies.review.SLIDE_STATES``), as the peer review
    records it (``plexhub.api.peerreview``: the same value as the image list's
    ``review_state``)."""
    return dict(peerreview.slide_states(session, study.id))
