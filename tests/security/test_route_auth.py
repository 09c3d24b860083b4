"""Authorization as dependencies, seen from outside (issue 13): every write operation of the
OpenAPI document that names a study, image, job, grant or token answers a sponsor without
a grant exactly as it answers an id that does not exist (a 404; a 403 where the role's scope
is checked first), whatever the body: the checks run before the body is validated. A sponsor
with a grant is refused by its role's scope (403), or gets as far as the body (422).
The GET operations are covered by tests/integration/api/test_sponsor_isolation.py."""

from __future__ import annotations

import re

from tests.helpers.api import Api
from tests.helpers.sample_data import ingest_synthetic

IDS = ("code", "image_id", "job_id", "grant_id", "token_id", "preset_id", "guide_id")
PARAMS = {"level": "0", "row": "0", "col": "0", "fmt": "png"}
FAKE = {"code": "ZZ-unknown", "image_id": "0" * 32, "job_id": "2" * 32, "grant_id": "4" * 32,
        "token_id": "5" * 32, "preset_id": "6" * 32, "guide_id": "7" * 32}
# what a granted sponsor gets from each write ({} is not a valid body of any of them)
GRANTED = {
    "PATCH /api/v1/studies/{code}": 403,
    "POST /api/v1/studies/{code}/lock": 403,
    "POST /api/v1/studies/{code}/unlock": 403,
    "PUT /api/v1/studies/{code}/profile": 403,
    "POST /api/v1/studies/{code}/grants": 403,
    "DELETE /api/v1/grants/{grant_id}": 403,
    "DELETE /api/v1/tokens/{token_id}": 404,  # another user's token
    "POST /api/v1/studies/{code}/images": 403,
    "POST /api/v1/studies/{code}/images:batch": 403,
    "POST /api/v1/jobs/{job_id}/cancel": 403,
    "POST /api/v1/jobs/{job_id}/retry": 403,
    "POST /api/v1/images/{image_id}/presets": 403,
    "POST /api/v1/images/{image_id}/presets:import": 422,
    "POST /api/v1/images/{image_id}/presets:apply": 422,
    "POST /api/v1/studies/{code}/notebooks": 403,
    "POST /api/v1/presets/{preset_id}/approve": 403,
    "POST /api/v1/images/{image_id}/tiles/{level}/{row}/{col}.{fmt}": 422,
    "POST /api/v1/images/{image_id}/annotations": 403,
    "POST /api/v1/images/{image_id}/findings": 403,
    "PUT /api/v1/studies/{code}/review": 403,
    "POST /api/v1/images/{image_id}/verdicts": 403,
    "POST /api/v1/images/{image_id}/review/complete": 403,
    "POST /api/v1/studies/{code}/review/signoff": 403,
    "POST /api/v1/images/{image_id}/views": 422,  # a sponsor's own saved view: the body
    "POST /api/v1/studies/{code}/guides": 403,
    "POST /api/v1/guides/{guide_id}/revoke": 403,
    "POST /api/v1/images/{image_id}/retire": 403,
    "POST /api/v1/images/{image_id}/unretire": 403,
    "POST /api/v1/images/{image_id}/tier": 403,
    "POST /api/v1/images/{image_id}/restore": 409,  # a grant holder may ask; the image is hot
}
# checked before the resource: the same 403 for every id (it tells nothing either way)
SCOPE_FIRST = {"DELETE /api/v1/grants/{grant_id}"}


def writes(api: Api) -> list[tuple[str, str, str]]:
    """(method, path template, id kind) of every write naming one of IDS."""
    doc = api.get("/api/v1/openapi.json").json()
    found = []
    for path, ops in doc["paths"].items():
        kinds = [n for n in re.findall(r"{(\w+)}", path) if n in IDS]
        for method in ops:
            if method != "get" and kinds:
                (kind,) = kinds
                found.append((method.upper(), path, kind))
    return found


def fill(template: str, kind: str, value: str) -> str:
    url = template.replace("{" + kind + "}", value)
    for name, v in PARAMS.items():
        url = url.replace("{" + name + "}", v)
    return url


def test_writes_hide_what_a_sponsor_may_not_see(api: Api) -> None:
    api.study("S1")
    image, job = ingest_synthetic(api, "S1", "s1.ome.tif", 3)
    grant = api.post("/api/v1/studies/S1/grants",
                     {"principal": "group:acme", "capabilities": ["view"]}).json()["id"]
    api.token("sci", "scientist")
    sci_token = api.get("/api/v1/tokens", params={"user": "sci"}).json()[0]["id"]
    preset = api.get(f"/api/v1/images/{image}/presets").json()[0]["id"]
    guide = api.post("/api/v1/studies/S1/guides", {"name": "tour", "waypoints": [
        {"image_id": image}]}).json()["id"]
    ids = {"code": "S1", "image_id": image, "job_id": job, "grant_id": grant,
           "token_id": sci_token, "preset_id": preset, "guide_id": guide}
    granted, outsider = api.token("spo", "sponsor", ["acme"]), api.token("nob", "sponsor",
                                                                         ["globex"])
    ops = writes(api)
    assert {f"{m} {p}" for m, p, _ in ops} == set(GRANTED)
    for method, template, kind in ops:
        op = f"{method} {template}"
        body: dict[str, object] | None = None if method == "DELETE" else {}
        for_real = api.client.request(method, fill(template, kind, ids[kind]), json=body,
                                      headers=api.h(outsider))
        unknown = api.client.request(method, fill(template, kind, FAKE[kind]), json=body,
                                     headers=api.h(outsider))
        want = 403 if op in SCOPE_FIRST else 404
        assert for_real.status_code == want, (op, for_real.status_code, for_real.text)
        assert (unknown.status_code, unknown.text.replace(FAKE[kind], ids[kind])) == \
            (for_real.status_code, for_real.text), op
        if kind != "code":
            assert "S1" not in for_real.text, op
        seen = api.client.request(method, fill(template, kind, ids[kind]), json=body,
                                  headers=api.h(granted))
        assert seen.status_code == GRANTED[op], (op, seen.status_code, seen.text)
    # nothing changed on the way
    assert api.get(f"/api/v1/jobs/{job}").json()["state"] == "done"
    assert api.get("/api/v1/studies/S1/grants").json()[0]["revoked_at"] is None
