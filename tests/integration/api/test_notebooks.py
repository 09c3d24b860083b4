"""Published notebooks: publish (and execute), versions, access, sanitized HTML, the CLI."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from plexhub.api.publish_cli import add_arguments, cmd_publish
from plexhub.errors import PlexhubError
from tests.helpers.api import Api
from tests.helpers.sample_data import hostile_notebook, notebook
from tests.helpers.server import running_server


def canonical_hash(doc: dict[str, object]) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def test_publish_versions_and_read_back(api: Api) -> None:
    api.study("S001")
    analyst = api.token("ann", "analyst")
    r = api.post("/api/v1/studies/S001/notebooks",
                 {"name": "qc report", "notebook": notebook("First"), "reason": "QC"}, analyst)
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["name"], first["version"]) == ("qc report", 1)
    second = api.post("/api/v1/studies/S001/notebooks",
                      {"name": "qc report", "notebook": notebook("Second")}, analyst).json()
    assert second["version"] == 2
    other = api.post("/api/v1/studies/S001/notebooks",
                     {"name": "other", "notebook": notebook()}, analyst).json()
    assert other["version"] == 1
    listing = api.get("/api/v1/studies/S001/notebooks").json()
    assert [n["name"] for n in listing] == ["other", "qc report"]
    qc = listing[1]
    assert qc["latest"]["id"] == second["id"]
    assert [v["version"] for v in qc["versions"]] == [1, 2]
    old = api.get(f"/api/v1/notebooks/{first['id']}").json()  # old versions stay readable
    assert old["version"] == 1
    assert old["study"] == "S001"
    assert old["published_by"] == "ann"
    assert "".join(old["ipynb"]["cells"][0]["source"]).startswith("# First")
    assert canonical_hash(old["ipynb"]) == old["content_hash"] == first["content_hash"]
    assert first["content_hash"] != second["content_hash"]
    events = [e for e in api.get("/api/v1/audit", params={"study": "S001"}).json()
              if e["action"] == "notebook.publish"]
    assert len(events) == 3
    assert events[0]["reason"] == "QC"
    assert events[0]["after"]["content_hash"] == first["content_hash"]


def test_who_may_publish_and_read(api: Api) -> None:
    api.study("S001")
    api.study("S002")
    sci = api.token("sam", "scientist")
    nb_id = api.post("/api/v1/studies/S001/notebooks",
                     {"name": "n", "notebook": notebook()}, sci).json()["id"]
    sponsor = api.token("sue", "sponsor", ["acme"])
    urls = ["/api/v1/studies/S001/notebooks", f"/api/v1/notebooks/{nb_id}",
            f"/api/v1/notebooks/{nb_id}/html"]
    for url in urls:  # no grant at all
        assert api.get(url, sponsor).status_code == 404, url
    api.post("/api/v1/studies/S001/grants", {"principal": "group:acme",
                                             "capabilities": ["view"]})
    for url in urls:  # images only: the notebooks still do not exist for the sponsor
        r = api.get(url, sponsor)
        assert r.status_code == 404, url
        unknown = api.get(url.replace(nb_id, "0" * 32).replace("S001", "S999"), sponsor)
        assert r.text.replace(nb_id, "0" * 32).replace("S001", "S999") == unknown.text
    api.post("/api/v1/studies/S001/grants", {"principal": "user:sue",
                                             "capabilities": ["view_notebooks"]})
    for url in urls:
        assert api.get(url, sponsor).status_code == 200, url
    body = {"name": "mine", "notebook": notebook()}
    assert api.post("/api/v1/studies/S001/notebooks", body, sponsor).status_code == 403
    assert api.post("/api/v1/studies/S002/notebooks", body, sponsor).status_code == 404
    assert api.get("/api/v1/studies/S002/notebooks", sponsor).status_code == 404
    assert api.get("/api/v1/notebooks/nope").status_code == 404


def test_invalid_notebooks_are_422(api: Api) -> None:
    api.study("S001")
    for bad in ({"cells": "x"}, {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                 "cells": [{"cell_type": "nope", "source": ""}]}):
        r = api.post("/api/v1/studies/S001/notebooks", {"name": "n", "notebook": bad})
        assert r.status_code == 422, r.text
        assert "notebook" in r.json()["detail"]
    r = api.post("/api/v1/studies/S001/notebooks", {"name": "../x", "notebook": notebook()})
    assert r.status_code == 422
    # cells without ids (nbformat 4.5) get ids instead of a warning
    doc = notebook()
    for cell in doc["cells"]:
        del cell["id"]
    r = api.post("/api/v1/studies/S001/notebooks", {"name": "n", "notebook": doc})
    assert r.status_code == 201, r.text


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="notebooks run as an unprivileged user, which "
                    "needs a service started as root (tests/security covers the refusal)")
def test_execute_runs_the_notebook_and_failures_are_422(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api.study("S001")
    monkeypatch.setenv("PLEXHUB_ADMIN_TOKEN", "a-secret-the-kernel-must-not-see")
    code = "import os\nprint(6 * 7, 'PLEXHUB_ADMIN_TOKEN' in os.environ)"
    r = api.post("/api/v1/studies/S001/notebooks",
                 {"name": "run", "notebook": notebook(code=code), "execute": True})
    assert r.status_code == 201, r.text
    doc = api.get(f"/api/v1/notebooks/{r.json()['id']}").json()["ipynb"]
    (out,) = doc["cells"][1]["outputs"]
    # 42, and the kernel does not see the service's secrets
    assert "".join(out["text"]).strip() == "42 False"
    r = api.post("/api/v1/studies/S001/notebooks",
                 {"name": "run", "notebook": notebook(code="1 / 0"), "execute": True})
    assert r.status_code == 422
    assert "ZeroDivisionError" in r.json()["detail"]
    versions = api.get("/api/v1/studies/S001/notebooks").json()[0]["versions"]
    assert len(versions) == 1  # the failed run stored nothing


def test_html_is_sanitized_and_runs_no_script(api: Api) -> None:
    api.study("S001")
    nb_id = api.post("/api/v1/studies/S001/notebooks",
                     {"name": "hostile", "notebook": hostile_notebook()}).json()["id"]
    r = api.get(f"/api/v1/notebooks/{nb_id}/html")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # default-src 'none' forbids every script
    html = r.text
    assert "Tumour area by dose group." in html
    assert "<b>table</b>" in html
    assert re.search(r"<script", html, re.I) is None
    assert re.search(r"\bon[a-z]+\s*=", html, re.I) is None
    assert "javascript:" not in html.lower()
    assert "pwned" not in html
    assert "widget-state" not in html
    assert "IntSliderModel" not in html
    assert re.search(r'<img[^>]+src="data:image/png;base64,', html)
    assert 'src="x"' not in html


def test_publish_cli(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    api.study("S001")
    analyst = api.token("ann", "analyst")
    path = tmp_path / "weekly qc.ipynb"
    path.write_text(json.dumps(notebook()))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for key in ("PLEXHUB_API_URL", "PLEXHUB_API_TOKEN", "JUPYTERHUB_SERVICE_PREFIX"):
        monkeypatch.delenv(key, raising=False)
    with running_server(api.settings) as base:
        monkeypatch.setenv("PLEXHUB_API_URL", base)
        monkeypatch.setenv("PLEXHUB_API_TOKEN", analyst)
        assert cmd_publish(parser.parse_args([str(path), "--study", "S001"])) == 0
        assert "published S001/weekly qc version 1" in capsys.readouterr().out
        args = parser.parse_args([str(path), "--study", "S001", "--name", "qc",
                                  "--api", base, "--token", analyst])
        assert cmd_publish(args) == 0
        with pytest.raises(PlexhubError, match="404"):
            cmd_publish(parser.parse_args([str(path), "--study", "NOPE"]))
        monkeypatch.setenv("PLEXHUB_API_TOKEN", "phk_wrong")
        with pytest.raises(PlexhubError, match="401"):
            cmd_publish(parser.parse_args([str(path), "--study", "S001"]))
    names = [n["name"] for n in api.get("/api/v1/studies/S001/notebooks").json()]
    assert names == ["qc", "weekly qc"]
