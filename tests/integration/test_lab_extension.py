"""plexhub inside JupyterLab: the lab and server extensions are installed and enabled, and the
server extension forwards the Studies panel's requests to a real API (uvicorn) with the
server's own token: what that token may not see stays a 404, and no token reaches the page."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from plexhub.client import ApiClient
from plexhub.ome_pipeline.synthetic import SyntheticSpec
from plexhub.settings import Settings
from tests.helpers.httpapi import ingest
from tests.helpers.lab import Lab, running_lab
from tests.helpers.server import running_server

ADMIN = "admin-token-for-lab-extension-tests"


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_lab_and_server_extensions_are_enabled() -> None:
    labs = subprocess.run([sys.executable, "-m", "jupyterlab.labextensions", "list"],
                          capture_output=True, text=True, check=True)
    out = _plain(labs.stdout + labs.stderr)
    assert any(line.split()[:4] == ["plexhub", "v0.1.0", "enabled", "OK"]
               for line in out.splitlines()), out
    servers = subprocess.run(
        [sys.executable, "-c", "from jupyter_server.extension.serverextension import main; "
         "main()", "list"], capture_output=True, text=True, check=True)
    out = _plain(servers.stdout + servers.stderr)
    assert "plexhub.extensions enabled" in out, out
    assert "plexhub.extensions  OK" in out, out


@dataclass
class World:
    base: str
    image: str
    scientist: str
    sponsor: str
    incoming: Path
    homes: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("labext-api")
    homes = tmp / "homes"  # the lab's root is <homes>/<user>/notebooks, the user's own folder
    settings = Settings(data_dir=tmp / "data", admin_token=SecretStr(ADMIN), chunk_size=128,
                        block_size=256, ingest_user_root=str(homes / "{user}" / "notebooks"))
    incoming = tmp / "data" / "incoming"
    incoming.mkdir(parents=True)
    with running_server(settings) as base, ApiClient(base, ADMIN) as api:
        api.create_study("GRANTED", "Granted study", "acme")
        api.create_study("OTHER", "Not shared", "acme")
        api.create_study("GLP1", "A GLP study", "acme", profile="glp")
        image = ingest(base, ADMIN, incoming, "GRANTED", "slide.ome.tif",
                       SyntheticSpec(size_y=300, size_x=400, channels=3, tile=128, seed=5),
                       metadata={"animal_id": "A-17"})
        api.grant("GRANTED", "user:sue", ["view", "view_notebooks"], "lab extension test")
        scientist = str(api.create_token("sam", "scientist")["token"])
        sponsor = str(api.create_token("sue", "sponsor")["token"])
        yield World(base, image, scientist, sponsor, incoming, homes)


@pytest.fixture(scope="module")
def lab(world: World) -> Iterator[Lab]:
    with running_lab(world.homes / "sam", {
            "PLEXHUB_API_URL": world.base, "PLEXHUB_API_TOKEN": world.scientist}) as lab:
        yield lab


def test_panel_reads_go_to_the_api_with_the_servers_token(lab: Lab, world: World) -> None:
    config = lab.get("plexhub/config").json()
    assert config == {"api_url": world.base, "api": True, "token": True}
    assert world.scientist not in lab.get("plexhub/config").text
    studies = lab.get("plexhub/api/studies")
    assert studies.status_code == 200, studies.text
    assert {s["code"] for s in studies.json()} == {"GRANTED", "OTHER", "GLP1"}
    images = lab.get("plexhub/api/studies/GRANTED/images").json()
    assert [i["id"] for i in images] == [world.image]
    assert images[0]["status"] == "ready"
    assert [c["index"] for c in images[0]["channels"]] == [0, 1, 2]
    assert lab.get(f"plexhub/api/images/{world.image}/presets").status_code == 200
    thumb = lab.get(f"plexhub/api/images/{world.image}/thumbnail.png", params={"max": 64})
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/png"
    assert thumb.content[:8] == b"\x89PNG\r\n\x1a\n"
    # the API's own errors come back as they were
    missing = lab.get("plexhub/api/studies/NOPE")
    assert missing.status_code == 404
    assert "NOPE" in missing.json()["detail"]


def test_only_the_panels_paths_are_forwarded(lab: Lab, world: World) -> None:
    for path in ("tokens", "audit", f"images/{world.image}/zarr/.zattrs",
                 "studies/GRANTED/grants", "studies/a%2F..%2Ftokens", "studies/..%2Ftokens"):
        assert lab.get(f"plexhub/api/{path}").status_code == 404, path
    # the server's own login guards every route
    anon = httpx.get(f"{lab.base}/plexhub/api/studies", timeout=30)
    assert anon.status_code in (401, 403)


def test_publish_sends_the_saved_notebook(lab: Lab, world: World) -> None:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "markdown", "id": "m1", "metadata": {},
                     "source": "# Dose groups\n\nFrom the lab."}]}
    (lab.root / "report.ipynb").write_text(json.dumps(nb))
    r = lab.post("plexhub/publish", {"path": "report.ipynb", "study": "GRANTED",
                                     "name": "Lab report", "reason": "first look"})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1
    again = lab.post("plexhub/publish", {"path": "report.ipynb", "study": "GRANTED",
                                         "name": "Lab report"})
    assert again.json()["version"] == 2
    with ApiClient(world.base, ADMIN) as api:
        listed = api.get_json("/studies/GRANTED/notebooks")
    assert [n["name"] for n in listed] == ["Lab report"]
    assert lab.post("plexhub/publish", {"path": "missing.ipynb", "study": "GRANTED",
                                        "name": "x"}).status_code == 404
    assert lab.post("plexhub/publish", {"path": "report.ipynb", "study": "bad code!",
                                        "name": "x"}).status_code == 400


def test_publish_asks_for_what_the_studys_profile_needs(lab: Lab, world: World) -> None:
    """The API's 422 names what is missing (the page then asks for it): a reason, then the
    signature (the scientist's own API token, typed in again, in a standalone lab); a wrong
    credential is a 403. The version note goes into the published notebook's metadata."""
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "markdown", "id": "g1", "metadata": {}, "source": "# GLP"}]}
    (lab.root / "glp.ipynb").write_text(json.dumps(nb))
    body = {"path": "glp.ipynb", "study": "GLP1", "name": "GLP report", "note": "dose check"}
    r = lab.post("plexhub/publish", body)
    assert r.status_code == 422, r.text
    assert "reason: is required" in r.json()["detail"]
    r = lab.post("plexhub/publish", body | {"reason": "final read"})
    assert r.status_code == 422, r.text
    assert "credential: is required" in r.json()["detail"]
    assert "approved" in r.json()["detail"]  # the meaning the profile gives the signature
    r = lab.post("plexhub/publish", body | {"reason": "final read", "credential": "wrong"})
    assert r.status_code == 403, r.text
    r = lab.post("plexhub/publish", body | {"reason": "final read",
                                            "credential": world.scientist})
    assert r.status_code == 201, r.text
    done = r.json()
    assert [(s["signer"], s["meaning"]) for s in done["signatures"]] == [("sam", "approved")]
    with ApiClient(world.base, ADMIN) as api:
        published = api.get_json(f"/notebooks/{done['id']}")
    assert published["ipynb"]["metadata"]["plexhub"] == {"version_note": "dose check"}
    assert "".join(published["ipynb"]["cells"][0]["source"]) == "# GLP"


def test_ingest_a_file_of_the_lab_and_follow_its_job(lab: Lab, world: World) -> None:
    from plexhub.ome_pipeline.synthetic import write_ome_tiff

    (lab.root / "slides").mkdir(exist_ok=True)
    write_ome_tiff(lab.root / "slides" / "fresh.ome.tif",
                   SyntheticSpec(size_y=200, size_x=260, channels=2, tile=128, seed=11))
    r = lab.post("plexhub/ingest", {"path": "slides/fresh.ome.tif", "study": "GRANTED"})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["existing"] is False
    job_id = accepted["job_id"]
    listed = lab.get("plexhub/api/jobs")
    assert listed.status_code == 200, listed.text
    assert {j["id"] for j in listed.json()} <= {job_id}  # unfinished only: ours, or done
    deadline = time.monotonic() + 120
    while (job := lab.get(f"plexhub/api/jobs/{job_id}").json())["state"] not in (
            "done", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["state"] == "done", job
    assert job["source"] == str((lab.root / "slides" / "fresh.ome.tif").resolve())
    assert lab.get("plexhub/api/jobs").json() == []
    images = lab.get("plexhub/api/studies/GRANTED/images").json()
    assert accepted["image_id"] in [i["id"] for i in images]
    # the same file again is the same image (the API's idempotence, passed on)
    again = lab.post("plexhub/ingest", {"path": "/slides/fresh.ome.tif", "study": "GRANTED"})
    assert again.status_code == 202, again.text
    assert again.json()["existing"] is True

    # what cannot be ingested says why
    (lab.root / ".hidden.ome.tif").write_bytes(b"x")
    (lab.root / "notes.tif").write_text("not an image")
    cases = {"missing.ome.tif": 404, "../outside.tif": 404, ".hidden.ome.tif": 403,
             "notes.tif": 422}
    for path, status in cases.items():
        r = lab.post("plexhub/ingest", {"path": path, "study": "GRANTED"})
        assert r.status_code == status, (path, r.text)
    r = lab.post("plexhub/ingest", {"path": "notes.tif", "study": "GRANTED"})
    assert "not an image format" in r.json()["detail"]
    assert lab.post("plexhub/ingest", {"path": "notes.tif", "study": "no such!"}
                    ).status_code == 400
    # GLP: the reason the profile asks for, named by the API's 422
    write_ome_tiff(lab.root / "slides" / "glp.ome.tif",
                   SyntheticSpec(size_y=100, size_x=100, channels=1, tile=64, seed=12))
    r = lab.post("plexhub/ingest", {"path": "slides/glp.ome.tif", "study": "GLP1"})
    assert r.status_code == 422, r.text
    assert "reason: is required" in r.json()["detail"]
    r = lab.post("plexhub/ingest", {"path": "slides/glp.ome.tif", "study": "GLP1",
                                    "reason": "new scan"})
    assert r.status_code == 202, r.text


def test_a_sponsor_token_cannot_reach_an_ungranted_study(world: World,
                                                          tmp_path: Path) -> None:
    with running_lab(tmp_path, {"PLEXHUB_API_URL": world.base,
                                "PLEXHUB_API_TOKEN": world.sponsor}) as lab:
        assert [s["code"] for s in lab.get("plexhub/api/studies").json()] == ["GRANTED"]
        assert lab.get("plexhub/api/studies/GRANTED/images").status_code == 200
        for path in ("studies/OTHER", "studies/OTHER/images", "studies/OTHER/notebooks"):
            r = lab.get(f"plexhub/api/{path}")
            assert r.status_code == 404, (path, r.text)
        # and cannot publish either
        (lab.root / "n.ipynb").write_text(json.dumps(
            {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}))
        r = lab.post("plexhub/publish", {"path": "n.ipynb", "study": "GRANTED", "name": "n"})
        assert r.status_code in (403, 404), r.text
        # nor ingest
        r = lab.post("plexhub/ingest", {"path": "n.ipynb", "study": "GRANTED"})
        assert r.status_code == 403, r.text


def test_without_an_api_the_panel_is_told_so(tmp_path: Path) -> None:
    with running_lab(tmp_path, {}) as lab:
        assert lab.get("plexhub/config").json()["api"] is False
        r = lab.get("plexhub/api/studies")
        assert r.status_code == 503
