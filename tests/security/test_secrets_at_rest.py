"""Files that hold data or secrets are the service's alone (folders 0700, files 0600), and
no secret reaches a log: the OAuth ``code``/``state`` of a hub login, tokens, ``_xsrf``."""

from __future__ import annotations

import secrets
import sqlite3
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from traitlets.config import Config

from plexhub.api.main import create_app
from plexhub.hub import config as hubconfig
from plexhub.hub.users import set_user
from plexhub.settings import Settings
from tests.helpers.api import ADMIN
from tests.helpers.hub import PREFIX, running_hub
from tests.helpers.service import Service, plexhub_serve

PASSWORD = "correct horse battery"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _use_catalog(settings: Settings) -> None:
    # a write: the WAL and its index exist
    with TestClient(create_app(settings, migrate=True)) as c:
        r = c.post("/api/v1/tokens", json={"user": "u", "role": "analyst", "groups": []},
                   headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 201, r.text
        catalog = settings.data_dir / "catalog.sqlite"
        for path in (settings.data_dir, catalog, catalog.with_name("catalog.sqlite-wal"),
                     catalog.with_name("catalog.sqlite-shm")):
            assert path.exists(), path
            assert mode(path) == (0o700 if path.is_dir() else 0o600), (path, oct(mode(path)))


def test_a_new_data_folder_and_catalog_are_private(tmp_path: Path) -> None:
    _use_catalog(Settings(data_dir=tmp_path / "new" / "data", admin_token=SecretStr(ADMIN)))


def test_an_existing_data_folder_and_catalog_are_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    catalog = data / "catalog.sqlite"
    with sqlite3.connect(catalog) as conn:  # an old catalog, as the umask left it
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
    for path in (catalog, catalog.with_name("catalog.sqlite-wal")):
        path.touch()
        path.chmod(0o644)
    _use_catalog(Settings(data_dir=data, admin_token=SecretStr(ADMIN)))


def test_hub_state_is_private(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "d", demo_password=SecretStr(PASSWORD),
                 chp_command=sys.executable)
    state = s.hub_dir
    state.mkdir(parents=True, mode=0o755)
    state.chmod(0o755)
    old = ("jupyterhub_cookie_secret", "jupyterhub.log", "jupyterhub.sqlite-journal")
    for name in old:
        (state / name).write_text("x")
        (state / name).chmod(0o644)
    set_user(s.hub_users_path, "boss", "admin", PASSWORD)
    s.hub_users_path.chmod(0o644)
    (state / "homes").mkdir(mode=0o755)
    (state / "homes").chmod(0o755)
    hubconfig.configure(Config(), s)
    assert mode(state) == 0o700
    assert mode(state / "homes") == 0o700
    for name in (*old, "users.json", "jupyterhub.sqlite"):
        assert mode(state / name) == 0o600, name
    # the hub's database exists before the hub opens it, 0600; SQLite's journals follow
    with sqlite3.connect(state / "jupyterhub.sqlite") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert mode(state / "jupyterhub.sqlite-wal") == 0o600
        assert mode(state / "jupyterhub.sqlite-shm") == 0o600


@pytest.fixture(scope="module")
def hub_mode_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """``plexhub serve`` as the hub starts it (hub mode: the OAuth callback exists)."""
    tmp = tmp_path_factory.mktemp("hubmode")
    env = {"PLEXHUB_ADMIN_TOKEN": "admin-" + secrets.token_hex(16),
           "JUPYTERHUB_API_TOKEN": "hub-" + secrets.token_hex(16),
           "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api"}
    with plexhub_serve(tmp / "data", tmp / "serve.log", env) as svc:
        yield svc


def test_the_access_log_has_no_oauth_code_state_or_token(hub_mode_service: Service) -> None:
    svc = hub_mode_service
    with httpx.Client(base_url=svc.base, timeout=30) as c:
        r = c.get("/oauth_callback", params={"code": "SECRET-CODE-1", "state": "SECRET-ST-2"})
        assert r.status_code == 403  # an unknown state: refused without asking the hub
        r = c.get("/api/v1/health", params={"token": "SECRET-TOK-3", "_xsrf": "SECRET-X-4",
                                            "api_key": "SECRET-K-5", "page": "keep-me"})
        assert r.status_code == 200
        c.get("/portal/login?next=%2Fportal%2F&access_token=SECRET-AT-6")
    text = svc.log_text()
    assert '"GET /oauth_callback?code=[redacted]&state=[redacted] HTTP/1.1" 403' in text
    assert "_xsrf=[redacted]" in text
    assert "page=keep-me" in text  # only secret-looking values go
    assert "next=%2Fportal%2F" in text
    assert "SECRET" not in text


@pytest.mark.slow
def test_a_real_hub_login_leaves_no_oauth_code_in_the_hub_log_and_its_state_private(
        tmp_path: Path) -> None:
    """JupyterHub, the proxy and the API service write one log (jupyterhub.log): the code
    and state of a hub login through the portal appear in none of its lines."""
    with running_hub(tmp_path) as hub:
        client, _ = hub.login("sponsor")
        client.follow_redirects = True
        r = client.get(f"{PREFIX}/hub-login", params={"next": f"{PREFIX}/api/v1/me"})
        assert r.status_code == 200, r.text
        (callback,) = [h.url for h in r.history if h.url.path.endswith("/oauth_callback")]
        code, state = callback.params["code"], callback.params["state"]
        assert len(code) >= 16
        assert len(state) >= 16
        time.sleep(1)  # the access log line is written after the answer
        text = hub.log_path.read_text(errors="replace")
        assert f"{PREFIX}/oauth_callback?code=[redacted]&state=[redacted]" in text
        assert code not in text
        assert state not in text
        hub_dir = hub.data_dir / "hub"
        assert mode(hub.data_dir) == 0o700
        assert mode(hub_dir) == 0o700
        for name in ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "users.json"):
            assert mode(hub_dir / name) == 0o600, name
        assert mode(hub.data_dir / "catalog.sqlite") == 0o600
