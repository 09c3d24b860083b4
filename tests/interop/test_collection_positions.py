"""Collections land where they were acquired (issue 17, item 1): each IMC acquisition's
slide position becomes an NGFF translation and an OME-XML StageLabel / Plane position."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from plexhub.ome_pipeline import convert

NS = {"ome": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}
# readimc's first ROI corner of each acquisition (slide µm, y up)
CORNERS = [(15242.0, 12800.0), (15694.0, 13247.0), (15919.0, 13292.0)]


@pytest.fixture(scope="module")
def mcd_store(real: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("mcd") / "mcd.ome.zarr"
    convert(real / "imc/20210305_NE_mockData2.mcd", dst, show_progress=False)
    return dst


def test_each_acquisition_has_its_slide_position_as_a_translation(mcd_store: Path) -> None:
    for i, (x, y) in enumerate(CORNERS):
        ms = json.loads((mcd_store / str(i) / "zarr.json").read_text())[
            "attributes"]["ome"]["multiscales"][0]
        assert [a["name"] for a in ms["axes"]] == ["c", "y", "x"]
        scale, translation = ms["datasets"][0]["coordinateTransformations"]
        assert scale["scale"] == [1.0, 1.0, 1.0]
        assert translation["translation"] == [0.0, -y, x]  # image rows run down the slide
        # what ome-zarr-py hands its users for that series
        [node, *_] = list(Reader(parse_url(str(mcd_store / str(i))))())
        assert node.metadata["coordinateTransformations"][0][1] == translation


def test_the_ome_xml_has_stage_and_plane_positions(mcd_store: Path) -> None:
    root = ET.fromstring((mcd_store / "OME" / "METADATA.ome.xml").read_text())
    images = root.findall("ome:Image", NS)
    assert len(images) == 3
    for image, (x, y) in zip(images, CORNERS, strict=True):
        stage = image.find("ome:StageLabel", NS)
        assert stage is not None
        assert (float(stage.get("X", "nan")), float(stage.get("Y", "nan"))) == (x, y)
        assert stage.get("XUnit") == stage.get("YUnit") == "µm"
        children = [child.tag.split("}")[1] for child in image]
        assert children.index("StageLabel") < children.index("Pixels")  # schema order
        planes = image.findall("ome:Pixels/ome:Plane", NS)
        assert len(planes) == 5
        assert {(float(p.get("PositionX", "nan")), float(p.get("PositionY", "nan")))
                for p in planes} == {(x, y)}


def test_ome_zarr_info_opens_the_collection_root_at_its_first_series(
        mcd_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # ome-zarr-py 0.18 has no bioformats2raw support: before, the root printed nothing
    from ome_zarr.utils import info

    nodes = list(info(str(mcd_store)))
    printed = capsys.readouterr().out
    assert len(nodes) == 1
    assert printed.splitlines() == [f"{mcd_store} [zgroup]", " - version: 0.5", " - metadata",
                                    "   - Multiscales", "   - OMERO", " - data",
                                    "   - (5, 87, 103)"]
    assert nodes[0].metadata["name"] == "ROI_001"
    # every series still opens from its own group
    for i, shape in enumerate([(5, 87, 103), (5, 61, 59), (5, 54, 53)]):
        [node, *_] = list(info(str(mcd_store / str(i))))
        assert node.data[0].shape == shape
    capsys.readouterr()


def test_the_collection_root_lists_every_series_as_a_multiscale(mcd_store: Path) -> None:
    import zarr
    from ome_zarr_models import open_ome_zarr

    attrs = json.loads((mcd_store / "zarr.json").read_text())["attributes"]["ome"]
    assert attrs["bioformats2raw.layout"] == 3
    assert [ms["name"] for ms in attrs["multiscales"]] == ["ROI_001", "ROI_002", "ROI_003"]
    for i, ms in enumerate(attrs["multiscales"]):
        own = json.loads((mcd_store / str(i) / "zarr.json").read_text())["attributes"]["ome"]
        [d] = ms["datasets"]
        assert d["path"] == f"{i}/0"
        assert d["coordinateTransformations"] == \
            own["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    open_ome_zarr(zarr.open_group(mcd_store, mode="r"), version="0.5")  # valid as an image


def test_napari_ome_zarr_opens_each_series_once(mcd_store: Path) -> None:
    from napari_ome_zarr._reader import napari_get_reader

    read = napari_get_reader(str(mcd_store))
    assert read is not None
    layers = read(str(mcd_store))
    assert [(t, m["name"][0], d[0].shape) for d, m, t in layers] == [
        ("image", "ROI_001: 107Ag", (5, 87, 103)), ("image", "ROI_002: 107Ag", (5, 61, 59)),
        ("image", "ROI_003: 107Ag", (5, 54, 53))]


def test_plexhub_reads_the_collection_back_as_three_series(mcd_store: Path) -> None:
    from plexhub.ome_pipeline.validate import validate_store
    from plexhub.widgets.source import open_path

    assert validate_store(mcd_store)[:3] == [f"{mcd_store}/{i}" for i in range(3)]
    src = open_path(mcd_store, series=2)
    assert (src.name, src.arrays[0].shape[-2:]) == ("ROI_003", (54, 53))


def test_a_spatialdata_store_becomes_a_collection_that_opens_at_its_root(
        real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ome_zarr.utils import info

    dst = tmp_path / "sdata.ome.zarr"
    convert(real / "ome-zarr/spatialdata-0.7/blobs.sdata.zarr", dst, show_progress=False)
    attrs = json.loads((dst / "zarr.json").read_text())["attributes"]["ome"]
    assert [ms["name"] for ms in attrs["multiscales"]] == ["blobs_image",
                                                          "blobs_multiscale_image"]
    [node] = list(info(str(dst)))
    assert [a.shape for a in node.data] == [(3, 100, 100)]
    capsys.readouterr()


# --------------------------------------------------------------------------- CZI scenes
# The real CZIs here are single-scene (no scene positions to keep: their output has no
# translation); a two-scene file is written with pylibCZIrw (libCZI's own writer).

def test_czi_scenes_land_at_their_place_in_the_file(tmp_path: Path) -> None:
    import numpy as np
    from pylibCZIrw import czi as pyczi

    src = tmp_path / "scenes.czi"
    with pyczi.create_czi(str(src), exist_ok=True) as w:
        for scene, (x, y) in enumerate([(100, 50), (400, 300)]):
            for c in range(2):
                w.write(np.full((40, 60, 1), 10 * scene + c + 1, np.uint16),
                        plane={"C": c}, scene=scene, location=(x, y))
        w.write_metadata(document_name="scenes", channel_names={0: "A", 1: "B"},
                         scale_x=0.5e-6, scale_y=0.5e-6)
    dst = tmp_path / "scenes.ome.zarr"
    convert(src, dst, show_progress=False)
    for i, (x, y) in enumerate([(100, 50), (400, 300)]):
        ms = json.loads((dst / str(i) / "zarr.json").read_text())["attributes"]["ome"][
            "multiscales"][0]
        scale, translation = ms["datasets"][0]["coordinateTransformations"]
        assert scale["scale"] == [1.0, 0.5, 0.5]
        assert translation["translation"] == [0.0, y * 0.5, x * 0.5]  # µm, libCZI's frame
        assert [a.get("unit") for a in ms["axes"]] == [None, "micrometer", "micrometer"]


def test_czi_scene_stage_positions_come_from_zen_center_positions() -> None:
    from plexhub.ome_pipeline.readers.czi import scene_centers

    # the shape ZEN writes (Bio-Formats: StageLabel X = 38561.4 / 37980.0 µm)
    root = ET.fromstring(
        "<ImageDocument><Metadata><Information><Image><Dimensions><S><Scenes>"
        "<Scene Index='0' Name='P1'><CenterPosition>38561.4,11225.5</CenterPosition></Scene>"
        "<Scene Index='1' Name='P2'><CenterPosition>37980,11310.25</CenterPosition></Scene>"
        "<Scene Index='2' Name='P3'><CenterPosition>n/a</CenterPosition></Scene>"
        "</Scenes></S></Dimensions></Image></Information></Metadata></ImageDocument>")
    assert scene_centers(root) == {0: {"x": 38561.4, "y": 11225.5},
                                   1: {"x": 37980.0, "y": 11310.25}}


def test_single_scene_czis_keep_no_translation(real: Path, tmp_path: Path) -> None:
    from plexhub.ome_pipeline.readers import open_source

    for name in ("czi/DAPI_GFP.czi", "czi/CellDivision_T3_Z5_CH2_X240_Y170.czi"):
        [image] = open_source(real / name).images
        assert (image.position, image.stage) == ({}, {})
