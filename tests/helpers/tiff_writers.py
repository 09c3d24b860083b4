"""Small TIFF-family files written with tifffile, with just the vendor metadata tifffile needs
to recognise each flavour (see ``TiffFile.is_*`` and ``TiffFile._series_*`` in tifffile).

Every writer returns the path it wrote. Pixels are smooth gradients plus noise so that a
misplaced tile, a swapped channel or a flipped sample shows up in an equality check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tifffile

Array = npt.NDArray[Any]

RGB_TILE = (64, 64)  # JPEG tiles must be multiples of 16


def pattern(shape: tuple[int, ...], dtype: npt.DTypeLike, seed: int = 0) -> Array:
    """Deterministic test pixels: a ramp along each axis plus noise, within the dtype's range."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    ramp = sum(np.indices(shape, dtype=np.float64)[i] * (i + 1) * 3 for i in range(len(shape)))
    noisy = ramp + rng.normal(0.0, 8.0, shape)
    if dtype.kind == "f":
        return (noisy / 7.0).astype(dtype)
    top = float(np.iinfo(dtype).max)
    return np.clip(np.mod(noisy, top), 0, top).astype(dtype)


def rgb_image(ny: int, nx: int, seed: int = 0) -> Array:
    """A smooth RGB image (JPEG keeps it nearly intact; tests compare decoded pixels anyway)."""
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    rng = np.random.default_rng(seed)
    r = 128 + 100 * np.sin(y / 17.0 + seed)
    g = 128 + 100 * np.cos(x / 23.0)
    b = (x + y) % 256
    img = np.stack([r, g, b], axis=-1) + rng.normal(0.0, 4.0, (ny, nx, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- OME-TIFF

def write_ome_tiff(path: Path, data: Array, *, tile: tuple[int, int] | None,
                   subifds: int = 0, names: list[str] | None = None,
                   colors: list[int] | None = None, physical_size: float | None = None,
                   compression: str | None = "zlib") -> Path:
    """A CYX OME-TIFF; ``subifds`` > 0 adds a SubIFD pyramid (2x, 4x... reductions)."""
    meta: dict[str, Any] = {"axes": "CYX"}
    channel: dict[str, Any] = {}
    if names:
        channel["Name"] = names
    if colors:
        channel["Color"] = colors
    if channel:
        meta["Channel"] = channel
    if physical_size:
        meta.update(PhysicalSizeX=physical_size, PhysicalSizeXUnit="µm",
                    PhysicalSizeY=physical_size, PhysicalSizeYUnit="µm")
    opts: dict[str, Any] = {"photometric": "minisblack", "compression": compression}
    if tile:
        opts["tile"] = tile
    else:
        opts["rowsperstrip"] = 16  # several strips per page
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(data, subifds=subifds or None, metadata=meta, **opts)
        for k in range(1, subifds + 1):
            f = 2**k
            tw.write(data[:, ::f, ::f], subfiletype=1, metadata=None, **opts)
    return path


def write_ome_tiff_series(path: Path, images: list[tuple[str, Array]]) -> Path:
    """Several CYX images in one OME-TIFF (one OME Image each)."""
    with tifffile.TiffWriter(path, ome=True) as tw:
        for name, data in images:
            tw.write(data, photometric="minisblack", tile=(32, 32), compression="zlib",
                     metadata={"axes": "CYX", "Name": name})
    return path


MULTIFILE_UUIDS = ("urn:uuid:6c7a7d0e-0000-4000-8000-00000000000a",
                   "urn:uuid:6c7a7d0e-0000-4000-8000-00000000000b")


def multifile_ome_xml(names: tuple[str, str], files: tuple[str, str], ny: int, nx: int,
                      dtype: str, own: int) -> str:
    """OME-XML of a 2-channel image whose channel c is IFD 0 of file ``files[c]``."""
    tiffdata = "".join(
        f'<TiffData FirstC="{c}" FirstT="0" FirstZ="0" IFD="0" PlaneCount="1">'
        f'<UUID FileName="{files[c]}">{MULTIFILE_UUIDS[c]}</UUID></TiffData>'
        for c in range(2))
    channels = "".join(f'<Channel ID="Channel:0:{c}" Name="{names[c]}" SamplesPerPixel="1"/>'
                       for c in range(2))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
        f'UUID="{MULTIFILE_UUIDS[own]}">'
        '<Image ID="Image:0" Name="split"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" '
        f'Type="{dtype}" SizeC="2" SizeT="1" SizeZ="1" SizeX="{nx}" SizeY="{ny}" '
        'PhysicalSizeX="0.65" PhysicalSizeY="0.65">'
        f"{channels}{tiffdata}</Pixels></Image></OME>"
    )


def write_multifile_ome_tiff(folder: Path, data: Array, names: tuple[str, str]
                             ) -> tuple[Path, Path]:
    """Channel 0 in ``split_0.ome.tif``, channel 1 in ``split_1.ome.tif``; both carry the XML."""
    files = ("split_0.ome.tif", "split_1.ome.tif")
    ny, nx = data.shape[1:]
    for c in range(2):
        xml = multifile_ome_xml(names, files, ny, nx, data.dtype.name, own=c)
        tifffile.imwrite(folder / files[c], data[c], description=xml, metadata=None,
                         photometric="minisblack", tile=(32, 32), compression="zlib")
    return folder / files[0], folder / files[1]


# --------------------------------------------------------------------------- PerkinElmer

def qpi_description(image_type: str, name: str | None = None,
                    color: tuple[int, int, int] | None = None) -> str:
    fields = [f"<ImageType>{image_type}</ImageType>"]
    if name is not None:
        fields.append(f"<Name>{name}</Name>")
    if color is not None:
        fields.append(f"<Color>{','.join(str(v) for v in color)}</Color>")
    return ('<?xml version="1.0" encoding="utf-16"?>\n<PerkinElmer-QPI-ImageDescription>'
            f"<DescriptionVersion>2</DescriptionVersion>{''.join(fields)}"
            "</PerkinElmer-QPI-ImageDescription>")


def write_inform_component(path: Path, data: Array, names: list[str],
                           colors: list[tuple[int, int, int]], thumbnail: Array) -> Path:
    """An inForm component TIFF: one float32 page per unmixed component, then a thumbnail."""
    res = (1e4 / 0.5, 1e4 / 0.5)  # 0.5 µm per pixel, in pixels per centimetre
    with tifffile.TiffWriter(path) as tw:
        for plane, name, color in zip(data, names, colors, strict=True):
            tw.write(plane, description=qpi_description("FullResolution", name, color),
                     software="PerkinElmer-QPI", photometric="minisblack", metadata=None,
                     resolution=res, resolutionunit="CENTIMETER", compression="zlib")
        tw.write(thumbnail, description=qpi_description("Thumbnail"), software="PerkinElmer-QPI",
                 photometric="rgb", metadata=None, compression="zlib")
    return path


# --------------------------------------------------------------------------- whole-slide RGB

def _rgb_pyramid(tw: tifffile.TiffWriter, rgb: Array, levels: int, **opts: Any) -> None:
    for k in range(levels):
        f = 2**k
        tw.write(rgb[::f, ::f], photometric="rgb", tile=RGB_TILE, compression="jpeg",
                 subfiletype=1 if k else 0, metadata=None, **opts)


def write_svs(path: Path, rgb: Array, *, mpp: float, label: Array, macro: Array) -> Path:
    """Aperio layout: baseline (tiled), thumbnail (stripped), level 1, label, macro."""
    ny, nx = rgb.shape[:2]
    desc = (f"Aperio Image Library v12.0.15 \r\n{nx}x{ny} [0,0 {nx}x{ny}] ({RGB_TILE[1]}x"
            f"{RGB_TILE[0]}) JPEG/RGB Q=90|AppMag = 20|MPP = {mpp}")
    with tifffile.TiffWriter(path) as tw:
        tw.write(rgb, photometric="rgb", tile=RGB_TILE, compression="jpeg", description=desc,
                 metadata=None)
        tw.write(rgb[::4, ::4], photometric="rgb", compression="jpeg", metadata=None,
                 description=f"Aperio Image Library v12.0.15 \r\n{nx}x{ny} -> thumbnail")
        tw.write(rgb[::2, ::2], photometric="rgb", tile=RGB_TILE, compression="jpeg",
                 metadata=None, description=f"Aperio Image Library v12.0.15 \r\n{nx}x{ny}")
        tw.write(label, photometric="rgb", compression="lzw", subfiletype=1, metadata=None,
                 description="Aperio Image Library v12.0.15 \r\nlabel 100x100")
        tw.write(macro, photometric="rgb", compression="jpeg", subfiletype=9, metadata=None,
                 description="Aperio Image Library v12.0.15 \r\nmacro 200x100")
    return path


def write_ndpi(path: Path, rgb: Array, *, macro: Array, mpp: float) -> Path:
    """Hamamatsu NDPI tags (FileFormat 65420, Make, Magnification 65421) on classic TIFF.

    Real NDPI files use 64-bit offsets inside a classic header; tifffile assumes that for the
    ``.ndpi`` extension, so this file must keep another extension (``.tif``).
    """
    res = (1e4 / mpp, 1e4 / mpp)

    def tags(mag: float) -> list[tuple[int, str, int, Any, bool]]:
        # Make (271), NDPI FileFormat (65420) and Magnification (65421; -1 marks the macro)
        return [(271, "s", 0, "Hamamatsu", True), (65420, "I", 1, 1, True),
                (65421, "f", 1, mag, True)]

    with tifffile.TiffWriter(path) as tw:
        for k in range(2):
            f = 2**k
            tw.write(rgb[::f, ::f], photometric="rgb", compression="jpeg", rowsperstrip=16,
                     metadata=None, extratags=tags(20.0), resolution=(res[0] / f, res[1] / f),
                     resolutionunit="CENTIMETER")
        tw.write(macro, photometric="rgb", compression="jpeg", metadata=None,
                 extratags=tags(-1.0))
    return path


def write_scn(path: Path, rgb: Array, *, macro: Array, nm_per_px: float) -> Path:
    """Leica SCN: XML in page 0; a macro image spanning the collection, then the scan."""
    ny, nx = rgb.shape[:2]
    my, mx = macro.shape[:2]
    # the collection (slide) is the macro's extent; the scan sits inside it
    macro_nm = 40_000.0
    coll_x, coll_y = int(mx * macro_nm), int(my * macro_nm)

    def image(name: str, dims: list[tuple[int, int, int, int]], view: tuple[int, int, int, int],
              illumination: str) -> str:
        dim = "".join(f'<dimension sizeX="{w}" sizeY="{h}" r="{r}" ifd="{ifd}"/>'
                      for w, h, r, ifd in dims)
        vw, vh, ox, oy = view
        return (f'<image name="{name}" uuid="urn:uuid:{name or "macro"}">'
                f'<pixels sizeX="{dims[0][0]}" sizeY="{dims[0][1]}">{dim}</pixels>'
                f'<view sizeX="{vw}" sizeY="{vh}" offsetX="{ox}" offsetY="{oy}" spacingZ="0"/>'
                "<scanSettings><illuminationSettings>"
                f"<illuminationSource>{illumination}</illuminationSource>"
                "</illuminationSettings></scanSettings></image>")

    xml = ('<?xml version="1.0"?>\n<scn xmlns="http://www.leica-microsystems.com/scn/2010/10/01">'
           f'<collection name="slide" uuid="urn:uuid:slide" sizeX="{coll_x}" sizeY="{coll_y}">'
           + image("", [(mx, my, 0, 0)], (coll_x, coll_y, 0, 0), "brightfield")
           + image("", [(nx, ny, 0, 1), (nx // 2, ny // 2, 1, 2)],
                   (int(nx * nm_per_px), int(ny * nm_per_px), 1_000_000, 2_000_000),
                   "brightfield")
           + "</collection></scn>")
    opts: dict[str, Any] = {"photometric": "rgb", "tile": RGB_TILE, "compression": "jpeg",
                            "metadata": None}
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(macro, description=xml, **opts)
        tw.write(rgb, **opts)
        tw.write(rgb[::2, ::2], subfiletype=1, **opts)
    return path


XMP = b'<?xml version="1.0"?><iScan BaseFocus="0" Magnification="20" ScanRes="0.25"/>'


def write_bif(path: Path, rgb: Array, *, label: Array, thumbnail: Array,
              probability: Array) -> Path:
    """Ventana BIF: Label_Image, Thumbnail, Probability_Image, then level=0, level=1 pages."""
    common: dict[str, Any] = {"software": "ScanOutputManager 1.1.0.15854", "metadata": None,
                              "extratags": [(700, "B", len(XMP), XMP, True)]}
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(label, photometric="rgb", compression="jpeg", description="Label_Image",
                 **common)
        tw.write(thumbnail, photometric="rgb", compression="jpeg", description="Thumbnail",
                 **common)
        tw.write(probability, photometric="minisblack", compression="zlib",
                 description="Probability_Image", **common)
        for k in range(2):
            f = 2**k
            tw.write(rgb[::f, ::f], photometric="rgb", tile=RGB_TILE, compression="jpeg",
                     description=f"level={k} mag={20 // f} quality=90", **common)
    return path


def philips_xml(spacings_mm: list[float]) -> str:
    reps = "".join(
        '<DataObject ObjectType="PixelDataRepresentation">'
        '<Attribute Name="DICOM_PIXEL_SPACING" Group="0x0028" Element="0x0030" '
        f'PMSVR="IDoubleArray">&quot;{s:.9g}&quot; &quot;{s:.9g}&quot;</Attribute>'
        f'<Attribute Name="PIIM_PIXEL_DATA_REPRESENTATION_NUMBER" Group="0x101D" '
        f'Element="0x1009" PMSVR="IUInt16">{i}</Attribute></DataObject>'
        for i, s in enumerate(spacings_mm))
    return (
        '<?xml version="1.0" encoding="UTF-8" ?>\n<DataObject ObjectType="DPUfsImport">'
        '<Attribute Name="PIM_DP_SCANNED_IMAGES" Group="0x301D" Element="0x1003" '
        'PMSVR="IDataObjectArray"><Array><DataObject ObjectType="DPScannedImage">'
        '<Attribute Name="PIM_DP_IMAGE_TYPE" Group="0x301D" Element="0x1004" '
        'PMSVR="IString">WSI</Attribute>'
        '<Attribute Name="PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE" Group="0x1001" '
        f'Element="0x8B01" PMSVR="IDataObjectArray"><Array>{reps}</Array></Attribute>'
        "</DataObject></Array></Attribute></DataObject>"
    )


def write_philips(path: Path, rgb: Array, *, mpp: float, label: Array, macro: Array) -> Path:
    """Philips DP TIFF: XML in page 0, two tiled levels, then Macro and Label strip pages."""
    software = "Philips DP v1.0"
    spacings = [mpp / 1000.0, 2 * mpp / 1000.0]
    with tifffile.TiffWriter(path) as tw:
        tw.write(rgb, photometric="rgb", tile=RGB_TILE, compression="jpeg",
                 description=philips_xml(spacings), software=software, metadata=None)
        tw.write(rgb[::2, ::2], photometric="rgb", tile=RGB_TILE, compression="jpeg",
                 software=software, metadata=None, description="level 1")
        tw.write(macro, photometric="rgb", compression="jpeg", software=software,
                 description="Macro", metadata=None)
        tw.write(label, photometric="rgb", compression="jpeg", software=software,
                 description="Label", metadata=None)
    return path


# --------------------------------------------------------------------------- scientific

def write_imagej(path: Path, data: Array, *, labels: list[str], spacing: float,
                 pixel_size: float) -> Path:
    """An ImageJ hyperstack, ``data`` in TZCYX order, slice labels per plane (C fastest)."""
    nt, nz, nc = data.shape[:3]
    slice_labels = [labels[c] for _ in range(nt) for _ in range(nz) for c in range(nc)]
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / pixel_size, 1 / pixel_size),
                     metadata={"axes": "TZCYX", "spacing": spacing, "unit": "um",
                               "Labels": slice_labels})
    return path


def write_plain_pages(path: Path, data: Array) -> Path:
    """One page per plane and no metadata at all (like labels/E34_imc.tiff)."""
    with tifffile.TiffWriter(path) as tw:
        for plane in data:
            tw.write(plane, photometric="minisblack", metadata=None)
    return path
