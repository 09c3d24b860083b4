"""Issue 14, "no hard deletes on GLP studies": the API has no way to hard-delete a study's
records on any profile. Its only DELETE routes are revocations that keep their row
(``revoked_at``), and no module of the API or the core package issues a SQL DELETE or
``Session.delete``: an annotation's deletion is its next version marked ``deleted``, a guided
view is revoked, a grant or token revoked. So nothing is purged before a profile's
``retention_years`` either. This test fails when a route or a statement that deletes is
added: such a change must then consult ``policies.profiles.delete_decision`` (retire on a
profile without ``hard_deletes``) and ``retained_until`` and come with its own tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from plexhub.api.main import include_routes

ROOT = Path(__file__).resolve().parents[2]
# the revocations: the row stays, with revoked_at (tests/integration/api/test_grants*.py,
# test_tokens*.py)
REVOCATIONS = {"/api/v1/grants/{grant_id}", "/api/v1/tokens/{token_id}"}

pytestmark = pytest.mark.requirement("profile.hard_deletes", "profile.retention_years")


def test_the_only_delete_routes_are_revocations() -> None:
    app = FastAPI()
    include_routes(app, hub=True)
    deletes = {r.path for r in iter_route_contexts(app.routes)
               if isinstance(r.original_route, APIRoute) and "DELETE" in (r.methods or ())}
    assert deletes == REVOCATIONS


def _deleting_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name == "delete" and not (isinstance(f, ast.Attribute)
                                         and getattr(f.value, "id", "") == "router"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and "DELETE FROM" in node.value.upper():
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_module_of_the_catalog_deletes_rows() -> None:
    modules = sorted((ROOT / "api").rglob("*.py")) + sorted((ROOT / "core").glob("*.py"))
    assert modules
    offending = [hit for p in modules if "migrations" not in p.parts
                 for hit in _deleting_calls(p)]
    assert offending == []
