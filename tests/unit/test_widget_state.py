"""The viewer's channel panel, in pure Python: every edit the UI forwards."""

from __future__ import annotations

import numpy as np
import pytest

from plexhub.errors import InputError
from plexhub.model import Channel
from plexhub.ome_pipeline import histogram as hist
from plexhub.presets import RenderPreset, parse_preset
from plexhub.widgets.state import LockedError, PanelState

MARKERS = ["DAPI", "CD3", "CD8", "CD20", "CD68", "PanCK"]


def channels(n: int = 6) -> list[Channel]:
    return [Channel(index=i, label=f"Opal {520 + 10 * i}" if i else "DAPI",
                    color="FF0000", marker=MARKERS[i % len(MARKERS)] + ("" if i < 6 else str(i)))
            for i in range(n)]


def histograms(n: int = 6) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        data = rng.gamma(2.0, 100.0 * (i + 1), size=20_000).astype(np.uint16)
        out.append({"index": i} | hist.finalize(hist.PartialHistogram.of(data),
                                                np.dtype(np.uint16)))
    return out


def preset(n: int = 6, active: int = 2) -> RenderPreset:
    return parse_preset({"name": "base", "channels": [
        {"index": i, "color": "00FF00", "active": i < active,
         "window": {"start": 0, "end": 1000}} for i in range(n)]})


@pytest.fixture
def panel() -> PanelState:
    calls: list[int] = []
    p = PanelState(channels(), preset(), histograms(), on_change=lambda: calls.append(1))
    p.calls = calls  # type: ignore[attr-defined]
    return p


def active(p: PanelState) -> list[int]:
    return [r["index"] for r in p.rows if r["active"]]


def test_search_by_substring_and_regex_on_label_and_marker(panel: PanelState) -> None:
    assert panel.search("cd") == [1, 2, 3, 4]
    assert panel.search("opal 54") == [2]
    assert panel.search(r"^CD[0-9]$", regex=True) == [1, 2]
    assert panel.search("") == list(range(6))
    with pytest.raises(InputError, match="regular expression"):
        panel.search("CD(", regex=True)


def test_select_all_and_none_act_on_the_matches_only(panel: PanelState) -> None:
    panel.select_none()
    assert active(panel) == []
    panel.select_all("CD", regex=False)
    assert active(panel) == [1, 2, 3, 4]
    panel.select_none(r"CD[0-9]$", regex=True)
    assert active(panel) == [3, 4]


def test_solo_and_groups_toggle_as_one(panel: PanelState) -> None:
    panel.solo(3)
    assert active(panel) == [3]
    panel.set_group([1, 2], "T cells")
    assert panel.groups() == {"T cells": [1, 2]}
    panel.toggle_group("T cells")
    assert active(panel) == [1, 2, 3]
    panel.toggle_group("T cells")
    assert active(panel) == [3]
    with pytest.raises(InputError, match="has no channels"):
        panel.toggle_group("B cells")


def test_colour_window_gamma_invert_reach_the_preset(panel: PanelState) -> None:
    panel.set_color(1, "#ff8800")
    panel.set_window(1, 50, 700)
    panel.set_gamma(1, 0.5)
    panel.set_inverted(1, True)
    ch = panel.to_preset().channels[1]
    assert (ch.color, ch.window.start, ch.window.end, ch.gamma, ch.inverted) == \
        ("FF8800", 50.0, 700.0, 0.5, True)
    assert ch.marker == "CD3"
    assert ch.label == "Opal 530"
    with pytest.raises(InputError, match="end > start"):
        panel.set_window(1, 700, 50)
    with pytest.raises(InputError, match="above 0"):
        panel.set_gamma(1, 0)
    with pytest.raises(InputError, match="six hex digits"):
        panel.set_color(1, "orange")
    with pytest.raises(InputError, match="not a channel"):
        panel.set_window(17, 0, 1)


def test_auto_contrast_from_the_stored_histograms(panel: PanelState) -> None:
    panel.auto([2])
    row = panel.rows[2]
    stored = histograms()[2]
    assert row["start"] == pytest.approx(hist.percentile(stored, 0.1))
    assert row["end"] == pytest.approx(hist.percentile(stored, 99.9))
    assert panel.rows[1]["end"] == 1000.0  # others untouched
    panel.auto()
    assert all(r["end"] != 1000.0 for r in panel.rows)
    assert panel.to_preset().provenance is not None
    assert panel.to_preset().provenance.lower == 0.1  # type: ignore[union-attr]


def test_lock_refuses_edits_and_changes_nothing(panel: PanelState) -> None:
    before = panel.to_preset()
    panel.lock()
    for edit in (lambda: panel.set_window(0, 1, 2), lambda: panel.solo(1),
                 lambda: panel.select_all(), panel.undo, lambda: panel.apply(preset(6, 6))):
        with pytest.raises(LockedError):
            edit()
    assert panel.to_preset() == before
    panel.lock(False)
    panel.solo(1)
    assert active(panel) == [1]


def test_undo_walks_back_each_edit(panel: PanelState) -> None:
    assert not panel.can_undo
    panel.set_window(0, 10, 20)
    panel.solo(4)
    panel.set_color(4, "0000FF")
    assert panel.undo()
    assert panel.rows[4]["color"] == "00FF00"
    assert panel.undo()
    assert active(panel) == [0, 1]
    assert panel.undo()
    assert panel.rows[0]["end"] == 1000.0
    assert not panel.undo()


def dirty(panel: PanelState) -> bool:
    """``panel.dirty`` read afresh (mypy would keep an asserted attribute narrowed across the
    edits in between)."""
    return panel.dirty


def test_dirty_marker_against_the_last_applied_or_saved_preset(panel: PanelState) -> None:
    assert not dirty(panel)
    panel.set_window(0, 10, 20)
    assert dirty(panel)
    panel.undo()
    assert not dirty(panel)  # back to the same content
    panel.set_gamma(0, 2.0)
    panel.mark_clean()  # what a save does
    assert not dirty(panel)
    panel.apply(preset(6, 6))
    panel.mark_clean()
    assert not dirty(panel)
    assert active(panel) == list(range(6))


def test_no_op_edits_do_not_notify_or_fill_undo(panel: PanelState) -> None:
    calls = panel.calls  # type: ignore[attr-defined]
    n = len(calls)
    panel.set_active([0], True)  # already on
    assert len(calls) == n
    assert not panel.can_undo
    panel.set_active([5], True)
    assert len(calls) == n + 1
    assert panel.can_undo


def test_a_panel_preset_binds_by_marker_and_warns_about_unmatched() -> None:
    p = PanelState(channels(), preset(), histograms())
    warnings = p.apply(parse_preset({"name": "T cells", "channels": [
        {"marker": "CD8", "color": "FFFFFF", "window": {"start": 5, "end": 50}},
        {"marker": "FOXP3", "color": "FF00FF", "window": {"start": 0, "end": 9}}]}))
    assert active(p) == [2]
    assert p.rows[2]["color"] == "FFFFFF"
    assert any("FOXP3" in w for w in warnings)


def test_sixty_channels_round_trip_through_the_preset() -> None:
    chans = channels(60)
    p = PanelState(chans, parse_preset({"name": "sixty", "channels": [
        {"index": i, "color": f"{(i * 4) % 256:02X}80FF", "active": i % 3 == 0,
         "window": {"start": i, "end": 100 + i}} for i in range(60)]}), histograms(60))
    assert len(p.search("CD")) >= 30
    p.select_all("CD6", regex=False)
    again = PanelState(chans, p.to_preset(), histograms(60))
    assert again.rows == p.rows
