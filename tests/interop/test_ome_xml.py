"""The output's OME-XML describes the store, not the source files (issue 17, item 5): no
TiffData / UUID FileName references to planes of the source, everything else kept."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

NS = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"


def test_an_ome_tiff_source_leaves_no_tiffdata_references(converted: dict[str, Path],
                                                          real: Path) -> None:
    text = (converted["imc-ome-tiff"] / "OME" / "METADATA.ome.xml").read_text()
    root = ET.fromstring(text)
    assert not list(root.iter(f"{NS}TiffData"))
    assert not list(root.iter(f"{NS}UUID"))
    [pixels] = list(root.iter(f"{NS}Pixels"))
    tags = [c.tag.removeprefix(NS) for c in pixels]
    assert tags == ["Channel"] * 5 + ["MetadataOnly"]
    assert [c.get("Name") for c in pixels.iter(f"{NS}Channel")][:2] == [
        "107Ag", "Cytoker_651((3356))Pr141"]
    assert "MCDSchema" in text  # the source's annotations stay
    source = (real / "imc/20210305_NE_mockData2_s0_a1_ac.ome.tiff").read_bytes()
    assert b"<TiffData" in source  # ... where the source had one
