"""Every route declares its authorization as a dependency (issue 13, the API convention).

The app's routes are walked as ``plexhub.api.main.include_routes`` builds them (the app
factory calls the same function): each route has at least one of the dependencies
registered in ``plexhub.api.deps.AUTHORIZATION`` (a scope, a visible resource, or Public),
a resource is resolved before a scope (so a caller who may not see it gets its 404, never a
403), open routes are exactly the documented ones, and the OpenAPI document is valid.
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from openapi_spec_validator import validate

from plexhub.api.deps import AUTHORIZATION, AuthKind, Scope
from plexhub.api.main import include_routes

# Open on purpose: liveness, and the logins (they check the token or the hub's answer).
PUBLIC = {("GET", "/api/v1/health"), ("GET", "/hub-login"), ("GET", "/oauth_callback"),
          ("GET", "/portal/login"), ("POST", "/portal/login"), ("POST", "/portal/logout"),
          ("GET", "/api/v1/signatures/oidc/callback"),  # the sealed state and ID token check
          ("GET", "/portal/sign/oidc/done")}  # the same check, as a page


@pytest.fixture(scope="module")
def app() -> FastAPI:
    app = FastAPI()
    include_routes(app, hub=True)
    return app


def operations(app: FastAPI) -> list[tuple[str, str, Dependant]]:
    """(method, path, dependant) of every API route, as included (with its routers'
    prefixes and dependencies)."""
    found = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            dependant = route.dependant
            assert isinstance(dependant, Dependant)
            assert route.path
            assert route.methods
            found += [(method, route.path, dependant) for method in sorted(route.methods)]
    return found


def checks(dependant: Dependant, seen: set[object] | None = None
           ) -> list[tuple[AuthKind, str]]:
    """The authorization dependencies of a route in the order FastAPI calls them (each
    one's own dependencies first; a dependency used twice is called once)."""
    seen = set() if seen is None else seen
    found: list[tuple[AuthKind, str]] = []
    for sub in dependant.dependencies:
        if sub.call in seen:
            continue
        found += checks(sub, seen)
        seen.add(sub.call)
        if sub.call in AUTHORIZATION:
            found.append(AUTHORIZATION[sub.call])
    return found


def test_every_route_declares_its_authorization(app: FastAPI) -> None:
    ops = operations(app)
    assert len(ops) >= 45, [(m, p) for m, p, _ in ops]
    missing = [(m, p) for m, p, dep in ops if not checks(dep)]
    assert not missing, f"routes without an authorization dependency: {missing}"


def test_open_routes_are_exactly_the_documented_ones(app: FastAPI) -> None:
    public = {(m, p): checks(dep) for m, p, dep in operations(app)
              if ("public", AUTHORIZATION_PUBLIC) in checks(dep)}
    assert set(public) == PUBLIC
    for op, found in public.items():  # open and checked at once would be a contradiction
        assert [kind for kind, _ in found] == ["public"], (op, found)


AUTHORIZATION_PUBLIC = next(what for kind, what in AUTHORIZATION.values() if kind == "public")


def test_a_resource_is_checked_before_a_scope(app: FastAPI) -> None:
    """A sponsor without a grant gets the 404 of an unknown id from every route, also those
    its role may not call: the resource's dependency runs first."""
    wrong = []
    for method, path, dep in operations(app):
        kinds = [kind for kind, _ in checks(dep)]
        if "scope" in kinds and "resource" in kinds[kinds.index("scope"):]:
            wrong.append((method, path, kinds))
    assert not wrong, wrong


def test_a_resource_dependency_reads_a_parameter_of_its_route(app: FastAPI) -> None:
    for method, path, dep in operations(app):
        for kind, what in checks(dep):
            if kind == "resource":
                names = re.findall(r"{(\w+)}", what)
                assert names, what
                assert all(f"{{{n}}}" in path or f"{{{n}:" in path for n in names), \
                    (method, path, what)


def test_a_route_with_a_scope_says_which(app: FastAPI) -> None:
    scoped = {(m, p): [w for k, w in checks(dep) if k == "scope"]
              for m, p, dep in operations(app)}
    assert scoped[("POST", "/api/v1/studies")] == ["studies:write"]
    assert scoped[("POST", "/api/v1/studies/{code}/images")] == ["images:write"]
    assert scoped[("POST", "/api/v1/studies/{code}/grants")] == ["grants:write"]
    assert scoped[("DELETE", "/api/v1/grants/{grant_id}")] == ["grants:write"]
    assert scoped[("GET", "/api/v1/audit")] == ["audit:read"]
    assert scoped[("POST", "/api/v1/jobs/{job_id}/cancel")] == ["jobs:write"]
    assert scoped[("POST", "/api/v1/tokens")] == ["tokens:write"]
    assert scoped[("POST", "/api/v1/studies/{code}/notebooks")] == ["presets:write"]
    assert scoped[("GET", "/api/v1/images/{image_id}")] == []  # visibility only


def test_an_unknown_scope_is_refused_when_the_route_is_declared() -> None:
    with pytest.raises(ValueError, match="images:wirte"):
        Scope("images:wirte")


def test_the_openapi_document_is_valid(app: FastAPI) -> None:
    doc = app.openapi()
    validate(doc)
    ops = doc["paths"]["/api/v1/images/{image_id}"]["get"]
    # the path parameter comes from the dependency and is documented as before
    assert [(p["name"], p["in"], p["required"]) for p in ops["parameters"]] == \
        [("image_id", "path", True)]
    token = doc["paths"]["/api/v1/tokens/{token_id}"]["delete"]["parameters"]
    assert {"name": "token_id", "in": "path", "required": True,
            "schema": {"type": "string", "maxLength": 64, "title": "Token Id"}} in token


def test_the_tile_routes_check_the_image_through_the_cached_lookup(app: FastAPI) -> None:
    from plexhub.api.deps import tile_image_in_path

    cached = AUTHORIZATION[tile_image_in_path]
    for method, path in [
            ("GET", "/api/v1/images/{image_id}/tiles/{level}/{row}/{col}.{fmt}"),
            ("POST", "/api/v1/images/{image_id}/tiles/{level}/{row}/{col}.{fmt}"),
            ("GET", "/api/v1/images/{image_id}/image_files/{dz_level}/{name}")]:
        [dep] = [d for m, p, d in operations(app) if (m, p) == (method, path)]
        assert checks(dep) == [cached], (method, path)


def test_only_the_hub_records_its_failed_logins(app: FastAPI) -> None:
    """Issue 14: the hub's own route (its failed logins) is checked by the hub's key alone."""
    found = {(m, p): checks(dep) for m, p, dep in operations(app)}
    assert [kind for kind, _ in found[("POST", "/api/v1/audit/login-events")]] == ["hub"]
    assert [(m, p) for (m, p), c in found.items() if ("hub" in {k for k, _ in c})] \
        == [("POST", "/api/v1/audit/login-events")]
