"""The cell table (``GET /api/v1/images/{id}/cells``) follows the image's visibility: a
sponsor without a grant gets the 404 of an unknown image, with a grant the table."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from plexhub.ome_pipeline.analysis import analyze
from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff
from tests.helpers.api import Api


def store_of(api: Api, image: str) -> Path:
    stores = [p.parent for p in Path(api.settings.data_dir).rglob("zarr.json")
              if (p.parent / "0").is_dir() and (p.parent / "OME").is_dir()]
    assert len(stores) == 1, stores
    return stores[0]


@pytest.mark.slow
def test_cells_follow_the_image_grant(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api.study("CELLS", sponsor="acme")
    write_ome_tiff(api.incoming / "c.ome.tif",
                   SyntheticSpec(size_y=200, size_x=220, channels=3, tile=64, seed=4))
    r = api.post("/api/v1/studies/CELLS/images", {"source": "c.ome.tif"})
    assert r.status_code == 202, r.text
    assert api.wait_job(r.json()["job_id"])["state"] == "done"
    image = str(r.json()["image_id"])
    url = f"/api/v1/images/{image}/cells"

    r = api.get(url)
    assert r.status_code == 404  # not analysed yet
    assert "plexhub analyze" in r.json()["detail"]
    result = analyze(store_of(api, image), nuclear="DAPI", phenotypes=["T: CD3+"],
                     show_progress=False)

    r = api.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    table = pd.read_csv(io.StringIO(r.text))
    assert len(table) == result.cells > 20
    assert {"cell_id", "area", "centroid_y", "centroid_x", "phenotype",
            "DAPI", "CD3", "CD8"} <= set(table.columns)
    r = api.get(url, params={"format": "parquet"})
    assert r.status_code == 200, r.text
    assert pd.read_parquet(io.BytesIO(r.content))["cell_id"].tolist() == \
        table["cell_id"].tolist()
    assert api.get(url, params={"format": "xlsx"}).status_code == 422

    nobody = api.token("nora", "sponsor", ["nobody"])
    unknown = api.get("/api/v1/images/0123456789abcdef/cells", nobody)
    r = api.get(url, nobody)
    assert r.status_code == 404
    assert unknown.status_code == 404
    assert r.json() == {"detail": f"image {image}: not found"}
    acme = api.token("anna", "sponsor", ["acme"])
    assert api.get(url, acme).status_code == 404
    api.post("/api/v1/studies/CELLS/grants", {"principal": "group:acme"})
    r = api.get(url, acme)
    assert r.status_code == 200, r.text
    assert len(pd.read_csv(io.StringIO(r.text))) == result.cells

    # a table over the API's size limit is refused before it is read (a 4xx naming the limit)
    from plexhub.api.routes import cells

    with monkeypatch.context() as m:
        m.setattr(cells, "CELL_TABLE_BYTES", 1000)
        r = api.get(url)
        assert 400 <= r.status_code < 500, r.text
        assert "more than the API serves (1000)" in r.json()["detail"]

    # a cell table that links out of the image's store is refused, never read
    tables = store_of(api, image) / "tables"
    outside = Path(api.settings.data_dir).parent / "elsewhere"
    tables.rename(outside)
    tables.symlink_to(outside, target_is_directory=True)
    r = api.get(url)
    assert r.status_code == 403, r.text
    assert "links out of the image's store" in r.json()["detail"]
