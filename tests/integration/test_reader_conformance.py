"""Every built-in reader passes the shipped conformance kit
(:class:`plexhub.ome_pipeline.readers.testing.ReaderTests`) on a real third-party file."""

from __future__ import annotations

from pathlib import Path

import pytest

from plexhub.ome_pipeline.readers.base import Reader
from plexhub.ome_pipeline.readers.czi import CziReader
from plexhub.ome_pipeline.readers.mcd import McdReader
from plexhub.ome_pipeline.readers.omezarr import OmeZarrReader
from plexhub.ome_pipeline.readers.testing import ReaderTests
from plexhub.ome_pipeline.readers.tiff import OmeTiffReader, QptiffReader, SvsReader, TiffReader


def kit(reader: type[Reader], relative: str) -> type[ReaderTests]:
    """The conformance tests of ``reader`` on ``shared/data/real/<relative>``."""

    class Kit(ReaderTests):
        reader_cls = reader

        @pytest.fixture
        def sample(self, real: Path) -> Path:
            return real / relative

    return Kit


TestOmeZarrReader = kit(OmeZarrReader, "ome-zarr/exemplar-001.crop.image.ome.zarr")
TestOmeZarrV3Reader = kit(OmeZarrReader, "ome-zarr/blobs_image_v05.ome.zarr")
TestCziReader = kit(CziReader, "czi/DAPI_GFP.czi")
TestMcdReader = kit(McdReader, "imc/20210305_NE_mockData2.mcd")
TestOmeTiffReader = kit(OmeTiffReader, "imc/20210305_NE_mockData2_s0_a1_ac.ome.tiff")
TestQptiffReader = kit(QptiffReader, "qptiff/small_vectra.qptiff")
TestSvsReader = kit(SvsReader, "svs/tcga-cr-7395-01a-01-ts1.svs")
TestTiffReader = kit(TiffReader, "labels/E34_imc.tiff")
