"""Conversion to an S3-compatible object store (a real moto S3 server on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pytest
import zarr

from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.synthetic import SyntheticSpec, render_tile, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.faults import fail_task
from tests.helpers.net import free_port
from tests.helpers.zarrs import attrs_of, values

SPEC = SyntheticSpec(size_y=400, size_x=300, channels=2, tile=128, seed=9)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": endpoint,
                                                   "skip_instance_cache": True})
    fs = fsspec.filesystem("s3")
    fs.mkdir("plexhub-test")
    try:
        yield "s3://plexhub-test"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ome_tiff(tmp_path_factory.mktemp("s3src") / "src.ome.tif", SPEC)


@pytest.mark.s3
def test_convert_to_s3_writes_the_root_metadata_last(s3: str, source: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(chunk_size=64, block_size=128, workers=2, checkpoint_seconds=0.0)
    url = f"{s3}/img.ome.zarr"
    fs = fsspec.filesystem("s3")
    restore = fail_task(monkeypatch, 10, "network dropped")
    with pytest.raises(OSError, match="network dropped"):
        convert(source, url, settings=settings)
    # not committed: no root metadata, so readers see no image yet
    assert not fs.exists(f"{url}/zarr.json")
    assert fs.exists(f"{url}/.plexhub/state.npz")
    restore()
    result = convert(source, url, settings=settings)
    assert result.tasks_resumed > 0
    assert fs.exists(f"{url}/zarr.json")
    assert not fs.exists(f"{url}/.plexhub/state.npz")
    g = zarr.open_group(url, mode="r")
    expect = np.stack([render_tile(SPEC, c, 0, 0, SPEC.size_y, SPEC.size_x) for c in range(2)])
    assert np.array_equal(values(g, "0"), expect)
    assert attrs_of(g)["ome"]["omero"]["channels"][0]["label"] == "DAPI"
    assert fs.exists(f"{url}/histograms/zarr.json")


@pytest.mark.s3
@pytest.mark.slow
def test_dask_workers_without_aws_settings_convert_s3_to_s3(
        tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage options (endpoint, credentials) travel with the tasks: workers started
    without any AWS variable read an S3 source and write an S3 store, and the result is the
    local conversion's, object for object."""
    import os

    import distributed

    from tests.helpers.dask import local_cluster
    from tests.helpers.s3 import files, objects, put_tree, s3_server

    for name in [k for k in os.environ if k.startswith(("AWS_", "FSSPEC_S3"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))  # no shared files either
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with local_cluster() as cluster:  # its workers inherit this environment: no AWS_*
        with distributed.Client(cluster) as client:
            seen = client.run(lambda: sorted(k for k in os.environ if k.startswith("AWS_")
                                             and "FILE" not in k))
        assert all(v == [] for v in seen.values()), seen
        with s3_server(monkeypatch, "incoming", "stores"):  # only the driver knows it
            put_tree(source, "s3://incoming/src.ome.tif")
            settings = Settings(chunk_size=64, block_size=128, checkpoint_seconds=0.0,
                                dask_scheduler=cluster.scheduler_address)
            convert("s3://incoming/src.ome.tif", "s3://stores/img.ome.zarr", settings=settings)
            local = tmp_path / "local.ome.zarr"
            convert(source, local, settings=Settings(chunk_size=64, block_size=128))
            assert objects("s3://stores/img.ome.zarr") == files(local)
