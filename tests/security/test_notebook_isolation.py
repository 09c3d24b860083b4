"""Code in a published notebook never runs with the API service's privileges, and one
output of a published notebook cannot hide the others.

The execution proofs run a real ``plexhub serve`` process in hub mode whose own environment
holds the admin token and the hub's API token; an analyst publishes, with ``execute: true``,
a notebook that hunts for them (its environment, ``/proc/<service>/environ``, every
``/proc/*/environ``, the catalog file, the data folder) and prints what it found.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from plexhub.api import nbsandbox
from plexhub.api.main import create_app
from plexhub.settings import Settings
from tests.helpers.api import ADMIN, Api
from tests.helpers.sample_data import notebook
from tests.helpers.service import Service, plexhub_serve

NOTEBOOK_USER = "nobody"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="executing notebooks needs root "
                             "(the service switches to an unprivileged user)")
has_user = pytest.mark.skipif(not any(p.pw_name == NOTEBOOK_USER for p in pwd.getpwall()),
                              reason=f"no {NOTEBOOK_USER} user")

HUNT = r'''
import glob, json, os, socket
found = {"uid": os.getuid(), "euid": os.geteuid(), "groups": os.getgroups(),
         "environ": dict(os.environ), "reads": {}}
def grab(key, fn):
    try:
        found["reads"][key] = "ok:" + fn()
    except Exception as exc:
        found["reads"][key] = "err:" + type(exc).__name__
def read(path):
    with open(path, "rb") as f:
        return f.read(2_000_000).decode("latin-1")
grab("service environ", lambda: read("/proc/%(pid)d/environ"))
grab("service cmdline", lambda: read("/proc/%(pid)d/cmdline"))
grab("parent environ", lambda: read(f"/proc/{os.getppid()}/environ"))
for path in glob.glob("/proc/[0-9]*/environ"):
    grab(path, lambda p=path: read(p))
grab("catalog", lambda: read(%(catalog)r))
grab("catalog wal", lambda: read(%(catalog)r + "-wal"))
grab("data dir", lambda: json.dumps(os.listdir(%(data)r)))
def api():
    socket.create_connection(("127.0.0.1", %(port)d), timeout=2).close()
    return "connected"
grab("api port", api)
print(json.dumps(found))
'''


@pytest.fixture(scope="module", params=[True, False], ids=["namespaces", "user-only"])
def service(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    # the data folder under a world-traversable parent outside /tmp: only the service's own
    # fences (0700, the sandbox's mounts) keep the notebook out, not pytest's 0700 basetemp
    outer = Path(tempfile.mkdtemp(prefix="plexhub-sec-", dir="/var/tmp"))
    outer.chmod(0o755)
    admin = "admin-" + secrets.token_hex(16)
    hub_token = "hub-" + secrets.token_hex(16)
    env = {"PLEXHUB_ADMIN_TOKEN": admin, "JUPYTERHUB_API_TOKEN": hub_token,
           "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
           "PLEXHUB_NOTEBOOK_USER": NOTEBOOK_USER,
           "PLEXHUB_NOTEBOOK_NAMESPACES": str(request.param).lower()}
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    try:
        with plexhub_serve(outer / "data", log, env) as svc:
            yield Target(svc, [admin, hub_token], request.param)
    finally:
        shutil.rmtree(outer, ignore_errors=True)


@dataclass
class Target:
    svc: Service
    secrets: list[str]
    namespaces: bool


def _python_reachable() -> bool:
    """Whether the notebook user can read this Python installation by itself."""
    return subprocess.run(["test", "-r", sys.base_prefix, "-a", "-x", sys.base_prefix],
                          user=NOTEBOOK_USER, check=False).returncode == 0


def _client(svc: Service, token: str) -> httpx.Client:
    return httpx.Client(base_url=svc.base, timeout=300,
                        headers={"Authorization": f"Bearer {token}"})


@as_root
@has_user
@pytest.mark.slow
def test_executed_notebook_cannot_read_the_services_secrets(service: Target) -> None:
    svc, secret_values = service.svc, service.secrets
    admin_token = secret_values[0]
    with _client(svc, admin_token) as admin:
        assert admin.post("/api/v1/studies", json={
            "code": "SEC", "title": "t", "sponsor": "acme", "profile": "non-glp"}
        ).status_code == 201
        r = admin.post("/api/v1/tokens", json={"user": "ann", "role": "analyst",
                                               "groups": []})
        analyst = r.json()["token"]
    port = int(svc.base.rsplit(":", 1)[1])
    code = HUNT % {"pid": svc.pid, "port": port, "data": str(svc.data_dir),
                   "catalog": str(svc.data_dir / "catalog.sqlite")}
    with _client(svc, analyst) as ann:
        r = ann.post("/api/v1/studies/SEC/notebooks", json={
            "name": "hunt", "notebook": notebook(code=code), "execute": True})
        if not service.namespaces and not _python_reachable():
            # without namespaces the notebook user must reach the Python installation
            # itself; where it cannot (a 0700 home) the sandbox refuses, it never runs the
            # notebook any other way
            assert r.status_code == 422, r.text
            assert "cannot read" in r.text
            assert "execute=false" in r.text
            return
        assert r.status_code == 201, r.text
        doc = ann.get(f"/api/v1/notebooks/{r.json()['id']}").json()["ipynb"]
    text = json.dumps(doc)
    for value in secret_values:  # nowhere in what the notebook saw
        assert value not in text
    (out,) = doc["cells"][1]["outputs"]
    found = json.loads("".join(out["text"]))
    service_uid = psutil.Process(svc.pid).uids().real
    assert service_uid == 0
    assert found["uid"] == found["euid"] == pwd.getpwnam(NOTEBOOK_USER).pw_uid
    assert found["uid"] != service_uid
    assert 0 not in found["groups"]
    assert not [k for k in found["environ"] if k.startswith(("PLEXHUB_", "JUPYTERHUB_"))]
    reads = found["reads"]
    for key in ("service environ", "parent environ", "catalog", "catalog wal", "data dir"):
        assert reads[key] in ("err:PermissionError", "err:FileNotFoundError"), (key, reads)
    # what it could read (its own processes' environments) holds nothing of the service's
    assert not [k for k, v in reads.items() if "PLEXHUB" in v or "JUPYTERHUB_API" in v]


@as_root
@has_user
@pytest.mark.slow
def test_sandbox_limits_memory_and_wall_clock(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN),
                        notebook_memory_bytes=1024 * 2**20, notebook_timeout=20)
    with TestClient(create_app(settings, migrate=True)) as client:
        api = Api(client, settings, tmp_path)
        api.study("S001")
        # the address-space limit holds in the kernel: 2 GiB cannot be had
        r = api.post("/api/v1/studies/S001/notebooks", {
            "name": "big", "execute": True, "notebook": notebook(code="b = bytearray(2**31)")})
        assert r.status_code == 422, r.text
        assert "MemoryError" in r.json()["detail"]
        # past the wall clock the whole sandbox is killed: nothing of it stays behind
        monkeypatch.setattr(nbsandbox, "GRACE", -19.0)  # a 1 s wall clock
        started = time.time()
        r = api.post("/api/v1/studies/S001/notebooks", {
            "name": "slow", "execute": True, "notebook": notebook(code="1")})
        assert r.status_code == 422, r.text
        assert "ran longer than 20 s" in r.json()["detail"]
        time.sleep(0.5)
        left = [p for p in psutil.process_iter(["cmdline", "create_time", "username"])
                if p.info["create_time"] >= started - 1 and (
                    "plexhub.api.nbchild" in " ".join(p.info["cmdline"] or [])
                    or p.info["username"] == NOTEBOOK_USER)]
        assert left == []
        assert api.get("/api/v1/studies/S001/notebooks").json() == []


def test_execute_is_refused_unless_a_separate_user_can_run_it(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service that cannot switch users never runs the notebook, not even as itself."""
    api.study("S001")
    analyst = api.token("ann", "analyst")

    def no_process(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a notebook process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setattr(nbsandbox, "running_as_root", lambda: False)
    body = {"name": "run", "notebook": notebook(code="print(1)"), "execute": True}
    r = api.post("/api/v1/studies/S001/notebooks", body, analyst)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    for words in ("execute=true", "root", "JupyterLab", "execute=false"):
        assert words in detail
    monkeypatch.setattr(nbsandbox, "running_as_root", lambda: True)
    api.settings.notebook_user = ""
    r = api.post("/api/v1/studies/S001/notebooks", body, analyst)
    assert r.status_code == 422
    assert "turned off" in r.json()["detail"]
    api.settings.notebook_user = "root"
    r = api.post("/api/v1/studies/S001/notebooks", body, analyst)
    assert r.status_code == 422
    assert "root's uid" in r.json()["detail"]
    api.settings.notebook_user = "no-such-user-plexhub"
    r = api.post("/api/v1/studies/S001/notebooks", body, analyst)
    assert r.status_code == 422
    assert "is not a user of this system" in r.json()["detail"]
    assert api.get("/api/v1/studies/S001/notebooks").json() == []
    # publishing what was executed elsewhere still works
    assert api.post("/api/v1/studies/S001/notebooks", {**body, "execute": False},
                    analyst).status_code == 201


# ----------------------------------------------------------------------- rendering

# openers after which an HTML parser stops reading markup (raw text, RCDATA, plaintext,
# comments) or leaves HTML (foreign content): one left open would swallow the cells after it
OPENERS = ("<style>", "<script>", "<textarea>", "<title>", "<!--", "<xmp>", "<plaintext>",
           "<noscript>", "<iframe>", "<noembed>", "<noframes>", "<svg><style>",
           "<math><mi>", "<template>", "<select>", "<table><tr><td>")
SWALLOWING = re.compile(r"<(style|script|textarea|title|xmp|plaintext|noscript|iframe|noembed|"
                        r"noframes|svg|math|template|select|object|embed)\b|<!--|<!\[CDATA",
                        re.IGNORECASE)


def _isolation_notebook(opener: str) -> dict[str, Any]:
    html_out = {"output_type": "display_data", "metadata": {},
                "data": {"text/html": opener, "text/plain": "x"}}
    second = {"output_type": "display_data", "metadata": {},
              "data": {"text/html": "<b>MARK-SAME-CELL</b>", "text/plain": "y"}}
    md_out = {"output_type": "display_data", "metadata": {},
              "data": {"text/markdown": opener, "text/plain": "z"}}
    md_next = {"output_type": "display_data", "metadata": {},
               "data": {"text/markdown": "MARK-MD", "text/plain": "z"}}
    doc = notebook(markdown=f"# Title\n\n{opener}\n")  # the markdown cell itself opens one
    doc["cells"][1]["outputs"] = [html_out, second, md_out, md_next]
    doc["cells"][1]["metadata"]["tags"] = [f'x"{opener}']
    doc["cells"] += [{"cell_type": "markdown", "id": f"m{i}", "metadata": {},
                      "source": f"MARK-{i}"} for i in range(3)]
    doc["cells"].append({"cell_type": "code", "id": "last", "metadata": {},
                         "execution_count": 2, "source": "x", "outputs": [
                             {"output_type": "stream", "name": "stdout",
                              "text": "MARK-STREAM\n"}]})
    return doc


def _assert_visible(html: str, start: str, end: str) -> None:
    fragment = html.split(start, 1)[1].rsplit(end, 1)[0]
    assert SWALLOWING.search(fragment) is None, SWALLOWING.search(fragment)
    for i in range(3):
        assert f"<p>MARK-{i}</p>" in fragment
    assert "<b>MARK-SAME-CELL</b>" in fragment
    assert "MARK-STREAM" in fragment
    assert "<p>MARK-MD</p>" in fragment


def test_an_unclosed_tag_in_one_output_hides_nothing_else(api: Api) -> None:
    api.study("S001")
    sponsor = api.token("sue", "sponsor", ["acme"])
    api.post("/api/v1/studies/S001/grants", {"principal": "group:acme",
                                             "capabilities": ["view", "view_notebooks"]})
    c = api.client
    r = c.post("/portal/login", data={"token": sponsor, "next": "/portal/"},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    for i, opener in enumerate(OPENERS):
        r = api.post("/api/v1/studies/S001/notebooks",
                     {"name": f"n{i}", "notebook": _isolation_notebook(opener)})
        assert r.status_code == 201, r.text
        nb_id = r.json()["id"]
        page = api.get(f"/api/v1/notebooks/{nb_id}/html", sponsor)
        assert page.status_code == 200
        _assert_visible(page.text, '<main class="plexhub-notebook">', "</main>")
        assert page.text.endswith("</main></body></html>")
        portal = c.get(f"/portal/notebooks/{nb_id}")
        assert portal.status_code == 200, opener
        _assert_visible(portal.text, '<article class="plexhub-notebook" id="notebook">',
                        "</article>")
