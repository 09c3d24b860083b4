"""Every third-party sample in shared/data/real converts, at both NGFF versions; level 0 equals
what the format's own library reads, channel names match MANIFEST.md, and ome-zarr-py opens
the result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.readers import detect_reader
from tests.helpers.zarrs import array_at


def tiff_cyx(path: Path) -> np.ndarray:
    a = tifffile.imread(path, series=0)
    return np.moveaxis(a, -1, 0) if a.ndim == 3 and a.shape[-1] == 3 else a


def zarr_level0(rel: str) -> Callable[[Path], np.ndarray]:
    return lambda path: np.asarray(zarr.open_array(f"{path}/{rel}", mode="r")[...])


def mcd_acquisition(index: int) -> Callable[[Path], np.ndarray]:
    def read(path: Path) -> np.ndarray:
        from readimc import MCDFile

        with MCDFile(path) as f:
            acq = [a for s in f.slides for a in s.acquisitions][index]
            return np.asarray(f.read_acquisition(acq))
    return read


# path, reader, image key in the output, expected level-0 array, channel names (None: unnamed)
CASES: list[tuple[str, str, str, Callable[[Path], Any], list[str] | None]] = [
    ("qptiff/small_vectra.qptiff", "qptiff", "", tiff_cyx, ["DAPI", "FITC", "Cy3"]),
    ("svs/tcga-cr-7395-01a-01-ts1.svs", "svs", "", tiff_cyx, ["R", "G", "B"]),
    ("imc/20210305_NE_mockData2_s0_a1_ac.ome.tiff", "ome-tiff", "", tiff_cyx,
     ["107Ag", "Cytoker_651((3356))Pr141", "Laminin_681((851))Sm147",
      "YBX1_2987((3532))Eu153", "H3K27Ac_1977((2242))Yb172"]),
    ("imc/20210305_NE_mockData2_s0_a1_ac_ilastik_s2_Probabilities_mask.tiff", "tiff", "",
     lambda p: tifffile.imread(p)[None], None),
    ("imc/20210305_NE_mockData2.mcd", "mcd", "0", mcd_acquisition(0),
     ["107Ag", "Cytoker_651((3356))Pr141", "Laminin_681((851))Sm147",
      "YBX1_2987((3532))Eu153", "H3K27Ac_1977((2242))Yb172"]),
    ("imc/20210305_NE_mockData2.mcd", "mcd", "2", mcd_acquisition(2), None),
    ("labels/E34_imc.tiff", "tiff", "", tiff_cyx, None),
    ("labels/E34_mask.tiff", "tiff", "", lambda p: tifffile.imread(p)[None], None),
    ("czi/DAPI_GFP.czi", "czi", "", lambda p: __import__("czifile").imread(p)[0, :, :, :, 0],
     ["DAPI", "GFP"]),
    ("czi/CellDivision_T3_Z5_CH2_X240_Y170.czi", "czi", "",
     lambda p: __import__("czifile").imread(p)[0, ..., 0], ["LED555", "LED470"]),
    ("ome-zarr/exemplar-001.crop.image.ome.zarr", "ome-zarr", "", zarr_level0("0"),
     ["DNA", "FDX1", "CD1D", "CD357"]),
    ("ome-zarr/exemplar-001.crop.segmentations.ome.zarr", "ome-zarr", "", zarr_level0("0"),
     ["cell", "circle"]),
    ("ome-zarr/blobs_image_v04.ome.zarr", "ome-zarr", "", zarr_level0("0"), ["0", "1", "2"]),
    ("ome-zarr/blobs_image_v05.ome.zarr", "ome-zarr", "", zarr_level0("0"), ["0", "1", "2"]),
    ("ome-zarr/spatialdata-0.7/blobs.sdata.zarr", "ome-zarr", "0",
     zarr_level0("images/blobs_image/s0"), ["0", "1", "2"]),
    ("ome-zarr/spatialdata-0.7/blobs.sdata.zarr", "ome-zarr", "1",
     zarr_level0("images/blobs_multiscale_image/s0"), ["0", "1", "2"]),
]


def ome(group: zarr.Group) -> dict[str, Any]:
    attrs = dict(group.attrs)
    found = attrs.get("ome", attrs)
    assert isinstance(found, dict)
    return dict(found)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
@pytest.mark.parametrize(("rel", "reader", "key", "expected", "names"), CASES,
                         ids=[f"{c[0]}[{c[2] or '.'}]" for c in CASES])
def test_real_file_converts_exactly(real: Path, tmp_path: Path, rel: str, reader: str,
                                   key: str, expected: Callable[[Path], Any],
                                   names: list[str] | None, version: str) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    src = real / rel
    assert detect_reader(str(src)).name == reader
    dst = tmp_path / "out.ome.zarr"
    convert(src, dst, ngff_version=version)
    image = zarr.open_group(dst / key if key else dst, mode="r")
    level0 = np.asarray(array_at(image, "0")[...])
    assert np.array_equal(level0, expected(src))
    meta = ome(image)
    if names is not None:
        assert [c["label"] for c in meta["omero"]["channels"]] == names
    assert meta.get("version", meta["multiscales"][0].get("version")) == version
    nodes = list(Reader(parse_url(str(dst / key if key else dst)))())
    assert np.array_equal(np.asarray(nodes[0].data[0]), level0)
