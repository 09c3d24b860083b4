"""The system version and configuration in force (issue 14), on SQLite and PostgreSQL: a
service start records a ``system.config`` event in the global audit chain when the
configuration differs from the last one recorded (plexhub, Python and library versions, the
non-secret settings and their SHA-256); the auditor's report, as HTML and as PDF, shows each
change and signature under the configuration in force when it was made; no secret set in
the settings appears in the events or the reports."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pypdf
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from plexhub.api import sysconfig
from plexhub.api.auditreport import SHORT
from plexhub.api.main import create_app
from plexhub.settings import Settings
from tests.helpers.api import ADMIN, Api

pytestmark = pytest.mark.requirement("audit.report")

SECRETS = {"api_token": "client-token-0b5e7c1d9a", "demo_password": "demo-pw-77c1f0e2",
           "hub_api_token": "hub-service-token-5e6f7a8b9c"}
URL_SECRET, QUERY_SECRET, DB_SECRET = "url-pw-3f9a1c", "query-token-84d2e7", "db-pw-c41a77"
H = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings with secrets in every kind of place (secret fields, a URL's password, a
    secret query parameter, the PostgreSQL URL's password)."""
    url = None
    if request.param == "postgresql":
        from tests.helpers.postgres import fresh_database

        url = fresh_database(request.getfixturevalue("pg_server"))
        # the test server trusts loopback: a password in the URL is sent, never needed
        url = url.replace("://plexhub@", f"://plexhub:{DB_SECRET}@")
    (tmp_path / "data" / "incoming").mkdir(parents=True)
    return Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN), database_url=url,
                    chunk_size=64, block_size=128,
                    api_url=f"https://svc:{URL_SECRET}@api.invalid/x?token={QUERY_SECRET}",
                    api_token=SecretStr(SECRETS["api_token"]),
                    demo_password=SecretStr(SECRETS["demo_password"]),
                    hub_api_token=SecretStr(SECRETS["hub_api_token"]))


@contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    """The service started (and stopped afterwards) on ``settings``."""
    with TestClient(create_app(settings, migrate=True)) as client:
        yield client


def configs(client: TestClient) -> list[dict[str, Any]]:
    r = client.get("/api/v1/audit", params={"limit": 1000}, headers=H)
    assert r.status_code == 200, r.text
    return [e for e in r.json() if e["action"] == "system.config"]


def ok(r: Any) -> Any:
    assert r.status_code < 300, r.text
    return r.json() if r.headers.get("content-type") == "application/json" else r


@pytest.mark.requirement("audit.system_config")
def test_each_change_shows_under_the_configuration_in_force(base: Settings) -> None:
    with running(base) as c:
        (first,) = configs(c)
        ok(c.post("/api/v1/studies", json={"code": "G1", "title": "Tox", "sponsor": "acme",
                                           "profile": "glp"}, headers=H))
        ok(c.patch("/api/v1/studies/G1", json={"title": "Tox 28d", "reason": "first-config "
                                                "change"}, headers=H))
    with running(base) as c:  # the same configuration: nothing new
        assert configs(c) == [first]
    changed = base.model_copy(update={"tile_cache_bytes": 64 * 2**20})
    with running(changed) as c:
        one, second = configs(c)
        assert one == first
        sci = ok(c.post("/api/v1/tokens", json={"user": "dr-jones", "role": "scientist"},
                        headers=H))["token"]
        ok(c.post("/api/v1/studies/G1/lock", json={"reason": "second-config lock",
                                                   "credential": sci},
                  headers={"Authorization": f"Bearer {sci}"}))
        html = ok(c.get("/api/v1/studies/G1/audit/report", headers=H)).text
        r = c.get("/api/v1/studies/G1/audit/report", params={"format": "pdf"}, headers=H)
        events = ok(c.get("/api/v1/audit", params={"limit": 1000}, headers=H))
        export = json.dumps(ok(c.get("/api/v1/studies/G1/audit", headers=H)))

    # the events: actor system, global chain, the hash of what they record
    sha1, sha2 = first["after"]["sha256"], second["after"]["sha256"]
    assert sha1 != sha2
    assert (first["actor"], first["role"], first["study"], first["entity_type"]) == (
        "system", "system", None, "system")
    assert second["before"] == {"sha256": sha1}
    config = second["after"]["config"]
    assert sysconfig.digest(config) == sha2
    assert config["settings"]["tile_cache_bytes"] == 64 * 2**20
    assert first["after"]["config"]["settings"]["tile_cache_bytes"] == 256 * 2**20
    assert config["plexhub"]
    assert config["python"]
    assert config["libraries"]["fastapi"]
    assert config["libraries"]["sqlalchemy"]
    assert config["database"] in ("sqlite", "postgresql")
    assert set(config["profiles"]) == {"glp", "non-glp"}
    assert config["settings"]["admin_token"] == sysconfig.REDACTED
    assert config["settings"]["api_url"] == (
        f"https://svc:{sysconfig.REDACTED}@api.invalid/x?token={sysconfig.REDACTED}")
    if base.database_url:
        assert f"plexhub:{sysconfig.REDACTED}@127.0.0.1" in config["settings"]["catalog_url"]

    # the HTML report: each change under its configuration, the signature with its own
    assert f"<h3>Under configuration {sha1} (recorded at event {first['seq']}," in html
    assert f"<h3>Under configuration {sha2} (recorded at event {second['seq']}," in html
    at = html.index
    assert at(f"Under configuration {sha1}") < at("first-config change") < \
        at(f"Under configuration {sha2}") < at("second-config lock")
    assert at("study.create") < at(f"Under configuration {sha2}")
    row = html[html.index("<td>dr-jones</td>"):]
    assert row[:row.index("</tr>")].endswith(f"<td><code>{sha2[:SHORT]}</code></td>")
    assert f"<code>{sha1}</code>" in html
    assert f"<code>{sha2}</code>" in html
    assert "settings.tile_cache_bytes" in html

    # the PDF: an inert attachment holding the same: reason, signer, configuration hash
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == \
        'attachment; filename="study-G1-audit-report.pdf"'
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.content.startswith(b"%PDF-")
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(r.content)).pages)
    flat = " ".join(text.split())
    for needle in ("Audit report: study G1", "glp: GLP (regulated)", "second-config lock",
                   "first-config change", "dr-jones", "approved", "study.lock",
                   f"Under configuration {sha1}", f"Under configuration {sha2}",
                   "audit chain intact", "Access over time", "Electronic signatures"):
        assert needle in flat, needle
    assert flat.index(f"Under configuration {sha1}") < flat.index("first-config change") < \
        flat.index(f"Under configuration {sha2}") < flat.index("second-config lock")

    # no secret anywhere: events, export, HTML, PDF
    everything = json.dumps(events) + export + html + text
    for secret in [*SECRETS.values(), ADMIN, URL_SECRET, QUERY_SECRET, DB_SECRET]:
        assert secret not in everything, secret
        assert secret.encode() not in r.content, secret


@pytest.mark.requirement("audit.system_config")
@pytest.mark.parametrize("url", [
    "postgresql+psycopg://app:s3cr%40t@db.internal:5432/plexhub",
    "s3://AKIAKEY:s3cr%40t@bucket/root?session_token=s3cr%40t",
    "https://x.invalid/?a=1&X-Amz-Signature=s3cr%40t&password=s3cr%40t",
])
def test_credentials_in_urls_are_redacted(url: str) -> None:
    assert "s3cr%40t" not in sysconfig.redact_text(url)
    assert sysconfig.REDACTED in sysconfig.redact_text(url)
    settings = Settings(database_url=url, ingest_roots=[url], admin_token=SecretStr(ADMIN))
    assert "s3cr%40t" not in json.dumps(sysconfig.public_settings(settings))
    assert ADMIN not in json.dumps(sysconfig.public_settings(settings))


def test_the_report_is_size_limited_in_both_formats(api: Api,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from plexhub.api.routes import compliance

    api.study("S1")
    for title in ("a", "b"):
        assert api.client.patch("/api/v1/studies/S1", json={"title": title},
                                headers=api.h()).status_code == 200
    monkeypatch.setattr(compliance, "AUDIT_REPORT_EVENTS", 3)
    for fmt in ("html", "pdf"):
        r = api.get("/api/v1/studies/S1/audit/report", params={"format": fmt})
        assert r.status_code == 413, r.text
        assert r.json()["detail"] == (
            "study S1's audit trail: has 3 events, with the report's own 4: more than the "
            "report renders "
            "(audit_report_events: 3) (export it as CSV or JSON: /api/v1/studies/S1/audit)")
    monkeypatch.setattr(compliance, "AUDIT_REPORT_EVENTS", 4)
    r = api.get("/api/v1/studies/S1/audit/report", params={"format": "pdf"})
    assert r.status_code == 200, r.text
    assert r.headers["content-security-policy"].startswith("sandbox")
