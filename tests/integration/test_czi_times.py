"""CZI time points: the nominal increment and each plane's measured DeltaT, as Bio-Formats
reports them (issue 17, item 5), on the real 5-D CZI (T=3, C=2, Z=5)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import czifile
import pytest

from plexhub.cli import main
from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.readers import open_source

NS = {"ome": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}
NAME = "czi/CellDivision_T3_Z5_CH2_X240_Y170.czi"


def acquisition_times(path: Path) -> dict[tuple[int, int, int], str]:
    """(t, c, z) -> the subblock's AcquisitionTime text, read with czifile."""
    with czifile.CziFile(path) as f:
        out = {}
        for e in f.filtered_subblock_directory:
            d = {x.dimension: int(x.start) for x in e.dimension_entries}
            out[(d["T"], d["C"], d["Z"])] = e.data_segment().metadata()["Tags"][
                "AcquisitionTime"]
        return out


def test_each_plane_has_its_measured_time(real: Path) -> None:
    [image] = open_source(real / NAME).images
    assert image.physical_sizes["t"].value == pytest.approx(60.075)  # nominal, kept
    stamps = acquisition_times(real / NAME)
    assert set(image.plane_times) == set(stamps)
    assert len(stamps) == 30
    assert min(image.plane_times.values()) == 0.0
    first = min(stamps.values())  # same-day ISO stamps sort as text
    assert stamps[min(stamps, key=lambda k: stamps[k])] == first
    # T1 C0 Z0 was taken 60.0174 s after T0 C0 Z0 (09:48:10.0890176 - 09:47:10.0715848)
    t0 = image.plane_times[(0, 0, 2)]
    assert image.plane_times[(1, 0, 2)] - t0 == pytest.approx(60.0174328, abs=1e-5)
    assert image.plane_times[(1, 0, 2)] - t0 != pytest.approx(60.075, abs=1e-3)


def test_plexhub_info_says_nominal_and_measured(real: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(real / NAME)]) == 0
    out = capsys.readouterr().out
    assert "note: time: nominal increment 60.075 s (metadata), measured 60.045 s (mean of " \
           "60.025, 60.065 s between time points, from the subblocks' AcquisitionTime); each " \
           "plane's DeltaT is in the OME-XML" in out


def test_the_ome_xml_has_time_increment_and_plane_delta_t(real: Path, tmp_path: Path) -> None:
    dst = tmp_path / "cd.ome.zarr"
    convert(real / NAME, dst, show_progress=False)
    root = ET.fromstring((dst / "OME" / "METADATA.ome.xml").read_text())
    pixels = root.find("ome:Image/ome:Pixels", NS)
    assert pixels is not None
    assert (pixels.get("TimeIncrement"), pixels.get("TimeIncrementUnit")) == ("60.075", "s")
    planes = pixels.findall("ome:Plane", NS)
    assert len(planes) == 30
    delta = {(int(p.get("TheT", "-1")), int(p.get("TheC", "-1")), int(p.get("TheZ", "-1"))):
             float(p.get("DeltaT", "nan")) for p in planes}
    assert {p.get("DeltaTUnit") for p in planes} == {"s"}
    [image] = open_source(real / NAME).images
    assert delta == pytest.approx(image.plane_times)
    assert max(delta.values()) == pytest.approx(delta[(2, 1, 4)])
