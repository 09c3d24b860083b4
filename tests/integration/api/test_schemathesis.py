"""Property-based API testing from the OpenAPI document: no 5xx, no schema violation, as
every kind of caller (admin, scientist, analyst, a sponsor with a grant, one without).

One real server, one study with a converted image, its default preset and a published
notebook; then one Schemathesis run per role over the whole document. Path parameters and a
few body fields are drawn, part of the time, from dictionaries of the ids that exist and of
hostile values (names over 255 bytes, NUL characters, manifests of the wrong shape or not
UTF-8), so the fuzzing reaches past the 404 of an unknown id. Roles other than the admin get
fewer examples per operation: most of their answers are the same 403/404, and the whole test
must stay short (about 1.5 minutes on two cores)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from plexhub.client import ApiClient
from plexhub.settings import Settings
from tests.helpers.api import ADMIN
from tests.helpers.sample_data import notebook
from tests.helpers.server import running_server

# role name -> (token body, examples per operation)
ROLES: dict[str, tuple[dict[str, object] | None, int]] = {
    "admin": (None, 12),
    "scientist": ({"user": "sci", "role": "scientist"}, 4),
    "analyst": ({"user": "ana", "role": "analyst"}, 4),
    "sponsor-granted": ({"user": "spo", "role": "sponsor", "groups": ["acme"]}, 4),
    "sponsor-none": ({"user": "nob", "role": "sponsor", "groups": ["globex"]}, 3),
}


def _ok(r: httpx.Response) -> dict[str, object]:
    assert r.status_code < 300, r.text
    return dict(r.json())


LONG = "x" * 300  # a path component over the 255 bytes of NAME_MAX
MANIFESTS = {"five.json": b"[5]", "strings.json": b'["ab"]', "object.json": b"{}",
             "latin1.csv": b"source,tissue\ncaf\xe9.tif,lung\n",
             "panel.csv": b"source,stain_panel\nsmall_vectra.qptiff,{not json\n"}


def _config(tmp_path: Path, ids: dict[str, str]) -> Path:
    """schemathesis.toml: the known ids and hostile values as dictionaries, each drawn for
    its parameter part of the time (the rest is generated)."""
    values = {
        "code": ["S001", LONG, "S\x00"],
        "image_id": [ids["image"], LONG],
        "preset_id": [ids["preset"]],
        "job_id": [ids["job"]],
        "notebook_id": [ids["notebook"]],
        "path": ["zarr.json", "0/zarr.json", f"0/{LONG}", f"{LONG}/{LONG}", "a\x00b"],
        "source": ["small_vectra.qptiff", LONG, f"{LONG}/{LONG}", "a\x00b", *MANIFESTS],
        "manifest": [*MANIFESTS, "small_vectra.qptiff", LONG],
        "folder": [".", LONG],
        "study": ["S001", "S\x00"],
    }
    lines = []
    for name, entries in values.items():
        quoted = ", ".join(json.dumps(v) for v in entries)
        lines += [f"[dictionaries.{name}]", f"values = [{quoted}]", ""]
    lines.append("[parameters]")
    where = {"path": ("code", "image_id", "preset_id", "job_id", "notebook_id", "path"),
             "body": ("source", "manifest", "folder"), "query": ("study",)}
    for location, names in where.items():
        for name in names:
            lines.append(f'"{location}.{name}" = {{ dictionary = "{name}", '
                         'probability = 0.5 }')
    config = tmp_path / "schemathesis.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _seed(base: str) -> tuple[dict[str, str], dict[str, str]]:
    """A study with a converted image, its default preset, a notebook and a grant; a token
    per role. Returns the tokens and the ids."""
    h = {"Authorization": f"Bearer {ADMIN}"}
    _ok(httpx.post(f"{base}/api/v1/studies", headers=h,
                   json={"code": "S001", "title": "t", "sponsor": "acme"}))
    job = _ok(httpx.post(f"{base}/api/v1/studies/S001/images", headers=h,
                         json={"source": "small_vectra.qptiff"}))
    with ApiClient(base, ADMIN) as client:
        converted = client.wait_for_job(str(job["job_id"]), 120, interval=0.1)
    assert converted["state"] == "done", f"the sample did not convert: {converted}"
    _ok(httpx.post(f"{base}/api/v1/studies/S001/grants", headers=h, json={
        "principal": "group:acme", "capabilities": ["view", "view_notebooks", "download"]}))
    nb = _ok(httpx.post(f"{base}/api/v1/studies/S001/notebooks", headers=h,
                        json={"name": "results", "notebook": notebook()}, timeout=60))
    image = str(job["image_id"])
    presets = httpx.get(f"{base}/api/v1/images/{image}/presets", headers=h).json()
    ids = {"image": image, "job": str(job["job_id"]), "notebook": str(nb["id"]),
           "preset": str(presets[0]["id"])}
    tokens = {}
    for role, (body, _) in ROLES.items():
        tokens[role] = ADMIN if body is None else str(
            _ok(httpx.post(f"{base}/api/v1/tokens", headers=h, json=body))["token"])
    return tokens, ids


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors_for_any_role(tmp_path: Path, real: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN), chunk_size=64,
                        block_size=128)
    (tmp_path / "data" / "incoming").mkdir(parents=True)
    shutil.copy(real / "qptiff" / "small_vectra.qptiff", tmp_path / "data" / "incoming")
    for name, data in MANIFESTS.items():
        (tmp_path / "data" / "incoming" / name).write_bytes(data)
    failures = []
    # the coverage phase is left out: with Python 3.11 it trips over a hypothesis-internal
    # error ("AST constructor recursion depth mismatch") that is not about this API
    with running_server(settings) as base:
        tokens, ids = _seed(base)
        config = _config(tmp_path, ids)
        for role, (_, examples) in ROLES.items():
            res = subprocess.run(
                [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
                 f"{base}/api/v1/openapi.json", "-H", f"Authorization: Bearer {tokens[role]}",
                 "--checks", "not_a_server_error,response_schema_conformance",
                 "--phases", "examples,fuzzing", "--max-examples", str(examples),
                 "--seed", "1", "--workers", "2", "--request-timeout", "30",
                 "--generation-database", "none",
                 "--suppress-health-check", "all", "--report-dir", str(tmp_path / role)],
                capture_output=True, text=True, timeout=900, cwd=tmp_path)
            (tmp_path / f"schemathesis-{role}.txt").write_text(res.stdout + res.stderr)
            tail = res.stdout[-4000:]
            if res.returncode != 0 or not ("passed" in tail.lower()
                                           or "no issues" in tail.lower()):
                failures.append(f"--- as {role} (rc {res.returncode}):\n{tail}")
    assert not failures, "\n".join(failures)
