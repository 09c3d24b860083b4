"""Conversion on a dask.distributed cluster (worker processes) equals the local one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.dask import local_cluster, port_held
from tests.helpers.zarrs import array_at
from tests.helpers.zarrs import level as zarr_level


@pytest.fixture
def dashboard_port_busy() -> Iterator[None]:
    """Port 8787 taken, as on a machine where someone already runs a Dask cluster."""
    with port_held():
        yield


@pytest.mark.slow
@pytest.mark.usefixtures("dashboard_port_busy")
def test_distributed_scheduler_gives_the_local_result(tmp_path: Path, real: Path) -> None:
    src = write_ome_tiff(tmp_path / "src.ome.tif",
                         SyntheticSpec(size_y=700, size_x=600, channels=2, tile=128, seed=2))
    local = Settings(chunk_size=64, block_size=128, workers=2)
    convert(src, tmp_path / "local.zarr", settings=local)
    with local_cluster() as cluster:
        remote = local.model_copy(update={"dask_scheduler": cluster.scheduler_address})
        convert(src, tmp_path / "dist.zarr", settings=remote)
        # a reader that is not TIFF-based travels to the workers too
        convert(real / "czi" / "CellDivision_T3_Z5_CH2_X240_Y170.czi", tmp_path / "czi.zarr",
                settings=remote)
    a = zarr.open_group(tmp_path / "local.zarr", mode="r")
    b = zarr.open_group(tmp_path / "dist.zarr", mode="r")
    for level in ("0", "1", "2"):
        assert np.array_equal(np.asarray(array_at(a, level)[:]),
                              np.asarray(array_at(b, level)[:])), level
    assert (tmp_path / "local.zarr" / "histograms" / "zarr.json").read_text() == \
        (tmp_path / "dist.zarr" / "histograms" / "zarr.json").read_text()
    assert zarr_level(tmp_path / "czi.zarr").shape == (3, 2, 5, 170, 240)


@pytest.mark.slow
@pytest.mark.usefixtures("dashboard_port_busy")
def test_relative_paths_and_the_scheduler_flag(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers run in another folder: a relative source is resolved before it is sent,
    from the Python API and from `plexhub convert --scheduler ADDRESS`; one client connects
    for the whole conversion."""
    here = tmp_path / "here"
    here.mkdir()
    write_ome_tiff(here / "src.ome.tif",
                   SyntheticSpec(size_y=700, size_x=600, channels=2, tile=128, seed=4))
    local = Settings(chunk_size=64, block_size=128, workers=2)
    convert(here / "src.ome.tif", tmp_path / "local.zarr", settings=local)
    import distributed

    clients: list[str] = []
    connect = distributed.Client.__init__

    def counted(self: distributed.Client, *args: Any, **kwargs: Any) -> None:
        clients.append(str(args[0] if args else kwargs.get("address")))
        connect(self, *args, **kwargs)

    with local_cluster() as cluster:  # its workers' folder: this process's, not `here`
        address = cluster.scheduler_address
        monkeypatch.chdir(here)
        monkeypatch.setattr(distributed.Client, "__init__", counted)
        result = convert("src.ome.tif", "api.zarr",
                         settings=local.model_copy(update={"dask_scheduler": address}))
        assert len(result.images[0].levels) == 3  # two passes at block 128 (not 1 as at
        assert clients == [address]  # 300 x 260): on one client
        env = {**os.environ, "PLEXHUB_CHUNK_SIZE": "64", "PLEXHUB_BLOCK_SIZE": "128"}
        env.pop("PLEXHUB_DASK_SCHEDULER", None)
        res = subprocess.run([sys.executable, "-m", "plexhub", "convert", "src.ome.tif",
                              "cli.zarr", "--scheduler", address, "-q"], cwd=here, env=env,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
    a = zarr.open_group(tmp_path / "local.zarr", mode="r")
    for name in ("api.zarr", "cli.zarr"):
        b = zarr.open_group(here / name, mode="r")
        for level in ("0", "1"):
            assert np.array_equal(np.asarray(array_at(a, level)[:]),
                                  np.asarray(array_at(b, level)[:])), (name, level)
    assert not list(here.glob(".*.partial"))
