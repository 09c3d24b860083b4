"""ome-zarr-py as a converter: ``write_image`` over the TIFF seen through tifffile's Zarr view.

Runs in the peers' venv (``bench/out/venvs/ngff``), started by ``bench/convert.py``::

    python bench/peer_omezarr.py SRC.ome.tif DST.zarr [--cname zstd --clevel 1]

Level 0 is ``da.from_zarr(tifffile.imread(SRC, aszarr=True))`` (dask chunks = the TIFF's
512 x 512 tiles); ``write_image`` with its defaults (NGFF 0.5 / Zarr v3, scale factors
2, 4, 8, 16, method ``resize``) and ``storage_options={"chunks": (1, 512, 512)}``; channel
names and colours from the OME-XML are passed as ``omero`` (ome-zarr-py reads no metadata
itself). Without ``--cname`` the codec is zarr's default (zstd level 0, no shuffle).
"""

from __future__ import annotations

import argparse

import dask.array as da
import tifffile
import zarr
from ome_zarr.writer import write_image


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--cname")
    ap.add_argument("--clevel", type=int, default=5)
    args = ap.parse_args()

    with tifffile.TiffFile(args.src) as tif:
        ome = tifffile.xml2dict(tif.ome_metadata or "<OME/>").get("OME", {})
    pixels = (ome.get("Image") or {}).get("Pixels", {}) if isinstance(ome.get("Image"), dict) \
        else {}
    chans = pixels.get("Channel", [])
    chans = chans if isinstance(chans, list) else [chans]
    size = float(pixels.get("PhysicalSizeX", 1.0))

    def rgb(color: int | None) -> str:
        return "FFFFFF" if color is None else f"{(int(color) & 0xFFFFFFFF) >> 8:06X}"

    store = tifffile.imread(args.src, aszarr=True)
    image = da.from_zarr(zarr.open_array(store, mode="r"))  # type: ignore[no-untyped-call]
    omero = {"channels": [{"label": ch.get("Name", f"Channel {i}"), "color": rgb(ch.get("Color")),
                           "active": True,
                           "window": {"min": 0, "max": 65535, "start": 0, "end": 65535}}
                          for i, ch in enumerate(chans)]} if chans else None
    storage: dict[str, object] = {"chunks": (1, 512, 512)}
    if args.cname:
        from zarr.codecs import BloscCodec, BloscShuffle

        storage["compressor"] = BloscCodec(cname=args.cname, clevel=args.clevel,
                                           shuffle=BloscShuffle.shuffle, typesize=2)
    group = zarr.open_group(args.dst, mode="w")
    kwargs = {"omero": omero} if omero else {}
    write_image(image, group, axes="cyx", scale={"y": size, "x": size},
                axes_units={"y": "micrometer", "x": "micrometer"},
                storage_options=storage, **kwargs)
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
