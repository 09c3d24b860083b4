"""The findings webhook (issue 19), on SQLite and PostgreSQL, against a real HTTP server on
loopback: a study's sign-off queues its findings export in the catalog; the receiver fails
the first call (503), the service is restarted before the retry, and the next process
delivers the same body, HMAC-SHA256-signed with the secret, which no log line shows; a
failed call is retried after its backoff in the same process too."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from plexhub.api import webhooks
from plexhub.api.main import create_app
from plexhub.api.models import Image
from plexhub.ome_pipeline.analysis import analyze
from plexhub.settings import Settings
from tests.helpers.api import ADMIN, Api
from tests.helpers.sample_data import ingest_synthetic

SECRET = "webhook-secret-for-tests-0123456789"


class Receiver:
    """A loopback HTTP server that answers 503 to the first and third calls, else 200."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(503 if len(outer.calls) in (1, 3) else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/findings"

    def wait(self, n: int, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while len(self.calls) < n:
            assert time.monotonic() < end, f"{len(self.calls)} calls, expected {n}"
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver) -> Settings:
    from tests.helpers.postgres import fresh_database

    url = None
    if request.param == "postgresql":
        url = fresh_database(request.getfixturevalue("pg_server"))
    (tmp_path / "data" / "incoming").mkdir(parents=True)
    return Settings(data_dir=tmp_path / "data", admin_token=SecretStr(ADMIN), database_url=url,
                    chunk_size=64, block_size=128, findings_webhook=receiver.url,
                    findings_webhook_secret=SecretStr(SECRET),
                    findings_webhook_backoff_seconds=0.2)


def sign_off(api: Api, code: str, analysed: bool = False) -> None:
    """A study with one slide and one finding, peer reviewed and signed off by both
    (``analysed``: the slide's cells segmented and phenotyped first)."""
    api.study(code)
    image, _ = ingest_synthetic(api, code, f"{code}.ome.tif", 6, {"animal_id": "A-3"},
                                size=256)
    if analysed:
        state = api.client.app.state.plexhub  # type: ignore[attr-defined]
        with state.db.new_session() as s:
            row = s.get(Image, image)
            assert row is not None
            root = row.store_root().path
        analyze(root, nuclear="DAPI", phenotypes=["bright: CD3+"], show_progress=False)
    pat, rev = api.token("pat", "scientist"), api.token("rev", "scientist")
    r = api.client.put(f"/api/v1/studies/{code}/review", json={"primary": "pat", "peer": "rev"},
                       headers=api.h())
    assert r.status_code == 200, r.text
    r = api.post(f"/api/v1/images/{image}/findings", {
        "tissue": "liver", "term": "necrosis, hepatocellular", "severity": 2}, token=pat)
    finding = r.json()["id"]
    for token, url, body in (
            (pat, f"/api/v1/images/{image}/review/complete", {}),
            (rev, f"/api/v1/images/{image}/verdicts", {"finding": finding, "verdict": "agree"}),
            (rev, f"/api/v1/images/{image}/review/complete", {}),
            (pat, f"/api/v1/studies/{code}/review/signoff", {"credential": pat}),
            (rev, f"/api/v1/studies/{code}/review/signoff", {"credential": rev})):
        r = api.post(url, body, token=token)
        assert r.status_code in (200, 201), (url, r.text)


def _deliveries(api: Api, code: str) -> list[dict[str, Any]]:
    db = api.client.app.state.plexhub.db  # type: ignore[attr-defined]
    with db.session() as s:
        return webhooks.deliveries(s, code)


def test_the_signoff_webhook_is_signed_retried_and_survives_a_restart(
        settings: Settings, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    incoming = settings.data_dir / "incoming"
    with TestClient(create_app(settings, migrate=True)) as client:
        api = Api(client, settings, incoming)
        sign_off(api, "WH1", analysed=True)
        receiver.wait(1)  # the first call fails (503) ...
        end = time.monotonic() + 10
        while _deliveries(api, "WH1")[0]["attempts"] < 1:
            assert time.monotonic() < end
            time.sleep(0.05)
        (row,) = _deliveries(api, "WH1")
        assert (row["state"], row["attempts"], row["last_error"]) == ("pending", 1, "HTTP 503")
    # ... the service stops before the retry; the next one delivers from the catalog
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings, incoming)
        receiver.wait(2)
        end = time.monotonic() + 10
        while _deliveries(api, "WH1")[0]["state"] != "sent":
            assert time.monotonic() < end
            time.sleep(0.05)
        # a second study's call fails once and is retried by this process after its backoff
        sign_off(api, "WH2")
        receiver.wait(4)
        end = time.monotonic() + 10
        while _deliveries(api, "WH2")[0]["state"] != "sent":
            assert time.monotonic() < end
            time.sleep(0.05)
        assert _deliveries(api, "WH2")[0]["attempts"] == 2
        # each delivery is an export in the study's trail (issue 14), by the service
        sent = [e for e in api.get("/api/v1/audit?study=WH1").json()
                if e["action"].startswith("webhook.")]
        assert [(e["action"], e["actor"], e["after"]["attempts"]) for e in sent] == [
            ("webhook.sent", "system", 2)]
    (first_headers, first), (headers, body) = receiver.calls[:2]
    assert len(receiver.calls) == 4
    assert json.loads(receiver.calls[3][1])["study"] == "WH2"
    assert body == first
    assert headers["x-plexhub-delivery"] == first_headers["x-plexhub-delivery"]
    want = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sent[0]["after"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert headers["x-plexhub-signature"] == f"sha256={want}"
    assert headers["x-plexhub-event"] == "findings.signed_off"
    doc = json.loads(body)
    assert (doc["study"], doc["primary"], doc["peer"]) == ("WH1", "pat", "rev")
    assert {s["meaning"] for s in doc["signatures"]} == {"approved", "reviewed"}
    (finding,) = doc["findings"]
    assert (finding["MISTRESC"], finding["MISEV"], finding["MIEVAL"], finding["MIPEER"],
            finding["MIRVSTAT"], finding["MISTAT"]) == (
        "NECROSIS, HEPATOCELLULAR", "MILD", "pat", "rev", "signed_off", "signed")
    # the slide's cell results go with the findings (issue 16), with its LIMS metadata
    (cells,) = doc["cells"]
    assert cells["image_id"] == finding["MIIMAGE"]
    assert cells["metadata"]["animal_id"] == "A-3"
    assert cells["cells"] == sum(cells["counts"].values()) > 0
    assert set(cells["counts"]) == {"bright", "other"}
    assert cells["rules"] == ["bright: CD3+"]
    assert json.loads(receiver.calls[3][1])["cells"] == []  # WH2's slide was not analysed
    assert "webhook" in caplog.text
    assert SECRET not in caplog.text


def test_a_delivery_that_fails_for_good_is_audited(settings: Settings,
                                                   receiver: Receiver) -> None:
    settings = settings.model_copy(update={"findings_webhook_max_attempts": 1})
    with TestClient(create_app(settings, migrate=True)) as client:
        api = Api(client, settings, settings.data_dir / "incoming")
        sign_off(api, "WF1")
        receiver.wait(1)  # 503
        end = time.monotonic() + 10
        while _deliveries(api, "WF1")[0]["state"] != "failed":
            assert time.monotonic() < end
            time.sleep(0.05)
        failed = [e for e in api.get("/api/v1/audit?study=WF1").json()
                  if e["action"].startswith("webhook.")]
        assert [(e["action"], e["actor"], e["after"]["last_error"]) for e in failed] == [
            ("webhook.failed", "system", "HTTP 503")]
