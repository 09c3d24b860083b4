"""OME-XML for ``OME/METADATA.ome.xml`` when the source has none of its own."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np

from plexhub.ome_pipeline.metadata import hex_to_ome_color
from plexhub.ome_pipeline.source import SourceImage

OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
_TYPES = {"uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "int8": "int8",
          "int16": "int16", "int32": "int32", "float32": "float", "float64": "double",
          "bool": "bit"}
_UNIT_SYMBOLS = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "meter": "m",
                 "centimeter": "cm", "second": "s", "millisecond": "ms", "minute": "min",
                 "hour": "h"}


MAX_PLANES = 10_000


def build_ome_xml(images: list[SourceImage], colors: list[list[str]]) -> str:
    """A minimal, schema-shaped OME document: one Image per converted image."""
    ET.register_namespace("", OME_NS)
    root = ET.Element(f"{{{OME_NS}}}OME", {"Creator": "plexhub"})
    for i, (image, cols) in enumerate(zip(images, colors, strict=True)):
        t, c, z, y, x = image.shape
        el = ET.SubElement(root, f"{{{OME_NS}}}Image", {"ID": f"Image:{i}", "Name": image.name})
        if image.stage:  # where the instrument's stage was (schema order: before Pixels)
            ET.SubElement(el, f"{{{OME_NS}}}StageLabel", {
                "Name": image.name, **{f"{a.upper()}": repr(float(v))
                                       for a, v in sorted(image.stage.items())},
                **{f"{a.upper()}Unit": "µm" for a in sorted(image.stage)}})
        attrs = {"ID": f"Pixels:{i}", "DimensionOrder": "XYZCT",
                 "Type": _TYPES.get(np.dtype(image.dtype).name, "uint16"),
                 "SizeX": str(x), "SizeY": str(y), "SizeZ": str(z), "SizeC": str(c),
                 "SizeT": str(t), "BigEndian": "false"}
        for ax in ("x", "y", "z"):
            if ax in image.physical_sizes:
                ps = image.physical_sizes[ax]
                attrs[f"PhysicalSize{ax.upper()}"] = repr(float(ps.value))
                attrs[f"PhysicalSize{ax.upper()}Unit"] = _UNIT_SYMBOLS.get(ps.unit, ps.unit)
        if "t" in image.physical_sizes and image.physical_sizes["t"].unit:
            ps = image.physical_sizes["t"]
            attrs["TimeIncrement"] = repr(float(ps.value))
            attrs["TimeIncrementUnit"] = _UNIT_SYMBOLS.get(ps.unit, ps.unit)
        px = ET.SubElement(el, f"{{{OME_NS}}}Pixels", attrs)
        for ci, (ch, color) in enumerate(zip(image.channels, cols, strict=True)):
            ET.SubElement(px, f"{{{OME_NS}}}Channel", {
                "ID": f"Channel:{i}:{ci}", "Name": ch.label,
                "Color": str(hex_to_ome_color(color)), "SamplesPerPixel": "1"})
        ET.SubElement(px, f"{{{OME_NS}}}MetadataOnly")
        # each plane at the stage position, at its measured time
        if (image.stage or image.plane_times) and t * c * z <= MAX_PLANES:
            for ti in range(t):
                for ci in range(c):
                    for zi in range(z):
                        when = image.plane_times.get((ti, ci, zi))
                        ET.SubElement(px, f"{{{OME_NS}}}Plane", {
                            "TheZ": str(zi), "TheT": str(ti), "TheC": str(ci),
                            **({"DeltaT": repr(when), "DeltaTUnit": "s"}
                               if when is not None else {}),
                            **{f"Position{a.upper()}": repr(float(v))
                               for a, v in sorted(image.stage.items())},
                            **{f"Position{a.upper()}Unit": "µm" for a in sorted(image.stage)}})
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


_PIXELS = re.compile(r"<(?P<p>[\w.-]+:)?Pixels\b.*?</(?P=p)?Pixels\s*>", re.DOTALL)
_TIFFDATA = re.compile(r"<(?P<p>[\w.-]+:)?TiffData\b(?:[^>]*/>|.*?</(?P=p)?TiffData\s*>)",
                       re.DOTALL)


def detach_tiff_references(xml: str) -> str:
    """The source's OME-XML for the converted store: every ``TiffData`` (and the ``UUID
    FileName`` inside it) names planes of the source files, which the store does not hold,
    so each Pixels says ``MetadataOnly`` instead (as bioformats2raw writes it). Only those
    elements change: every other byte stays as the source wrote it."""
    if "TiffData" not in xml:
        return xml

    def pixels(m: re.Match[str]) -> str:
        block = m.group(0)
        found = list(_TIFFDATA.finditer(block))
        if not found:
            return block
        prefix = found[0].group("p") or ""
        keep = "MetadataOnly" in block or "BinData" in block
        out, last = [], 0
        for k, ref in enumerate(found):
            out.append(block[last:ref.start()])
            if k == 0 and not keep:
                out.append(f"<{prefix}MetadataOnly/>")
            last = ref.end()
        out.append(block[last:])
        return "".join(out)

    return _PIXELS.sub(pixels, xml)
