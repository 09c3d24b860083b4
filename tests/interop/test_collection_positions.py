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
