"""What users see when they open plexhub's outputs of the real sample files with the tools
they already have: zarr-python 3 and ome-zarr-py (issue 17)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from plexhub.cli import main
from plexhub.ome_pipeline.histogram import histograms_document
from tests.helpers.zarrs import array_at, attrs_of

TINY = float(np.finfo(np.float32).tiny)


def ome_zarr_nodes(store: Path) -> list[Any]:
    return list(Reader(parse_url(str(store)))())


def omero_windows(store: Path) -> list[dict[str, float]]:
    meta = json.loads((store / "zarr.json").read_text())["attributes"]["ome"]
    return [ch["window"] for ch in meta["omero"]["channels"]]


@pytest.mark.parametrize("name", ["qptiff", "svs", "imc-ome-tiff", "czi", "qptiff-0.4"])
def test_windows_have_no_denormals_and_integer_windows_are_integral(
        converted: dict[str, Path], name: str) -> None:
    store = converted[name]
    g = zarr.open_group(store, mode="r")
    attrs = attrs_of(g)
    omero = attrs.get("ome", attrs)["omero"]
    kind = array_at(g, "0").dtype.kind
    for ch in omero["channels"]:
        for key, v in ch["window"].items():
            assert math.isfinite(v), (name, key, v)
            assert v == 0.0 or abs(v) >= TINY, f"{name}: {key} = {v!r} is a denormal"
            if kind in "iu":
                assert v == int(v), f"{name}: integer window {key} = {v!r} is fractional"
        assert ch["window"]["end"] > ch["window"]["start"]
    # what ome-zarr-py hands napari: the same limits
    [node, *_] = ome_zarr_nodes(store)
    for limits, ch in zip(node.metadata["contrast_limits"], omero["channels"], strict=True):
        assert limits == [ch["window"]["start"], ch["window"]["end"]]


def test_the_float_imc_image_starts_its_windows_at_zero(converted: dict[str, Path]) -> None:
    # 0.1 % of these IMC channels are zero: the window starts at 0.0 (was 5.2e-43)
    assert [w["start"] for w in omero_windows(converted["imc-ome-tiff"])] == [0.0] * 5


@pytest.mark.parametrize("name", ["qptiff", "svs", "imc-ome-tiff", "czi", "qptiff-0.4"])
def test_zarr_python_3_lists_the_store_without_warnings(
        converted: dict[str, Path], name: str) -> None:
    g = zarr.open_group(converted[name], mode="r")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        members = dict(g.members())
        nested = dict(g.members(max_depth=None))
        for key in ("associated", "histograms"):
            if key in members:
                list(members[key].members())  # type: ignore[union-attr]
    texts = [str(w.message) for w in seen]
    assert not [t for t in texts if "histograms" in t or "original" in t], texts
    # one file remains outside the Zarr nodes: OME/METADATA.ome.xml, the bioformats2raw
    # convention that Bio-Formats and ome-zarr-py look for; only a listing *inside* OME/
    # reaches it
    assert all("METADATA.ome.xml" in t for t in texts), texts
    assert {"0", "OME", "histograms"} <= set(members)
    if name != "imc-ome-tiff":  # an OME-TIFF keeps no vendor metadata besides its OME-XML
        assert "OME/original" in nested


def test_the_histograms_are_group_attributes(converted: dict[str, Path]) -> None:
    store = converted["qptiff"]
    assert not (store / "histograms.json").exists()
    doc = attrs_of(zarr.open_group(store / "histograms", mode="r"))["plexhub"]["histograms"]
    assert [h["label"] for h in doc["channels"]] == ["DAPI", "FITC", "Cy3"]
    assert all(h["count"] == 1440 * 1920 for h in doc["channels"])
    meta04 = json.loads((converted["qptiff-0.4"] / "histograms" / ".zattrs").read_text())
    assert histograms_document("histograms/.zattrs", meta04) == \
        histograms_document("histograms/zarr.json",
                            json.loads((store / "histograms" / "zarr.json").read_text()))


def test_readers_of_the_old_histograms_file_keep_working(
        converted: dict[str, Path], tmp_path: Path) -> None:
    """A store converted before the move (a plain histograms.json) still gives the API and
    the widgets their histograms."""
    import shutil

    from plexhub.api.models import Image
    from plexhub.api.preset_store import histograms
    from plexhub.widgets.source import open_image

    old = tmp_path / "old.ome.zarr"
    shutil.copytree(converted["qptiff"], old)
    doc = attrs_of(zarr.open_group(old / "histograms", mode="r"))["plexhub"]["histograms"]
    shutil.rmtree(old / "histograms")
    (old / "histograms.json").write_text(json.dumps(doc))
    for store in (old, converted["qptiff"]):
        image = Image(id="i", store_uri=str(store), store_key="", status="ready")
        assert histograms(image)["channels"] == doc["channels"]
        assert [h["count"] for h in open_image(store).histograms()] == [1440 * 1920] * 3


@pytest.mark.parametrize(("version", "readers"), [
    ("0.5", "opens in: zarr-python >= 3, ome-zarr-py >= 0.10"),
    ("0.4", "opens in: zarr-python 2 and 3"),
])
def test_convert_prints_which_readers_open_the_result(
        real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str,
        readers: str) -> None:
    src = real / "labels/E34_mask.tiff"
    assert main(["convert", "-q", "--ngff-version", version, str(src),
                 str(tmp_path / "o.ome.zarr")]) == 0
    out = capsys.readouterr().out
    assert readers in out, out


def test_the_readme_has_the_compatibility_table() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "| NGFF 0.5 (default) |" in readme
    assert "| NGFF 0.4 (`--ngff-version 0.4`) |" in readme
