"""Every built-in reader passes the shipped conformance kit
(:class:`plexhub.ome_pipeline.readers.testing.ReaderTests`) on a real third-party file."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from plexhub.ome_pipeline.readers.base import Reader
from plexhub.ome_pipeline.readers.czi import CziReader
from plexhub.ome_pipeline.readers.mcd import McdReader
from plexhub.ome_pipeline.readers.omezarr import OmeZarrReader
from plexhub.ome_pipeline.readers.testing import ReaderTests
from plexhub.ome_pipeline.readers.tiff import OmeTiffReader, QptiffReader, SvsReader, TiffReader


class _RealSample(ReaderTests):
    relative: ClassVar[str]

    @pytest.fixture
    def sample(self, real: Path) -> Path:
        return real / self.relative


class TestOmeZarrReader(_RealSample):
    reader_cls: ClassVar[type[Reader]] = OmeZarrReader
    relative = "ome-zarr/exemplar-001.crop.image.ome.zarr"


class TestOmeZarrV3Reader(_RealSample):
    reader_cls: ClassVar[type[Reader]] = OmeZarrReader
    relative = "ome-zarr/blobs_image_v05.ome.zarr"


class TestCziReader(_RealSample):
    reader_cls: ClassVar[type[Reader]] = CziReader
    relative = "czi/DAPI_GFP.czi"


class TestMcdReader(_RealSample):
    reader_cls: ClassVar[type[Reader]] = McdReader
    relative = "imc/20210305_NE_mockData2.mcd"


class TestOmeTiffReader(_RealSample):
    reader_cls: ClassVar[type[Reader]] = OmeTiffReader
    relative = "imc/20210305_NE_mockData2_s0_a1_ac.ome.tiff"


class TestQptiffReader(_RealSample):
    reader_cls: ClassVar[type[Reader]] = QptiffReader
    relative = "qptiff/small_vectra.qptiff"


class TestSvsReader(_RealSample):
    reader_cls: ClassVar[type[Reader]] = SvsReader
    relative = "svs/tcga-cr-7395-01a-01-ts1.svs"


class TestTiffReader(_RealSample):
    reader_cls: ClassVar[type[Reader]] = TiffReader
    relative = "labels/E34_imc.tiff"
