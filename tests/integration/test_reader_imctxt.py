"""IMC .txt exports (issue 17, item 4): read through readimc, the same pixels, channel labels
and pixel size as the .mcd acquisition they came from; the reader passes the conformance kit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plexhub.ome_pipeline import convert, open_source
from plexhub.ome_pipeline.readers.imctxt import ImcTxtReader
from plexhub.ome_pipeline.readers.testing import ReaderTests
from tests.helpers.zarrs import read

MCD = "imc/20210305_NE_mockData2.mcd"


def write_txt(mcd: Path, out: Path) -> tuple[np.ndarray, list[str]]:
    """The first acquisition of ``mcd`` as the CyTOF software's .txt export."""
    from readimc import MCDFile

    with MCDFile(mcd) as f:
        acq = f.slides[0].acquisitions[0]
        data = f.read_acquisition(acq)
        labels, metals, masses = acq.channel_labels, acq.channel_metals, acq.channel_masses
    _, h, w = data.shape
    cols = ["Start_push", "End_push", "Pushes_duration", "X", "Y", "Z"] + [
        f"{lab}({metal}{mass}Di)" for lab, metal, mass in zip(labels, metals, masses,
                                                              strict=True)]
    rows = ["\t".join(cols)]
    for y in range(h):
        for x in range(w):
            vals = [str(x + y * w), str(x + y * w + 1), "1", str(x), str(y), "0"]
            rows.append("\t".join(vals + [repr(float(v)) for v in data[:, y, x]]))
    out.write_text("\r\n".join(rows) + "\r\n")
    return data, list(labels)


@pytest.fixture(scope="module")
def txt(real: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray,
                                                                       list[str]]:
    path = tmp_path_factory.mktemp("imc") / "20210305_NE_mockData2_ROI_001_1.txt"
    data, labels = write_txt(real / MCD, path)
    return path, data, labels


class TestImcTxtReader(ReaderTests):
    reader_cls = ImcTxtReader

    @pytest.fixture
    def sample(self, txt: tuple[Path, np.ndarray, list[str]]) -> Path:
        return txt[0]


def test_a_txt_export_converts_like_its_mcd_acquisition(
        txt: tuple[Path, np.ndarray, list[str]], real: Path, tmp_path: Path) -> None:
    path, data, labels = txt
    doc = open_source(path)
    assert doc.format == "imc-txt"
    [image] = doc.images
    assert [ch.label for ch in image.channels] == labels
    mcd_image = open_source(real / MCD).images[0]
    assert image.physical_sizes == mcd_image.physical_sizes
    dst = tmp_path / "txt.ome.zarr"
    convert(path, dst)
    assert np.array_equal(read(dst), data)
