"""Outputs of the real sample files, converted once per session for the interop tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from plexhub.ome_pipeline import convert
from plexhub.settings import Settings

SAMPLES = {
    "qptiff": "qptiff/small_vectra.qptiff",
    "svs": "svs/tcga-cr-7395-01a-01-ts1.svs",
    "imc-ome-tiff": "imc/20210305_NE_mockData2_s0_a1_ac.ome.tiff",
    "czi": "czi/CellDivision_T3_Z5_CH2_X240_Y170.czi",
}


@pytest.fixture(scope="session")
def converted(real: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> store: each sample as NGFF 0.5, and the QPTIFF also as 0.4."""
    out = tmp_path_factory.mktemp("interop")
    settings = Settings(data_dir=out / "data")
    stores = {}
    for name, rel in SAMPLES.items():
        stores[name] = out / f"{name}.ome.zarr"
        convert(real / rel, stores[name], settings=settings, show_progress=False)
    stores["qptiff-0.4"] = out / "qptiff-0.4.ome.zarr"
    convert(real / SAMPLES["qptiff"], stores["qptiff-0.4"], ngff_version="0.4",
            settings=settings, show_progress=False)
    return stores
