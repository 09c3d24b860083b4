"""Imaging mass cytometry ``.txt`` exports (one acquisition as a table), through readimc.

CyTOF software writes each acquisition as tab-separated text: ``Start_push``, ``End_push``,
``Pushes_duration``, ``X``, ``Y``, ``Z``, then one column per channel named
``<label>(<metal><mass>Di)``. The image is one float32 acquisition labelled like the ``.mcd``
route labels it (the panel's channel label), at the same 1 µm pixel the ``.mcd`` route uses.
"""

from __future__ import annotations

import os
from pathlib import Path

from plexhub.errors import CorruptFileError, InputError
from plexhub.model import PhysicalSize
from plexhub.ome_pipeline.readers.base import Reader
from plexhub.ome_pipeline.readers.mcd import DEFAULT_PIXEL_UM
from plexhub.ome_pipeline.source import ArrayPixels, ChannelMeta, SourceDocument, SourceImage

HEADER = b"Start_push\tEnd_push\tPushes_duration\tX\tY\tZ\t"
MAX_TXT_BYTES = 4 * 2**30  # read whole into memory: a text export larger than this is refused


class ImcTxtReader(Reader):
    name = "imc-txt"
    description = "IMC .txt acquisition export (CyTOF software), through readimc"

    @classmethod
    def can_open(cls, path: str, head: bytes) -> bool:
        return head.lstrip(b"\xef\xbb\xbf").startswith(HEADER)

    def open(self, path: str) -> SourceDocument:
        from readimc import TXTFile

        size = os.path.getsize(path)
        if size > MAX_TXT_BYTES:
            raise InputError(path, f"is {size:,} bytes, more than the {MAX_TXT_BYTES:,} an IMC "
                             ".txt export may have here", "convert the .mcd it came from")
        try:
            with TXTFile(path) as f:
                data = f.read_acquisition()
                labels = [label or f"{metal}{mass}" for label, metal, mass in
                          zip(f.channel_labels, f.channel_metals, f.channel_masses,
                              strict=True)]
        except (OSError, ValueError, KeyError) as exc:
            raise CorruptFileError(path, f"is not a readable IMC .txt export ({exc})",
                                   "the file may be truncated or edited; export it again") \
                from exc
        pixels = data[None, :, None]  # (t, c, z, y, x)
        um = PhysicalSize(DEFAULT_PIXEL_UM, "micrometer")
        image = SourceImage(name=Path(path).stem, shape=pixels.shape, dtype=pixels.dtype,
                            pixels=ArrayPixels(pixels),
                            channels=[ChannelMeta(label=label) for label in labels],
                            physical_sizes={"y": um, "x": um})
        return SourceDocument(path=path, format=self.name, images=[image])
