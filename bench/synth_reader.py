"""A plexhub Reader for a *streaming* synthetic image, used by ``bench/memory.py``.

The "file" is a small JSON document naming a :class:`SyntheticSpec`::

    {"plexhub-bench-synthetic": 1, "size_y": 20000, "size_x": 20000, "channels": 4}

``open`` returns ``synthetic_image(spec)`` in a :class:`SourceDocument`: pixels are rendered
region by region while plexhub converts, nothing is held in memory and no OME-TIFF has to be
written first. Regions are rendered in ``render_tile`` x ``render_tile`` pieces (512 by
default, like the tiles a TIFF reader decodes) so that the generator's float64 temporaries stay
small; the generator is tiling-invariant, so the pixels are the same as one big render.

The reader is plugged in through plexhub's public third-party seam, the ``plexhub.readers``
entry-point group: :func:`register` writes a one-file ``*.dist-info`` (just
``entry_points.txt``) into a temporary folder and puts that folder on ``sys.path``, which is
what ``pip install`` of a plugin package would do. Nothing in plexhub is patched.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plexhub.ome_pipeline.readers.base import Reader
from plexhub.ome_pipeline.source import Array, PixelSource, SourceDocument
from plexhub.ome_pipeline.synthetic import SyntheticSpec, synthetic_image

MAGIC = "plexhub-bench-synthetic"
READER_NAME = "bench-synthetic"


class TiledRender(PixelSource):
    """Serve any region of ``inner`` by rendering it in fixed-size pieces."""

    def __init__(self, inner: PixelSource, tile: int) -> None:
        self.inner, self.tile = inner, tile

    def read(self, t: int, z: int, channels: Sequence[int], ys: slice, xs: slice) -> Array:
        if self.tile <= 0:
            return self.inner.read(t, z, channels, ys, xs)
        out: Array | None = None
        step = self.tile
        for y in range(ys.start, ys.stop, step):
            for x in range(xs.start, xs.stop, step):
                yy = slice(y, min(y + step, ys.stop))
                xx = slice(x, min(x + step, xs.stop))
                piece = self.inner.read(t, z, channels, yy, xx)
                if out is None:
                    out = np.empty((len(channels), ys.stop - ys.start, xs.stop - xs.start),
                                   piece.dtype)
                out[:, y - ys.start:yy.stop - ys.start, x - xs.start:xx.stop - xs.start] = piece
        assert out is not None
        return out


class SyntheticSpecReader(Reader):
    name = READER_NAME
    description = "bench: a streaming synthetic mIF image described by a JSON spec"

    @classmethod
    def can_open(cls, path: str, head: bytes) -> bool:
        return MAGIC.encode() in head[:64]

    def open(self, path: str) -> SourceDocument:
        doc: dict[str, Any] = json.loads(Path(path).read_text())
        render_tile = int(doc.pop("render_tile", 512))
        doc.pop(MAGIC, None)
        spec = SyntheticSpec(**doc)
        image = synthetic_image(spec)
        image.pixels = TiledRender(image.pixels, render_tile)
        return SourceDocument(path=path, format=READER_NAME, images=[image])


def write_spec(path: Path, spec: SyntheticSpec, render_tile: int = 512) -> Path:
    fields = {k: getattr(spec, k) for k in ("size_y", "size_x", "channels", "dtype", "seed",
                                            "tile", "pixel_size")}
    path.write_text(json.dumps({MAGIC: 1, **fields, "render_tile": render_tile}))
    return path


def register() -> None:
    """Make ``SyntheticSpecReader`` visible as the entry point ``bench-synthetic``."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    site = Path(tempfile.mkdtemp(prefix="plexhub-bench-ep-"))
    dist = site / "plexhub_bench_synthetic-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plexhub-bench-synthetic\n"
                                   "Version: 0.0\n")
    (dist / "entry_points.txt").write_text(
        f"[plexhub.readers]\n{READER_NAME} = synth_reader:SyntheticSpecReader\n")
    sys.path.append(str(site))
