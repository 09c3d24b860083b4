"""Malformed input is a 4xx with one line naming the problem, never a 500, on SQLite and on
PostgreSQL (which refuses a NUL in any text value: before, every such request was a 500).

- a NUL (``%00``) in any path parameter or query value of any operation of the OpenAPI
  document (and of the portal's pages): 422 naming the parameter;
- a NUL in any JSON string of a request body: 422 naming the field;
- a name over 255 bytes (``ENAMETOOLONG``) as an ingest source, folder or manifest, or in a
  zarr path, and a zarr path longer than the filesystem takes: 422;
- manifests of the wrong shape (``[5]``, ``["ab"]``, ``{}``), not UTF-8, with a broken
  stain panel or more values than columns: 422 naming the manifest and the entry or line, and
  nothing is registered;
- numbers no catalog column holds and text that is not valid Unicode: 4xx.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.helpers.api import Api
from tests.helpers.sample_data import ingest_synthetic, notebook

NUL = "a\x00b"
LONG = "x" * 300  # one name over NAME_MAX (255 bytes)


def one_line(r: httpx.Response, status: int | tuple[int, ...] = 422) -> str:
    """The answer's detail, after checking the status and that it is one line of JSON."""
    wanted = (status,) if isinstance(status, int) else status
    assert r.status_code in wanted, (r.request.method, str(r.request.url)[:200], r.text[:300])
    detail = r.json()["detail"]
    assert isinstance(detail, str)
    assert "\n" not in detail
    assert "Traceback" not in detail
    return detail


@pytest.fixture
def ids(api: Api) -> dict[str, str]:
    """Study S1 with a converted image, its default preset, a notebook and a grant."""
    api.study("S1")
    image, job = ingest_synthetic(api, "S1", "a.ome.tif", seed=1)
    preset = api.get(f"/api/v1/images/{image}/presets").json()[0]["id"]
    nb = api.post("/api/v1/studies/S1/notebooks", {"name": "nb", "notebook": notebook()})
    assert nb.status_code == 201, nb.text
    grant = api.post("/api/v1/studies/S1/grants", {"principal": "group:acme"})
    assert grant.status_code == 201, grant.text
    return {"code": "S1", "image_id": image, "job_id": job, "preset_id": str(preset),
            "notebook_id": nb.json()["id"], "grant_id": grant.json()["id"], "version": "1",
            "level": "0", "row": "0", "col": "0", "fmt": "png", "z": "0", "t": "0",
            "dz_level": "0", "name": "0_0.jpeg", "path": "zarr.json"}


PORTAL = ("/portal/studies/{code}", "/portal/images/{image_id}",
          "/portal/notebooks/{notebook_id}")


def _operations(http: Api) -> list[tuple[str, str, list[str]]]:
    """(method, path template, query parameter names) of every operation, and the portal."""
    doc = http.get("/api/v1/openapi.json").json()
    out = [(method.upper(), path, [p["name"] for p in op.get("parameters", [])
                                   if p["in"] == "query"])
           for path, ops in doc["paths"].items() for method, op in ops.items()]
    return out + [("GET", p, []) for p in PORTAL]


def test_a_nul_anywhere_in_the_url_is_a_422_naming_the_parameter(
        api: Api, ids: dict[str, str]) -> None:
    checked = 0
    for method, template, query in _operations(api):
        names = re.findall(r"{(\w+)}", template)
        for name in names:
            url = template
            for other in names:
                value = NUL if other == name else ids.get(other, "x")
                url = url.replace(f"{{{other}}}", quote(value, safe=""))
            r = api.client.request(method, url, headers=api.h(), json={} if method != "GET"
                                   else None)
            assert f"'{name}'" in one_line(r), (method, template)
            checked += 1
        for name in query:
            url = template
            for other in names:
                url = url.replace(f"{{{other}}}", quote(ids.get(other, "x"), safe=""))
            r = api.client.request(method, f"{url}?{name}=a%00b", headers=api.h())
            assert f"'{name}'" in one_line(r), (method, template, name)
            checked += 1
    assert checked > 60  # every operation with a parameter was tried


def test_a_nul_in_any_json_string_is_a_422_naming_the_field(
        api: Api, ids: dict[str, str]) -> None:
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/api/v1/studies", {"code": "S2", "title": NUL, "sponsor": "acme"}, "title"),
        ("POST", "/api/v1/studies", {"code": "S2", "title": "t", "sponsor": NUL}, "sponsor"),
        ("PATCH", "/api/v1/studies/S1", {"title": NUL}, "title"),
        ("PATCH", "/api/v1/studies/S1", {"title": "new", "reason": NUL}, "reason"),
        ("PATCH", "/api/v1/studies/S1", {"internal_fields": [NUL]}, "internal_fields"),
        ("POST", "/api/v1/studies/S1/grants", {"principal": "user:x", "reason": NUL},
         "reason"),
        ("POST", "/api/v1/studies/S1/images", {"source": NUL}, "source"),
        ("POST", "/api/v1/studies/S1/images", {"source": "a.ome.tif",
                                               "metadata": {"tissue": NUL}},
         "metadata.tissue"),
        ("POST", "/api/v1/studies/S1/images", {"source": "a.ome.tif", "metadata": {
            "stain_panel": {NUL: "CD8"}}}, "metadata.stain_panel"),
        ("POST", "/api/v1/studies/S1/images:batch", {"folder": NUL}, "folder"),
        ("POST", "/api/v1/studies/S1/images:batch", {"items": [{"source": NUL}]},
         "items.0.source"),
        ("POST", "/api/v1/studies/S1/notebooks", {"name": "nb", "reason": NUL,
                                                  "notebook": notebook()}, "reason"),
        ("POST", "/api/v1/studies/S1/notebooks", {"name": "nb2", "notebook": notebook(
            code=f"print('{NUL}')")}, "notebook"),
        ("POST", "/api/v1/tokens", {"user": "u", "role": "analyst", "groups": [NUL]},
         "groups"),
    ]
    for method, url, body, field in cases:
        r = api.client.request(method, url, headers=api.h(), json=body)
        detail = one_line(r)
        assert detail.startswith(f"{field}: "), (url, body, detail)
        assert "NUL" in detail, detail
    # a preset document is not a Strict body: on PostgreSQL the catalog refuses the name
    # and the answer is still a 422, never a 500; SQLite stores it
    preset = {"name": NUL, "channels": [{"label": "C0", "color": "ff0000",
                                         "window": {"start": 0, "end": 10}}]}
    r = api.post(f"/api/v1/images/{ids['image_id']}/presets", preset)
    if api.settings.catalog_url.startswith("postgresql"):
        assert "NUL" in one_line(r)
    else:
        assert r.status_code in (201, 422), r.text
    assert api.get("/api/v1/studies/S2").status_code == 404  # nothing was created


def test_names_over_255_bytes_are_a_422(api: Api, ids: dict[str, str]) -> None:
    for body in ({"source": LONG}, {"source": f"{LONG}/{LONG}"},
                 {"source": f"sub/{LONG}.ome.tif"}):
        detail = one_line(api.post("/api/v1/studies/S1/images", body))
        assert "255 bytes" in detail
    for body in ({"folder": LONG}, {"manifest": f"{LONG}.json"}, {"manifest": LONG}):
        assert "255 bytes" in one_line(api.post("/api/v1/studies/S1/images:batch", body))
    zarr = f"/api/v1/images/{ids['image_id']}/zarr"
    for path in (LONG, f"0/{LONG}", "/".join(["y" * 250] * 20)):
        one_line(api.get(f"{zarr}/{path}"))
    assert api.get(f"{zarr}/zarr.json").status_code == 200  # the real file still reads
    one_line(api.post("/api/v1/studies", {"code": LONG, "title": "t", "sponsor": "acme"}))
    one_line(api.post("/api/v1/studies/S1/notebooks", {"name": LONG,
                                                       "notebook": notebook()}))
    for url in (f"/api/v1/studies/{LONG}", f"/api/v1/images/{LONG}", f"/api/v1/jobs/{LONG}",
                f"/api/v1/notebooks/{LONG}", f"/api/v1/presets/{LONG}"):
        one_line(api.get(url), 404)


MANIFESTS: dict[str, tuple[bytes, str]] = {
    "five.json": (b"[5]", "entry 1 is a JSON number"),
    "strings.json": (b'["ab"]', "entry 1 is a JSON string"),
    "object.json": (b"{}", "holds a JSON object"),
    "null.json": (b"[null]", "entry 1 is a JSON null"),
    "nosource.json": (b'[{"metadata": {}}]', "entry 1: source"),
    "number.json": (b'[{"source": 5}]', "entry 1: source"),
    "meta.json": (b'[{"source": "a.ome.tif", "metadata": 5}]', "entry 1: metadata"),
    "broken.json": (b'[{"source": ', "is not valid JSON"),
    "latin1.csv": (b"source,tissue\ncaf\xe9.tif,lung\n", "is not UTF-8"),
    "utf16.json": ('[{"source": "a.ome.tif"}]'.encode("utf-16"), "is not UTF-8"),
    "panel.csv": (b"source,stain_panel\na.ome.tif,{not json\n", "line 2"),
    "extra.csv": (b"source,tissue\na.ome.tif,lung,more,values\n", "line 2"),
    "nocolumn.csv": (b"file,tissue\na.ome.tif,lung\n", "no 'source' column"),
    "empty.csv": (b"source,tissue\n,lung\n", "line 2"),
    "nul.csv": (b"source,tissue\na.ome.tif,lu\x00ng\n", "line 2"),
    "long.csv": (b"source,tissue\na.ome.tif," + b"x" * 201 + b"\n", "line 2"),
}


def test_manifests_of_the_wrong_shape_are_a_422_naming_the_entry(
        api: Api) -> None:
    api.study("S1")
    from plexhub.ome_pipeline.synthetic import SyntheticSpec, write_ome_tiff

    write_ome_tiff(api.incoming / "a.ome.tif",
                   SyntheticSpec(size_y=64, size_x=64, channels=1, tile=64))
    for name, (data, where) in MANIFESTS.items():
        (api.incoming / name).write_bytes(data)
        detail = one_line(api.post("/api/v1/studies/S1/images:batch", {"manifest": name}))
        assert detail.startswith(f"manifest {name}"), detail
        assert where in detail, (name, detail)
        assert str(api.incoming) not in detail  # the server's own path is not shown
    assert api.get("/api/v1/studies/S1/images").json() == []


def test_out_of_range_numbers_and_broken_unicode_are_4xx(
        api: Api, ids: dict[str, str]) -> None:
    huge = "9" * 25
    for url in (f"/api/v1/presets/{ids['preset_id']}/versions/{huge}",
                f"/api/v1/audit?after_seq={huge}",
                f"/api/v1/presets/{ids['preset_id']}/versions/{huge}/export?format=napari"):
        one_line(api.get(url), (404, 422))
    surrogate = json.dumps({"code": "S3", "title": "\ud800", "sponsor": "acme"})
    r = api.client.post("/api/v1/studies", headers={**api.h(), "content-type":
                                                   "application/json"}, content=surrogate)
    one_line(r)
    preset = json.dumps({"name": "\ud800", "channels": [
        {"label": "C0", "color": "ff0000", "window": {"start": 0, "end": 10}}]})
    r = api.client.post(f"/api/v1/images/{ids['image_id']}/presets", content=preset,
                        headers={**api.h(), "content-type": "application/json"})
    one_line(r)


ZARR_ATTRIBUTES = [{"ome": 5}, {"ome": {"multiscales": "x"}}, {"ome": {"multiscales": [5]}},
                   {"ome": {"multiscales": [{"datasets": 5, "axes": 3}]}},
                   {"ome": {"multiscales": [{"datasets": [{"path": "0"}], "axes": [5]}]}},
                   {"ome": {"bioformats2raw.layout": 3}}, {"ome": {"omero": "x"}}]


def test_an_ome_zarr_source_with_metadata_of_the_wrong_shape_is_a_422(
        api: Api) -> None:
    api.study("S1")
    for i, attributes in enumerate(ZARR_ATTRIBUTES):
        store = api.incoming / f"bad{i}.ome.zarr"
        store.mkdir()
        (store / "zarr.json").write_text(json.dumps({
            "zarr_format": 3, "node_type": "group", "attributes": attributes}))
        r = api.post("/api/v1/studies/S1/images", {"source": store.name})
        assert f"bad{i}.ome.zarr" in one_line(r), attributes
    assert api.get("/api/v1/studies/S1/images").json() == []


def test_a_preset_with_a_nul_in_its_text_is_refused() -> None:
    """On SQLite a NUL used to be stored (and PostgreSQL refused it with a 500 first, then
    the net's 422): the preset document itself refuses it, in every format and store."""
    from plexhub.presets import InvalidPresetError, parse_preset

    for doc in ({"name": "a\x00b", "channels": [{"index": 0}]},
                {"channels": [{"index": 0, "label": "CD\x003"}]}):
        with pytest.raises(InvalidPresetError, match="NUL"):
            parse_preset(doc)
