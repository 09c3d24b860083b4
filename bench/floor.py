"""The conversion FLOOR: decode every source tile once, Blosc-encode it, write it as level 0.

No pyramid, no histograms, no metadata beyond one Zarr v3 array: the least work any
OME-TIFF -> OME-Zarr converter must do, and so the yardstick for plexhub's overhead
(``bench/convert.py`` runs it as the "floor" tool).

How: the TIFF's tiles (512 x 512, deflate) are exactly the output chunks. Two threads each take
(channel, tile) jobs: ``os.pread`` the compressed tile, decode it with the page's own tifffile
decoder (imagecodecs, GIL released), pad an edge tile to 512 x 512, encode it with numcodecs
Blosc (same cname / level / byte-shuffle as plexhub, GIL released) and write it as one chunk
file at its Zarr v3 key ``c/<c>/<ty>/<tx>``. zarr-python only writes the array metadata.

    python bench/floor.py SRC.ome.tif DST.zarr [--cname lz4] [--clevel 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, BloscShuffle


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--cname", default="lz4")
    ap.add_argument("--clevel", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    tif = tifffile.TiffFile(args.src)
    # TiffPage (the first) and TiffFrames (the others: same layout, own offsets and decode)
    pages: list[Any] = list(tif.series[0].pages)
    first = pages[0]
    if not first.is_tiled:
        raise SystemExit("floor.py needs a tiled TIFF")
    th, tw = first.tilelength, first.tilewidth
    h, w = first.shape[:2]
    dtype = first.dtype
    if dtype is None:
        raise SystemExit("floor.py needs a TIFF of one sample type")
    nty, ntx = math.ceil(h / th), math.ceil(w / tw)

    zarr.create_array(store=zarr.storage.LocalStore(args.dst), shape=(len(pages), h, w),
                      chunks=(1, th, tw), dtype=dtype, fill_value=0, zarr_format=3,
                      dimension_names=["c", "y", "x"],
                      compressors=BloscCodec(cname=args.cname, clevel=args.clevel,
                                             shuffle=BloscShuffle.shuffle,
                                             typesize=dtype.itemsize),
                      overwrite=True)
    blosc = Blosc(cname=args.cname, clevel=args.clevel, shuffle=Blosc.SHUFFLE)
    fd = os.open(args.src, os.O_RDONLY)
    root = Path(args.dst)
    for c in range(len(pages)):
        for ty in range(nty):
            (root / "c" / str(c) / str(ty)).mkdir(parents=True, exist_ok=True)

    def job(c: int, i: int) -> None:
        page = pages[c]
        data = os.pread(fd, page.databytecounts[i], page.dataoffsets[i])
        tile, _, _ = page.decode(data, i, jpegtables=page.jpegtables)
        assert tile is not None, f"tile {i} of page {c} decoded to nothing"
        tile = tile.reshape(tile.shape[-3], tile.shape[-2])  # (1, 1, h, w, 1) -> (h, w)
        if tile.shape != (th, tw):
            tile = np.pad(tile, ((0, th - tile.shape[0]), (0, tw - tile.shape[1])))
        ty, tx = divmod(i, ntx)
        with open(root / "c" / str(c) / str(ty) / str(tx), "wb") as fh:
            fh.write(blosc.encode(np.ascontiguousarray(tile, dtype.newbyteorder("<"))))

    with ThreadPoolExecutor(args.workers) as pool:
        for f in [pool.submit(job, c, i) for c in range(len(pages)) for i in range(nty * ntx)]:
            f.result()
    os.close(fd)
    tif.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
