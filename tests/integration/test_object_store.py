"""Conversion to an S3-compatible object store (a real moto S3 server on loopback)."""

from __future__ import annotations

import urllib.request
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
    # moto keeps its buckets in process-wide memory: start from none
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset",
                                                  method="POST"), timeout=10).close()
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
def test_s3_conversion_validates_what_it_wrote_and_sends_the_metadata_together(
        s3: str, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store is validated from the metadata documents as written (each PUT checked
    against the server's CRC32), never read back: those documents are the store's objects
    byte for byte. The metadata goes out after the pixels, the root document last, and the
    store is the local conversion's, object for object."""
    from plexhub.ome_pipeline.chunkio import OutputStore
    from plexhub.ome_pipeline.validate import validate_store

    uploads: list[str] = []
    real = OutputStore._upload

    def recorded(self: OutputStore, key: str, body: bytes) -> None:
        real(self, key, body)
        uploads.append(key)

    monkeypatch.setattr(OutputStore, "_upload", recorded)
    given: dict[str, bytes] = {}

    def validate(path: str, expect_version: str | None = None,
                 documents: dict[str, bytes] | None = None) -> list[str]:
        assert documents is not None, "an object store is validated from what was written"
        given.update(documents)
        return validate_store(path, expect_version=expect_version, documents=documents)

    settings = Settings(chunk_size=64, block_size=128, workers=2)
    url = f"{s3}/img.ome.zarr"
    convert(source, url, settings=settings, validate=validate)
    fs = fsspec.filesystem("s3")
    base = url.removeprefix("s3://")
    stored = {name[len(base) + 1:]: bytes(fs.cat_file(name)) for name in sorted(fs.find(base))}
    assert uploads[-1] == "zarr.json"  # the commit marker
    meta = {k for k in stored if k.rsplit("/", 1)[-1] == "zarr.json"}
    assert set(given) == meta
    assert all(given[k] == stored[k] for k in meta)
    group_docs = [i for i, k in enumerate(uploads) if k in ("OME/zarr.json",
                                                            "histograms/zarr.json")]
    shards = [i for i, k in enumerate(uploads) if "/c/" in k]
    assert min(group_docs) > max(shards)
    local = tmp_path / "local.ome.zarr"
    convert(source, local, settings=settings)
    assert stored == {f.relative_to(local).as_posix(): f.read_bytes()
                      for f in sorted(local.rglob("*")) if f.is_file()}
    # a document that does not hold up fails the validation, as on disk
    bad = dict(given)
    root = bad["zarr.json"].replace(b'"color": "', b'"color": "#')
    assert root != bad["zarr.json"]
    from plexhub.errors import ValidationError

    with pytest.raises(ValidationError, match="colour"):
        validate_store(url, documents={**bad, "zarr.json": root})


@pytest.mark.s3
def test_a_put_whose_stored_checksum_differs_fails_and_a_failed_batch_writes_nothing(
        s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from plexhub.ome_pipeline.chunkio import OutputStore

    store = OutputStore(f"{s3}/x.ome.zarr")
    fs = fsspec.filesystem("s3")
    answer = store.fs.pipe_file(store.object_path("probe"), b"probe")
    assert answer.get("ChecksumCRC32"), "the server reports the CRC32 of what it stored"

    def failing_batch() -> None:
        with store.batch(last="zarr.json"):
            store.put_json("zarr.json", {"zarr_format": 3})
            store.put_json("0/zarr.json", {"zarr_format": 3})
            assert store.get_json("0/zarr.json") == {"zarr_format": 3}  # seen in the batch
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        failing_batch()
    assert not fs.exists(f"{s3}/x.ome.zarr/zarr.json")
    assert not fs.exists(f"{s3}/x.ome.zarr/0/zarr.json")
    real = store.fs.pipe_file
    monkeypatch.setattr(store.fs, "pipe_file", lambda path, data, **kw: {
        **real(path, data, **kw), "ChecksumCRC32": "AAAAAA=="})
    with pytest.raises(OSError, match="other bytes than were sent"):
        store.put("0/c/0/0/0", b"pixels")


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
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # nor an instance role to ask
    with local_cluster() as cluster:  # its workers inherit this environment: no AWS_*
        with distributed.Client(cluster) as client:
            seen = client.run(lambda: sorted(k for k in os.environ if k.startswith("AWS_")
                                             and "FILE" not in k and "METADATA" not in k))
        assert all(v == [] for v in seen.values()), seen
        with s3_server(monkeypatch, "incoming", "stores"):  # only the driver knows it
            put_tree(source, "s3://incoming/src.ome.tif")
            settings = Settings(chunk_size=64, block_size=128, checkpoint_seconds=0.0,
                                dask_scheduler=cluster.scheduler_address)
            convert("s3://incoming/src.ome.tif", "s3://stores/img.ome.zarr", settings=settings)
            local = tmp_path / "local.ome.zarr"
            convert(source, local, settings=Settings(chunk_size=64, block_size=128))
            assert objects("s3://stores/img.ome.zarr") == files(local)
            # every submission carries the credentials the driver holds then: rotated ones
            # reach the next task (as a worker unpickles it), none are logged or shown
            from plexhub.ome_pipeline.chunkio import OutputStore
            from plexhub.storage import forget_credentials, forwarding_credentials

            store = OutputStore("s3://stores/probe")
            assert store.options is not None
            assert "key" not in store.options.options  # nothing frozen in the driver
            with distributed.Client(cluster) as client:
                def sent() -> str:
                    with forwarding_credentials():
                        return str(client.submit(_key_seen, store, pure=False).result())

                first = os.environ["AWS_ACCESS_KEY_ID"]
                assert sent() == first
                monkeypatch.setenv("AWS_ACCESS_KEY_ID", "rotated-key-id")
                forget_credentials()  # (the TTL, 30 s, elapsed)
                assert sent() == "rotated-key-id"
                monkeypatch.setenv("AWS_ACCESS_KEY_ID", first)
                forget_credentials()
            # workers with their own credentials (IRSA, instance profiles): nothing is
            # forwarded, so these workers, which have none, cannot read the source
            off = settings.model_copy(update={"dask_forward_credentials": False})
            with pytest.raises(Exception, match=r"(?i)credentials"):
                convert("s3://incoming/src.ome.tif", "s3://stores/off.ome.zarr", settings=off)


def _key_seen(store: object) -> str:
    """In a Dask worker: the access key the store's options brought along (or 'none')."""
    options = getattr(store, "options", None)
    return str(getattr(options, "options", {}).get("key", "none"))
