"""The service on object storage (issue 15): stores written to ``PLEXHUB_STORE_ROOT=s3://…``,
sources ingested from ``s3://`` ingest roots, and every route that reads a store answering
from S3 exactly as from a local disk. A real S3-compatible server (moto's) on loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from plexhub.ome_pipeline import convert
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from plexhub.settings import Settings
from tests.helpers.api import ADMIN, Api
from tests.helpers.s3 import AWS, files, objects, put_tree, s3_server

pytestmark = pytest.mark.s3
SPEC = SyntheticSpec(size_y=700, size_x=600, channels=3, tile=128, seed=4)
ROOT = "s3://plexhub-stores/prod"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    return write_ome_tiff(tmp_path / "src" / "slide.ome.tif", SPEC)


def _api(tmp_path: Path, name: str, store_root: str | None) -> Iterator[Api]:
    from plexhub.api.main import create_app

    data = tmp_path / name
    incoming = data / "incoming"
    incoming.mkdir(parents=True)
    settings = Settings(data_dir=data, admin_token=SecretStr(ADMIN), chunk_size=128,
                        block_size=256, store_root=store_root,
                        ingest_roots=[str(incoming), "s3://incoming"])
    with TestClient(create_app(settings, migrate=True)) as client:
        api = Api(client, settings, incoming)
        api.study("S1")
        yield api


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    with s3_server(monkeypatch, "plexhub-stores", "incoming", "other"):
        yield from _api(tmp_path, "remote", ROOT)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Api]:
    yield from _api(tmp_path, "local", None)


def _ingest(api: Api, source: str) -> str:
    r = api.post("/api/v1/studies/S1/images", {"source": source})
    assert r.status_code == 202, r.text
    job = api.wait_job(r.json()["job_id"])
    assert job["state"] == "done", job
    return str(r.json()["image_id"])


def _no_local_store(api: Api) -> None:
    """Nothing of a store (nor a .partial) on local disk when the root is remote."""
    written = [p.relative_to(api.settings.data_dir).as_posix()
               for p in api.settings.data_dir.rglob("*")]
    assert not [p for p in written if "zarr" in p or "partial" in p or
                p.startswith("stores")], written


def test_stores_on_s3_serve_every_route_as_a_local_store_does(
        remote: Api, local: Api, source: Path) -> None:
    remote.add_file(source)
    local.add_file(source)
    image = _ingest(remote, "slide.ome.tif")
    mine = _ingest(local, "slide.ome.tif")
    _no_local_store(remote)
    # byte-identical to the local conversion, every object
    (store,) = (local.settings.stores_dir / "S1").iterdir()
    on_s3 = objects(f"{ROOT}/S1/{store.name}")
    assert on_s3 == files(store)
    # the catalog keeps the location relative to the named root, never the bucket
    with remote.client.app.state.plexhub.db.session() as s:  # type: ignore[attr-defined]
        from plexhub.api.models import Image

        row = s.get(Image, image)
        assert row is not None
        assert (row.storage_root, row.store_uri) == ("stores", f"S1/{store.name}")
    shard = next(k for k in on_s3 if k.startswith("0/c/"))  # a shard of level 0
    saved = local.post(f"/api/v1/images/{mine}/presets", _preset()).json()
    saved_remote = remote.post(f"/api/v1/images/{image}/presets", _preset()).json()
    pairs = [
        ("tiles/0/0/0.png", {}), ("tiles/0/1/0.jpeg", {}), ("tiles/1/0/0.png", {}),
        ("tiles/0/0/1.webp", {"preset": "{id}"}), ("image.dzi", {}),
        ("image_files/10/0_0.jpeg", {}), ("thumbnail.png", {"max": "128"}),
        ("zarr/zarr.json", {}), ("zarr/0/zarr.json", {}), (f"zarr/{shard}", {}),
        ("zarr/histograms/zarr.json", {}), ("zarr/OME/METADATA.ome.xml", {}),
        ("autocontrast", {}), ("presets", {}),
    ]
    for path, params in pairs:
        got = remote.get(f"/api/v1/images/{image}/{path}", params={
            k: v.format(id=saved_remote["id"]) for k, v in params.items()})
        want = local.get(f"/api/v1/images/{mine}/{path}", params={
            k: v.format(id=saved["id"]) for k, v in params.items()})
        assert got.status_code == want.status_code == 200, (path, got.text)
        assert got.headers["content-type"] == want.headers["content-type"], path
        if path == "presets":  # ids differ between the two catalogs
            assert [p["name"] for p in got.json()] == [p["name"] for p in want.json()]
        else:
            assert got.content == want.content, path
    region = "render_image_region/{}/0/0/"
    got = remote.get(f"/webgateway/{region.format(image)}", params={"tile": "0,0,0"})
    want = local.get(f"/webgateway/{region.format(mine)}", params={"tile": "0,0,0"})
    assert got.status_code == want.status_code == 200, got.text
    assert got.content == want.content
    # the raw zarr route serves the objects unmodified; a missing one is a 404
    assert remote.get(f"/api/v1/images/{image}/zarr/{shard}").content == on_s3[shard]
    assert remote.get(f"/api/v1/images/{image}/zarr/0/c/9/9/9").status_code == 404
    # byte ranges answered as a local file answers them (zarr-python over HTTP, the notebook
    # viewer of an API image, reads a shard's index as its last bytes)
    size = len(on_s3[shard])
    for ranged in ("bytes=-20", "bytes=4-15", "bytes=100-", f"bytes=10-{size + 50}",
                   f"bytes={size}-"):
        got = remote.client.get(f"/api/v1/images/{image}/zarr/{shard}",
                                headers={**remote.h(ADMIN), "Range": ranged})
        want = local.client.get(f"/api/v1/images/{mine}/zarr/{shard}",
                                headers={**local.h(ADMIN), "Range": ranged})
        assert got.status_code == want.status_code, (ranged, got.status_code)
        assert got.headers.get("content-range") == want.headers.get("content-range"), ranged
        if got.status_code == 206:
            assert got.content == want.content, ranged
        # the store's bytes stay inert, ranged or not: never sniffed, never active content
        assert got.headers["x-content-type-options"] == "nosniff", ranged
        assert "sandbox" in got.headers["content-security-policy"], ranged
        assert got.headers.get("content-type", "application/octet-stream") \
            == "application/octet-stream", ranged  # a 416 has no body
    # the cell table: 404 until analysed; then the same table from S3 as from disk
    assert remote.get(f"/api/v1/images/{image}/cells").status_code == 404
    from plexhub.ome_pipeline.analysis import analyze

    analyze(store, nuclear="DAPI", block=512, show_progress=False)
    put_tree(store / "tables", f"{ROOT}/S1/{store.name}/tables")
    got = remote.get(f"/api/v1/images/{image}/cells")
    want = local.get(f"/api/v1/images/{mine}/cells")
    assert got.status_code == want.status_code == 200, got.text
    assert got.content == want.content
    assert remote.get(f"/api/v1/images/{image}/zarr/..%2Fx").status_code in (404, 422)


def test_ingest_from_s3_roots_and_refusals(remote: Api, source: Path, tmp_path: Path) -> None:
    put_tree(source, "s3://incoming/scans/slide.ome.tif")
    zarr_src = tmp_path / "src.ome.zarr"
    convert(source, zarr_src, settings=Settings(chunk_size=128, block_size=256))
    put_tree(zarr_src, "s3://incoming/scans/src.ome.zarr")
    tiff = _ingest(remote, "s3://incoming/scans/slide.ome.tif")
    zarr_image = _ingest(remote, "s3://incoming/scans/src.ome.zarr")
    _no_local_store(remote)
    for image in (tiff, zarr_image):
        body = remote.get(f"/api/v1/images/{image}").json()
        assert body["levels"][0] == [3, 700, 600]
        assert [c["label"] for c in body["channels"]] == ["DAPI", "CD3", "CD8"]
    # the same pixels whichever way they came
    a = remote.get(f"/api/v1/images/{tiff}/tiles/0/1/1.png")
    b = remote.get(f"/api/v1/images/{zarr_image}/tiles/0/1/1.png")
    assert a.status_code == b.status_code == 200
    assert a.content == b.content
    # a folder (prefix) of an S3 root, in a batch
    r = remote.post("/api/v1/studies/S1/images:batch", {"folder": "s3://incoming/scans"})
    assert r.status_code == 202, r.text
    assert all(item["existing"] for item in r.json())
    refused = {"s3://other/slide.ome.tif": 403, "s3://incoming/../other/slide.ome.tif": 403,
               "s3://incoming/./scans/slide.ome.tif": 403, "s3://incomingx/slide.ome.tif": 403,
               "s3://incoming/scans/absent.ome.tif": 422, "s3://incoming": 403,
               "s3://user:pw@incoming/scans/slide.ome.tif": 422}
    for url, status in refused.items():
        r = remote.post("/api/v1/studies/S1/images", {"source": url})
        assert r.status_code == status, (url, r.text)
        assert "Traceback" not in r.text
    # credentials never reach the catalog's answers, the audit trail or the logs' subjects
    dump = json.dumps([remote.get(f"/api/v1/images/{i}").json() for i in (tiff, zarr_image)])
    audit = remote.get("/api/v1/studies/S1/audit").text
    for secret in (AWS["AWS_SECRET_ACCESS_KEY"], AWS["AWS_ACCESS_KEY_ID"]):
        assert secret not in dump
        assert secret not in audit


def _preset() -> dict[str, object]:
    return {"name": "two", "channels": [
        {"index": 0, "color": "0000FF", "window": {"start": 0, "end": 4000}},
        {"index": 1, "color": "FF0000", "window": {"start": 100, "end": 3000}, "gamma": 0.8},
        {"index": 2, "active": False, "color": "00FF00", "window": {"start": 0, "end": 1}}]}


def test_stores_are_found_again_after_the_root_moves(remote: Api, source: Path) -> None:
    """The catalog holds (root name, key): copying the stores to another bucket and pointing
    PLEXHUB_STORE_ROOT there is all a move takes."""
    from plexhub.api.main import create_app
    from tests.helpers.s3 import filesystem

    remote.add_file(source)
    image = _ingest(remote, "slide.ome.tif")
    tile = remote.get(f"/api/v1/images/{image}/tiles/0/0/0.png").content
    fs = filesystem()
    fs.mkdir("moved")
    for key, data in objects(ROOT).items():
        fs.pipe_file(f"moved/stores/{key}", data)
    fs.rm("plexhub-stores/prod", recursive=True)
    moved = remote.settings.model_copy(update={"store_root": "s3://moved/stores"})
    with TestClient(create_app(moved)) as client:
        again = Api(client, moved, remote.incoming)
        assert again.get(f"/api/v1/images/{image}/tiles/0/0/0.png").content == tile
    assert base64.b64encode(tile)  # the tile is a real PNG answer, not empty
