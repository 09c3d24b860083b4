"""The channel panel's state and every edit a user can make to it, in pure Python.

:class:`PanelState` holds one row per image channel (the render settings of the current
preset) and implements what the viewer's panel offers: search by substring or regular
expression, select all/none of the matches, solo, groups toggled as one, colour, window,
gamma, invert, auto-contrast from the stored histograms, a lock against stray edits, undo,
and a dirty marker against the preset last applied or saved. The widget only forwards UI
events here, so all of this is tested without a browser.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from plexhub.colors import parse_color
from plexhub.errors import InputError
from plexhub.model import Channel
from plexhub.ome_pipeline.autocontrast import Method, auto_window
from plexhub.presets import (
    ChannelRender,
    Provenance,
    RenderPreset,
    bind,
    content_hash,
)

Row = dict[str, Any]
UNDO_DEPTH = 200


class LockedError(InputError):
    """An edit arrived while the panel is locked."""


def _row(ch: Channel, entry: ChannelRender | None) -> Row:
    if entry is None:
        return {"index": ch.index, "label": ch.label, "marker": ch.marker, "active": False,
                "color": ch.color, "lut": None, "start": 0.0, "end": 1.0, "min": None,
                "max": None, "gamma": 1.0, "inverted": False, "group": None}
    w = entry.window
    return {"index": ch.index, "label": ch.label, "marker": ch.marker,
            "active": entry.active, "color": entry.color, "lut": entry.lut,
            "start": w.start, "end": w.end,
            "min": w.min if w.min is not None else (entry.domain.min if entry.domain else None),
            "max": w.max if w.max is not None else (entry.domain.max if entry.domain else None),
            "gamma": entry.gamma, "inverted": entry.inverted, "group": entry.group}


class PanelState:
    """Render settings per channel plus the panel's edit operations.

    ``on_change`` is called after every successful edit (the widget pushes the rows to the
    browser and re-renders). Indices are image channel indices.
    """

    def __init__(self, channels: Sequence[Channel], preset: RenderPreset,
                 histograms: Sequence[Mapping[str, Any]] = (),
                 on_change: Callable[[], None] | None = None) -> None:
        self.channels = list(channels)
        self.histograms = {int(h.get("index", i)): h for i, h in enumerate(histograms)}
        self.on_change: Callable[[], None] | None = None
        self.locked = False
        self.name = preset.name
        self.provenance: Provenance | None = preset.provenance
        self.model = preset.model
        self.rows: list[Row] = []
        self._undo: list[list[Row]] = []
        self._baseline = ""
        self.apply(preset, record=False)
        self.mark_clean()
        self.on_change = on_change

    # -- presets --------------------------------------------------------------------------

    def apply(self, preset: RenderPreset, *, record: bool = True) -> list[str]:
        """Take every channel's settings from ``preset`` (bound by marker, label or index);
        channels the preset does not name are switched off. Returns the binding warnings."""
        self._guard()
        bound = bind(preset, self.channels)
        by_index = {b.index: b.render for b in bound.channels}
        if record:
            self._push()
        self.rows = [_row(ch, by_index.get(ch.index)) for ch in self.channels]
        self.name, self.model, self.provenance = preset.name, preset.model, preset.provenance
        self._notify()
        return list(bound.warnings)

    def to_preset(self, name: str | None = None) -> RenderPreset:
        """The current settings as a preset document (channels by index, label and marker)."""
        entries = []
        for r in self.rows:
            window: dict[str, float] = {"start": r["start"], "end": r["end"]}
            if r["min"] is not None and r["max"] is not None and r["min"] <= r["start"] \
                    and r["end"] <= r["max"]:
                window |= {"min": r["min"], "max": r["max"]}
            entry: dict[str, Any] = {"index": r["index"], "label": r["label"],
                                     "active": r["active"], "window": window,
                                     "gamma": r["gamma"], "inverted": r["inverted"]}
            entry |= {"lut": r["lut"]} if r["lut"] else {"color": r["color"]}
            for key in ("marker", "group"):
                if r[key]:
                    entry[key] = r[key]
            entries.append(ChannelRender.model_validate(entry))
        return RenderPreset(name=self.name if name is None else name, model=self.model,
                            channels=entries, provenance=self.provenance)

    @property
    def dirty(self) -> bool:
        """True when the settings differ from the preset last applied or saved."""
        return self._hash() != self._baseline

    def mark_clean(self) -> None:
        self._baseline = self._hash()

    def _hash(self) -> str:
        return content_hash(self.to_preset(name=""))

    # -- search and selection -------------------------------------------------------------

    def search(self, query: str = "", regex: bool = False) -> list[int]:
        """Indices of channels whose label or marker matches (case-insensitive)."""
        if not query:
            return [r["index"] for r in self.rows]
        if regex:
            try:
                pattern = re.compile(query, re.IGNORECASE)
            except re.error as exc:
                raise InputError(f"search {query!r}", f"is not a valid regular expression "
                                 f"({exc})", "escape special characters or untick regex") \
                    from None
            test: Callable[[str], bool] = lambda s: pattern.search(s) is not None  # noqa: E731
        else:
            q = query.lower()
            test = lambda s: q in s.lower()  # noqa: E731
        return [r["index"] for r in self.rows
                if test(r["label"] or "") or test(r["marker"] or "")]

    def set_active(self, indices: Iterable[int], active: bool) -> None:
        self._edit([(i, {"active": active}) for i in indices])

    def select_all(self, query: str = "", regex: bool = False) -> None:
        """Switch on every channel matching the search (all with no query)."""
        self.set_active(self.search(query, regex), True)

    def select_none(self, query: str = "", regex: bool = False) -> None:
        self.set_active(self.search(query, regex), False)

    def solo(self, index: int) -> None:
        """Only ``index`` stays on."""
        self._row(index)
        self._edit([(r["index"], {"active": r["index"] == index}) for r in self.rows])

    def groups(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for r in self.rows:
            if r["group"]:
                out.setdefault(r["group"], []).append(r["index"])
        return out

    def set_group(self, indices: Iterable[int], group: str | None) -> None:
        self._edit([(i, {"group": group or None}) for i in indices])

    def toggle_group(self, group: str) -> None:
        """Switch a group on as one (all of it) unless all of it is on, then off."""
        members = self.groups().get(group)
        if not members:
            raise InputError(f"group {group!r}", "has no channels",
                             f"groups: {', '.join(self.groups()) or 'none'}")
        on = not all(self._row(i)["active"] for i in members)
        self.set_active(members, on)

    # -- per-channel settings -------------------------------------------------------------

    def set_color(self, index: int, color: str) -> None:
        try:
            hexcolor = parse_color(color)
        except ValueError as exc:
            raise InputError(f"colour of {self._name(index)}", str(exc)) from None
        self._edit([(index, {"color": hexcolor, "lut": None})])

    def set_window(self, index: int, start: float, end: float) -> None:
        start, end = float(start), float(end)
        if not end > start:
            raise InputError(f"window {start}..{end} of {self._name(index)}",
                             "needs end > start", "widen the window")
        self._edit([(index, {"start": start, "end": end})])

    def set_gamma(self, index: int, gamma: float) -> None:
        if not float(gamma) > 0:
            raise InputError(f"gamma {gamma} of {self._name(index)}", "must be above 0")
        self._edit([(index, {"gamma": float(gamma)})])

    def set_inverted(self, index: int, inverted: bool) -> None:
        self._edit([(index, {"inverted": bool(inverted)})])

    def auto(self, indices: Iterable[int] | None = None, method: Method = "percentile",
             lower: float = 0.1, upper: float = 99.9) -> None:
        """Windows from the stored histograms for ``indices`` (all channels for None)."""
        targets = [r["index"] for r in self.rows] if indices is None else list(indices)
        edits = []
        for i in targets:
            stored = self.histograms.get(i)
            if stored is None or not stored.get("count"):
                continue
            start, end = auto_window(stored, method, lower, upper)
            edits.append((i, {"start": start, "end": end}))
        self._edit(edits)
        self.provenance = Provenance(
            method=method, lower=lower if method == "percentile" else None,
            upper=upper if method == "percentile" else None,
            source="stored histograms (viewer auto-contrast)")

    # -- lock and undo --------------------------------------------------------------------

    def lock(self, locked: bool = True) -> None:
        self.locked = bool(locked)
        self._notify()

    def undo(self) -> bool:
        """Back to the state before the last edit; False when there is nothing to undo."""
        self._guard()
        if not self._undo:
            return False
        self.rows = self._undo.pop()
        self._notify()
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    # -- internals ------------------------------------------------------------------------

    def _row(self, index: int) -> Row:
        for r in self.rows:
            if r["index"] == index:
                return r
        raise InputError(f"channel {index}", f"is not a channel of this image "
                         f"(0..{len(self.rows) - 1})")

    def _name(self, index: int) -> str:
        r = self._row(index)
        return f"channel {index} ({r['marker'] or r['label']})"

    def _guard(self) -> None:
        if self.locked:
            raise LockedError("the channel panel", "is locked", "unlock it to edit")

    def _push(self) -> None:
        self._undo.append(copy.deepcopy(self.rows))
        del self._undo[:-UNDO_DEPTH]

    def _edit(self, edits: Sequence[tuple[int, dict[str, Any]]]) -> None:
        self._guard()
        for i, _ in edits:
            self._row(i)
        changes = [(self._row(i), c) for i, c in edits
                   if any(self._row(i)[k] != v for k, v in c.items())]
        if not changes:
            return
        self._push()
        for row, change in changes:
            row.update(change)
        self._notify()

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change()
