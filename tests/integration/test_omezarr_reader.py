"""Existing OME-Zarr of older NGFF versions and layouts is read and upgraded (or downgraded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from plexhub.ome_pipeline import convert, open_source
from tests.helpers.zarrs import attrs_of, read, values

DATA = np.arange(2 * 3 * 40 * 50, dtype=np.uint16).reshape(2, 3, 1, 40, 50)


def write_v2(root: Path, attrs: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """A Zarr v2 hierarchy written by hand, as old writers did."""
    g = zarr.open_group(root, mode="w", zarr_format=2)
    g.attrs.update(attrs)
    for path, data in arrays.items():
        g.create_array(path, data=data, chunks=data.shape, compressors=None)


@pytest.mark.parametrize("version", ["0.1", "0.2"])
def test_ngff_01_02_without_axes_are_tczyx(tmp_path: Path, version: str) -> None:
    src = tmp_path / "old.zarr"
    write_v2(src, {"multiscales": [{"version": version, "datasets": [{"path": "0"}]}],
                   "omero": {"channels": [{"label": "A", "color": "FF0000"},
                                          {"label": "B", "color": "00FF00"},
                                          {"label": "C", "color": "0000FF"}]}},
             {"0": DATA})
    doc = open_source(src)
    assert doc.images[0].shape == (2, 3, 1, 40, 50)
    dst = tmp_path / "new.zarr"
    convert(src, dst)
    g = zarr.open_group(dst, mode="r")
    meta = attrs_of(g)["ome"]
    assert meta["version"] == "0.5"
    # the source's axes are kept, even a z of size 1
    assert [a["name"] for a in meta["multiscales"][0]["axes"]] == ["t", "c", "z", "y", "x"]
    assert np.array_equal(values(g, "0"), DATA)
    assert [c["color"] for c in meta["omero"]["channels"]] == ["FF0000", "00FF00", "0000FF"]


def test_ngff_03_string_axes(tmp_path: Path) -> None:
    src = tmp_path / "v03.zarr"
    write_v2(src, {"multiscales": [{"version": "0.3", "axes": ["c", "y", "x"],
                                    "datasets": [{"path": "0"}, {"path": "1"}]}]},
             {"0": DATA[0, :, 0], "1": DATA[0, :, 0, ::2, ::2]})
    dst = tmp_path / "new.zarr"
    convert(src, dst, ngff_version="0.4")
    g = zarr.open_group(dst, mode="r")
    assert attrs_of(g)["multiscales"][0]["version"] == "0.4"
    assert np.array_equal(values(g, "0"), DATA[0, :, 0])


def test_bioformats2raw_layout_with_labels_and_names(tmp_path: Path) -> None:
    src = tmp_path / "b2r.zarr"
    ms = {"version": "0.4", "axes": [{"name": "c", "type": "channel"},
                                     {"name": "y", "type": "space", "unit": "micrometer"},
                                     {"name": "x", "type": "space", "unit": "micrometer"}],
          "datasets": [{"path": "0", "coordinateTransformations": [
              {"type": "scale", "scale": [1.0, 0.65, 0.65]}]}]}
    write_v2(src, {"bioformats2raw.layout": 3}, {})
    write_v2(src / "0", {"multiscales": [ms]}, {"0": DATA[0, :, 0]})
    write_v2(src / "1", {"multiscales": [ms]}, {"0": DATA[1, :, 0]})
    write_v2(src / "OME", {"series": ["0", "1"]}, {})
    (src / "OME" / "METADATA.ome.xml").write_text(
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0" Name="first"/><Image ID="Image:1" Name="second"/></OME>')
    label_ms = {**ms, "axes": ms["axes"][1:], "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.65, 0.65]}]}]}
    write_v2(src / "0" / "labels", {"labels": ["cells"]}, {})
    mask = (DATA[0, 0, 0] % 7).astype(np.uint32)
    write_v2(src / "0" / "labels" / "cells", {"multiscales": [label_ms], "image-label": {}},
             {"0": mask})
    dst = tmp_path / "new.zarr"
    result = convert(src, dst)
    assert [im.name for im in result.images] == ["first", "second"]
    root = zarr.open_group(dst, mode="r")
    assert attrs_of(root)["ome"]["bioformats2raw.layout"] == 3
    assert np.array_equal(values(root, "1/0"), DATA[1, :, 0])
    assert attrs_of(root["0"])["ome"]["multiscales"][0]["axes"][1]["unit"] == "micrometer"
    scale = attrs_of(root["0"])["ome"]["multiscales"][0]["datasets"][0][
        "coordinateTransformations"][0]["scale"]
    assert scale == pytest.approx([1.0, 0.65, 0.65])
    assert np.array_equal(values(root, "0/labels/cells/0"), mask)
    assert "image-label" in attrs_of(root["0/labels/cells"])["ome"]
    xml = (dst / "OME" / "METADATA.ome.xml").read_text()
    assert 'Name="first"' in xml
    assert 'Name="second"' in xml
    assert json.loads((dst / "OME" / "zarr.json").read_text())["attributes"]["ome"][
        "series"] == ["0", "1"]


def test_a_folder_that_is_not_ngff_is_refused(tmp_path: Path) -> None:
    from plexhub.errors import InputError

    src = tmp_path / "plain.zarr"
    write_v2(src, {"something": 1}, {"data": DATA[0, 0, 0]})
    with pytest.raises(InputError, match="holds no NGFF image"):
        convert(src, tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


LAYOUT1_XML = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/'
               'Schemas/OME/2016-06"><Image ID="Image:0" Name="tonsil-scan"><Pixels ID="Pixels:0"'
               ' DimensionOrder="XYZCT" Type="uint16" SizeX="50" SizeY="40" SizeZ="1" SizeC="3"'
               ' SizeT="2" PhysicalSizeX="0.65" PhysicalSizeY="0.65"><Channel ID="Channel:0:0"'
               ' Name="DAPI"/><Channel ID="Channel:0:1" Name="CD3"/><Channel ID="Channel:0:2"'
               ' Name="CD8"/><TiffData/></Pixels></Image></OME>')


def write_layout1(top: Path) -> Path:
    """What bioformats2raw's first releases wrote: data.zarr (NGFF 0.1 series) and the
    OME-XML beside it, no Zarr metadata at the top folder."""
    write_v2(top / "data.zarr", {"bioformats2raw.layout": 1}, {})
    write_v2(top / "data.zarr" / "0",
             {"multiscales": [{"version": "0.1", "datasets": [{"path": "0"}]}]}, {"0": DATA})
    (top / "METADATA.ome.xml").write_text(LAYOUT1_XML)
    return top


@pytest.mark.parametrize("inside", [False, True])
def test_bioformats2raw_layout_1_is_read_at_its_top_folder(tmp_path: Path,
                                                           inside: bool) -> None:
    """Issue 17, item 4: accepted at the top folder (and through data.zarr), the name,
    channel names and pixel size from METADATA.ome.xml, no unit invented for t."""
    top = write_layout1(tmp_path / "scan")
    src = top / "data.zarr" if inside else top
    doc = open_source(src)
    [image] = doc.images
    assert image.name == "tonsil-scan"
    assert [ch.label for ch in image.channels] == ["DAPI", "CD3", "CD8"]
    assert image.physical_sizes["x"].value == 0.65
    assert image.physical_sizes["x"].unit == "micrometer"
    dst = tmp_path / "out.ome.zarr"
    convert(src, dst)
    meta = json.loads((dst / "zarr.json").read_text())["attributes"]["ome"]
    ms = meta["multiscales"][0]
    assert ms["name"] == "tonsil-scan"
    t_axis = next(a for a in ms["axes"] if a["name"] == "t")
    assert "unit" not in t_axis  # nothing says these are seconds
    assert [c["label"] for c in meta["omero"]["channels"]] == ["DAPI", "CD3", "CD8"]
    assert np.array_equal(read(dst), DATA)
