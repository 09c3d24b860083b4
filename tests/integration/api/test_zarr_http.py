"""zarr-python and ome-zarr-py open an image's store over HTTP with a bearer token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tifffile
import zarr

from tests.helpers.api import ADMIN, Api
from tests.helpers.sample_data import ingest_qptiff
from tests.helpers.server import running_server
from tests.helpers.zarrs import array_at


def test_zarr_python_and_ome_zarr_py_read_the_store_over_http(api: Api, real: Path) -> None:
    image_id = ingest_qptiff(api, real)
    sponsor = api.token("sue", "sponsor", ["acme"])
    with running_server(api.settings) as base:
        url = f"{base}/api/v1/images/{image_id}/zarr"
        opts = {"headers": {"Authorization": f"Bearer {ADMIN}"}}
        g = zarr.open_group(url, mode="r", storage_options=opts)
        expect = tifffile.imread(real / "qptiff" / "small_vectra.qptiff", series=0)
        assert np.array_equal(np.asarray(array_at(g, "0")[:]), expect)
        ome: Any = g.attrs["ome"]  # JSON: the NGFF document
        assert ome["omero"]["channels"][1]["label"] == "FITC"
        # ome-zarr-py (and napari-ome-zarr) take the header from fsspec's configuration
        import fsspec
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Reader

        fsspec.config.conf["http"] = {"headers": {"Authorization": f"Bearer {ADMIN}"}}
        try:
            nodes = list(Reader(parse_url(url))())
        finally:
            del fsspec.config.conf["http"]
        assert np.array_equal(np.asarray(nodes[0].data[0]), expect)
        assert len(nodes[0].data) == 4
        r = httpx.get(f"{url}/zarr.json")
        assert r.status_code == 401
        r = httpx.get(f"{url}/zarr.json", headers={"Authorization": f"Bearer {sponsor}"})
        assert r.status_code == 404  # not granted: the image does not exist for them
        api.post("/api/v1/studies/S001/grants", {"principal": "group:acme"})
        h = {"Authorization": f"Bearer {sponsor}"}
        assert httpx.get(f"{url}/zarr.json", headers=h).status_code == 200
        assert httpx.get(f"{url}/OME/METADATA.ome.xml", headers=h).status_code == 404
        assert httpx.get(f"{url}/associated/label/zarr.json", headers=h).status_code == 404
        admin = {"Authorization": f"Bearer {ADMIN}"}
        assert httpx.get(f"{url}/associated/label/zarr.json", headers=admin).status_code == 200
        for bad in ("../../catalog.sqlite", "%2e%2e/%2e%2e/catalog.sqlite", "0/../../x",
                    ".plexhub/state.npz"):
            r = httpx.get(f"{url}/{bad}", headers=admin)
            assert r.status_code in (404, 422), (bad, r.status_code)
            assert "SQLite format" not in r.text  # never the file itself
