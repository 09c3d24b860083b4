"""Property: whatever the grants, a sponsor never gets data of a study not granted to it.

Hypothesis draws studies, grants (to a user or an organisation group, random capabilities,
no expiry / expired / expiring later, revoked or not) and sponsors with random groups.
For every sponsor and EVERY GET endpoint of the OpenAPI document that takes a study code,
image, preset, job or notebook id, plus the portal pages, the answer for a study that is not
granted (with the capability the endpoint needs) is a 404 identical to the one for an id
that does not exist, and names nothing of the study; for a granted one it is a success.
The expected visibility comes from a small oracle written here, not from plexhub.policies.

SQLite only (not the PostgreSQL parametrization of the ``api`` fixture): each example makes
a few hundred requests and a fresh PostgreSQL database per example would make it slow; the
grant logic under test is the same SQL on both.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from plexhub.api.main import create_app
from plexhub.settings import Settings
from tests.helpers.api import ADMIN, Api
from tests.helpers.sample_data import ingest_synthetic, notebook

USERS = ("sue", "sam", "oli")
GROUPS = ("acme", "globex", "initech")
CAPS = ("view", "view_notebooks", "download", "view_labels")
FIXED = ("P1", "P2", "P3")
# path parameters that are not an id of the study under test
PARAMS = {"version": "1", "level": "0", "row": "0", "col": "0", "fmt": "png", "z": "0",
          "t": "0", "dz_level": "6", "name": "0_0.jpeg", "path": "zarr.json"}
QUERY = {"/api/v1/presets/{preset_id}/versions/{version}/export": {"format": "napari"},
         "/api/v1/images/{image_id}/values": {"x": "0", "y": "0"},
         "/webgateway/render_image_region/{image_id}/{z}/{t}/": {"tile": "0,0,0"}}
IDS = ("code", "image_id", "preset_id", "job_id", "notebook_id")
PORTAL = ("/portal/studies/{code}", "/portal/images/{image_id}",
          "/portal/notebooks/{notebook_id}", "/portal/studies/{code}/review")
# what a granted sponsor gets where the endpoint needs more than its grant
# the harness's images are never analysed: their cell table is a 404 even with a grant
# the compliance reads (audit trail, its report, signatures) need audit:read, which sponsors lack
# the values under the cursor are a staff tool
GRANTED_STATUS = {"/api/v1/studies/{code}/grants": 403, "/api/v1/images/{image_id}/cells": 404,
                  "/api/v1/images/{image_id}/cells/summary": 404,
                  "/api/v1/studies/{code}/audit": 403, "/api/v1/studies/{code}/audit/report": 403,
                  "/api/v1/studies/{code}/signatures": 403,
                  # the peer review is staff's (its portal page: the 404 page)
                  "/api/v1/studies/{code}/review": 403, "/portal/studies/{code}/review": 404,
                  "/api/v1/images/{image_id}/values": 403}  # values under the cursor: staff
FAKE = {"code": "ZZ-unknown", "image_id": "0" * 32, "preset_id": "1" * 32,
        "job_id": "2" * 32, "notebook_id": "3" * 32}


@dataclass
class StudyData:
    code: str
    title: str
    ids: dict[str, list[str]] = field(default_factory=dict)

    def secrets(self) -> set[str]:
        """Strings only this study's answers contain (its code is short: checked apart)."""
        return {self.title, f"org-{self.code}",
                *itertools.chain(*(v for k, v in self.ids.items() if k != "code"))}


def capability(template: str) -> tuple[str, ...]:
    """The capabilities any one of which makes the endpoint's study visible."""
    if template == "/portal/studies/{code}":
        return ("view", "view_notebooks")
    if template.endswith("/original"):
        return ("download",)
    return ("view_notebooks",) if "notebook" in template else ("view",)


def endpoints(client: TestClient) -> list[str]:
    doc = client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {ADMIN}"})
    found = []
    for path, ops in doc.json()["paths"].items():
        names = re.findall(r"{(\w+)}", path)
        if "get" not in ops or not set(names) & set(IDS):
            continue
        unknown = [n for n in names if n not in IDS and n not in PARAMS]
        assert not unknown, f"{path}: give the test a value for {unknown}"
        required = {p["name"] for p in ops["get"].get("parameters", [])
                    if p.get("required") and p["in"] == "query"}
        assert required <= set(QUERY.get(path, {})), f"{path}: give values for {required}"
        found.append(path)
    assert len(found) >= 18, found
    return [*found, *PORTAL]


def urls(template: str, study: StudyData) -> Iterator[tuple[str, tuple[str, str]]]:
    """Each URL of ``template`` for the ids of ``study``, and (id kind, id) in it."""
    (kind,) = [n for n in re.findall(r"{(\w+)}", template) if n in IDS]
    for value in study.ids[kind]:
        url = template.replace("{" + kind + "}", value)
        for name, fill in PARAMS.items():
            url = url.replace("{" + name + "}", fill)
        yield url, (kind, value)


def is_text(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";")[0].strip() in (
        "application/json", "text/html", "application/xml", "text/plain")


class Harness:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.studies = [self.make_study(code, images=True) for code in FIXED]
        self.templates = endpoints(api.client)
        self.grants: list[str] = []
        self.counter = itertools.count()

    def make_study(self, code: str, images: bool) -> StudyData:
        api = self.api
        api.study(code, sponsor=f"org-{code}")
        data = StudyData(code, f"Study {code}")
        data.ids = {"code": [code], "image_id": [], "preset_id": [], "job_id": [],
                    "notebook_id": []}
        if images:
            image, job = ingest_synthetic(api, code, f"{code}.ome.tif", ord(code[-1]),
                                          {"animal_id": f"animal-{code}"})
            data.ids["image_id"].append(image)
            data.ids["job_id"].append(job)
            channels = [{"label": "DAPI", "color": "00FF00", "window": {"start": 0, "end": 4000}}]
            saved = api.post(f"/api/v1/images/{image}/presets",
                             {"name": f"mine-{code}", "channels": channels})
            assert saved.status_code == 201, saved.text
            shared = api.post("/api/v1/presets", {"scope": "study", "target": code, "document":
                                                  {"name": f"study-{code}", "channels": channels}})
            assert shared.status_code == 201, shared.text
            listed = api.get(f"/api/v1/images/{image}/presets").json()
            data.ids["preset_id"] = [p["id"] for p in listed if p["scope"] != "panel"]
            assert len(data.ids["preset_id"]) == 3
        nb = api.post(f"/api/v1/studies/{code}/notebooks",
                      {"name": f"nb-{code}", "notebook": notebook(f"About {code}")})
        data.ids["notebook_id"].append(nb.json()["id"])
        return data


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    settings_ = Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN), chunk_size=64,
                         block_size=128)
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    with TestClient(create_app(settings_, migrate=True)) as client:
        yield Harness(Api(client, settings_, incoming))


principal = st.one_of(st.sampled_from(USERS).map(lambda u: f"user:{u}"),
                      st.sampled_from(GROUPS).map(lambda g: f"group:{g}"))
grant = st.fixed_dictionaries({
    "study": st.integers(0, len(FIXED)),  # len(FIXED): this example's extra study
    "principal": principal,
    "capabilities": st.sets(st.sampled_from(CAPS), min_size=1).map(sorted),
    "expiry": st.sampled_from(["none", "past", "future"]),
    "revoked": st.booleans()})
sponsor = st.tuples(st.sampled_from(USERS), st.frozensets(st.sampled_from(GROUPS),
                                                          max_size=2))
scenario = st.fixed_dictionaries({"grants": st.lists(grant, max_size=6),
                                  "sponsors": st.lists(sponsor, min_size=1, max_size=2),
                                  "extra_study": st.booleans()})


def visible(grants: list[dict[str, Any]], code: str, user: str, groups: frozenset[str],
            caps: tuple[str, ...]) -> bool:
    names = {f"user:{user}"} | {f"group:{g}" for g in groups}
    return any(g["code"] == code and g["principal"] in names and not g["revoked"]
               and g["expiry"] != "past" and set(caps) & set(g["capabilities"])
               for g in grants)


def test_sponsors_never_see_studies_not_granted_to_them(harness: Harness) -> None:
    api = harness.api
    unknown_cache: dict[tuple[str, str], tuple[int, str]] = {}
    checked: list[int] = []  # requests per example

    def unknown(token: str, template: str, url: str, kind: str, value: str) -> tuple[int, str]:
        key = (token, template)
        if key not in unknown_cache:
            r = api.get(url.replace(value, FAKE[kind]), token,
                        params=QUERY.get(template))
            unknown_cache[key] = (r.status_code, r.text)
        return unknown_cache[key]

    @settings(max_examples=25, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(scenario)
    def check(case: dict[str, Any]) -> None:
        checked.append(0)
        for gid in harness.grants:  # every example starts from no active grant
            api.delete(f"/api/v1/grants/{gid}")
        harness.grants.clear()
        studies = list(harness.studies)
        if case["extra_study"]:
            studies.append(harness.make_study(f"X{next(harness.counter)}", images=False))
        now = datetime.now(UTC)
        made = []
        for g in case["grants"]:
            if g["study"] >= len(studies):
                continue
            code = studies[g["study"]].code
            expires = {"none": None, "past": now - timedelta(days=1),
                       "future": now + timedelta(days=1)}[g["expiry"]]
            r = api.post(f"/api/v1/studies/{code}/grants", {
                "principal": g["principal"], "capabilities": g["capabilities"],
                "expires_at": expires.isoformat() if expires else None})
            assert r.status_code == 201, r.text
            harness.grants.append(r.json()["id"])
            if g["revoked"]:
                api.delete(f"/api/v1/grants/{r.json()['id']}")
            made.append({**g, "code": code})
        for user, groups in case["sponsors"]:
            token = api.token(user, "sponsor", sorted(groups))
            listed = {s["code"] for s in api.get("/api/v1/studies", token).json()}
            assert listed == {s.code for s in studies
                              if visible(made, s.code, user, groups, ("view",))}
            home = api.get("/portal/", token).text
            for s in studies:
                shown = f'data-study="{s.code}"' in home
                assert shown == visible(made, s.code, user, groups, ("view", "view_notebooks"))
            hidden = set().union(*(s.secrets() for s in studies if not visible(
                made, s.code, user, groups, ("view", "view_notebooks"))))
            for template in harness.templates:
                for s in studies:
                    ok = visible(made, s.code, user, groups, capability(template))
                    for url, (kind, value) in urls(template, s):
                        r = api.get(url, token, params=QUERY.get(template))
                        checked[-1] += 1
                        text = r.text if is_text(r.headers.get("content-type")) else ""
                        assert not {x for x in hidden - {value} if x in text}, url
                        if ok:
                            want = GRANTED_STATUS.get(template, 200)
                            assert r.status_code == want, (url, r.status_code, r.text[:300])
                            continue
                        assert r.status_code == 404, (url, r.status_code, r.text[:300])
                        status, body = unknown(token, template, url, kind, value)
                        assert (r.status_code, r.text.replace(value, FAKE[kind])) == \
                            (status, body), url
                        assert kind == "code" or s.code not in r.text, url

    check()
    assert len(checked) >= 25
    assert sum(checked) >= 25 * 50, checked
