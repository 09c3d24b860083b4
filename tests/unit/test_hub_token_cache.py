"""Hub tokens a service process already checked are known without asking the hub again (and
without a thread hop), for at most the hub cache's lifetime; refusals are never trusted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import SecretStr

from plexhub.api import hubauth
from plexhub.api.auth import TokenStore
from plexhub.api.db import Database
from plexhub.api.hubauth import HubAuth, HubConfig
from plexhub.settings import Settings


class FakeHubUserApi(BaseHTTPRequestHandler):
    """``GET /hub/api/user`` as JupyterHub answers it, for one known token."""

    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        if self.path != "/hub/api/user" or self.headers.get("Authorization") != "token hubtok":
            self.send_response(403)
            self.end_headers()
            return
        body = json.dumps({"kind": "user", "name": "ann", "admin": False,
                           "groups": ["plexhub-sponsors", "org-acme"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TokenStore]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHubUserApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeHubUserApi.calls = 0
    port = server.server_address[1]
    hub = HubAuth(HubConfig(api_url=f"http://127.0.0.1:{port}/hub/api", api_token="svc",
                            client_id="service-plexhub", prefix="/services/plexhub/",
                            callback_url="/services/plexhub/oauth_callback", public_hub=""))
    settings = Settings(data_dir=tmp_path,
                        admin_token=SecretStr("admin-token-for-tests-0123456789"))
    db = Database(settings.catalog_url)
    db.create()
    try:
        yield TokenStore(db, settings, hub.resolve, hub.cached)
    finally:
        hub.close()
        db.dispose()
        server.shutdown()
        server.server_close()


def test_an_accepted_hub_token_is_known_without_asking_again(store: TokenStore) -> None:
    assert store.cached("hubtok") == (False, None)  # never checked: resolve() asks the hub
    who = store.resolve("hubtok")
    assert who is not None
    assert (who.user, who.role, who.groups) == ("ann", "sponsor", frozenset({"acme"}))
    assert FakeHubUserApi.calls == 1
    assert store.cached("hubtok") == (True, who)
    assert FakeHubUserApi.calls == 1


def test_refused_tokens_and_expired_checks_are_not_trusted(
        store: TokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    assert store.resolve("stolen") is None
    assert store.cached("stolen") == (False, None)  # resolve() again, which may say 401
    assert store.resolve("hubtok") is not None
    monkeypatch.setattr(hubauth, "CACHE_SECONDS", 0.0)
    assert store.cached("hubtok") == (False, None)
