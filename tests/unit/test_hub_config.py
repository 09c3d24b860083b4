"""The hub config as data: roles, groups, landing URL, service, users file (no hub runs)."""

from __future__ import annotations

import asyncio
import stat
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from traitlets.config import Config

from plexhub.hub import config as hubconfig
from plexhub.hub.auth import PlexhubAuthenticator
from plexhub.hub.spawner import PlexhubSpawner
from plexhub.hub.users import (
    ensure_demo_users,
    hash_password,
    load_users,
    set_user,
    verify_password,
)
from plexhub.settings import Settings

PASSWORD = "correct horse battery"


def test_password_hashes() -> None:
    encoded = hash_password(PASSWORD)
    assert encoded.startswith("scrypt$32768$8$1$")
    assert PASSWORD not in encoded
    assert verify_password(PASSWORD, encoded)
    assert not verify_password(PASSWORD + "x", encoded)
    assert hash_password(PASSWORD) != encoded  # salted
    for broken in ("", "plain", "scrypt$1$2$3$$", "pbkdf2$a$b$c$d$e"):
        assert not verify_password(PASSWORD, broken)
    with pytest.raises(ValueError, match="8 characters"):
        hash_password("short")


def test_demo_users_file(tmp_path: Path) -> None:
    path = tmp_path / "hub" / "users.json"
    assert ensure_demo_users(path, PASSWORD) == ["scientist", "analyst", "sponsor"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PASSWORD not in path.read_text()
    users = load_users(path)
    assert users["sponsor"].role == "sponsor"
    assert users["sponsor"].orgs == ("acme",)
    assert users["scientist"].orgs == ()
    before = path.read_bytes()
    ensure_demo_users(path, PASSWORD)  # same password: nothing rewritten
    assert path.read_bytes() == before
    ensure_demo_users(path, "another password")
    assert verify_password("another password", load_users(path)["analyst"].password_hash)
    set_user(path, "boss", "admin", PASSWORD)
    assert hubconfig.load_groups(path) == {
        "plexhub-admins": {"users": ["boss"]},
        "plexhub-scientists": {"users": ["scientist"]},
        "plexhub-analysts": {"users": ["analyst"]},
        "plexhub-sponsors": {"users": ["sponsor"]},
        "org-acme": {"users": ["sponsor"]},
    }


def test_authenticator(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    ensure_demo_users(path, PASSWORD)
    auth = PlexhubAuthenticator(users_file=str(path))

    def login(user: str, password: str) -> Any:
        return asyncio.run(auth.authenticate(None, {"username": user, "password": password}))

    assert login("sponsor", PASSWORD) == "sponsor"
    assert login("Sponsor", PASSWORD) == "sponsor"  # JupyterHub lower-cases names
    assert login("sponsor", "wrong password") is None
    assert login("nobody", PASSWORD) is None
    assert auth.check_allowed("analyst")
    assert not auth.check_allowed("nobody")


def test_user_role_cannot_start_servers() -> None:
    roles = {r["name"]: r for r in hubconfig.roles()}
    user = roles["user"]["scopes"]
    assert "self" not in user
    assert not [s for s in user if s.startswith(("servers", "admin"))]
    assert "access:services!service=plexhub" in user
    servers = roles["plexhub-server-users"]
    assert servers["scopes"] == ["self"]
    assert "plexhub-sponsors" not in servers["groups"]
    assert set(servers["groups"]) == {"plexhub-scientists", "plexhub-analysts",
                                      "plexhub-admins"}
    assert roles["admin"] == {"name": "admin", "groups": ["plexhub-admins"]}
    assert set(roles["plexhub-service"]["scopes"]) >= {"read:users", "read:users:groups",
                                                      "admin:groups", "list:users"}
    assert {r["name"]: r for r in hubconfig.roles(ops_service=True)}["admin"]["services"] == \
        ["plexhub-ops"]


def _handler(user: Any) -> Any:
    return SimpleNamespace(current_user=user, base_url="/")


def _user(*groups: str, admin: bool = False) -> Any:
    return SimpleNamespace(admin=admin, groups=[SimpleNamespace(name=g) for g in groups])


def test_landing_url() -> None:
    portal = "/services/plexhub/portal/"
    assert hubconfig.landing_url(_handler(_user("plexhub-sponsors", "org-acme"))) == portal
    assert hubconfig.landing_url(_handler(_user())) == portal  # no server role either
    assert hubconfig.landing_url(_handler(_user("plexhub-scientists"))) is None
    assert hubconfig.landing_url(_handler(_user("plexhub-analysts"))) is None
    assert hubconfig.landing_url(_handler(_user(admin=True))) is None
    assert hubconfig.landing_url(_handler(None)) is None


def test_service_and_its_environment(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "d", admin_token=SecretStr("admin-token-0123456789"),
                 demo_password=SecretStr(PASSWORD), hub_api_token=SecretStr("ops-token-0123456789"),
                 ingest_roots=["/x"])
    svc = hubconfig.service(s, 9999)
    assert svc["command"] == [sys.executable, "-m", "plexhub", "serve", "--host",
                              "127.0.0.1", "--port", "9999", "--root-path",
                              "/services/plexhub"]
    assert svc["url"] == "http://127.0.0.1:9999"
    assert svc["oauth_no_confirm"] is True
    assert svc["timeout"] == hubconfig.SERVICE_START_TIMEOUT  # jupyterhub 6
    assert "read:users:groups!user" in svc["oauth_client_allowed_scopes"]
    env = svc["environment"]
    assert env["PLEXHUB_ADMIN_TOKEN"] == "admin-token-0123456789"
    assert env["PLEXHUB_DATA_DIR"] == str((tmp_path / "d").absolute())
    assert env["PLEXHUB_INGEST_ROOTS"] == '["/x"]'
    assert "PLEXHUB_DEMO_PASSWORD" not in env
    assert "PLEXHUB_HUB_API_TOKEN" not in env
    assert "PLEXHUB_DATABASE_URL" not in env  # unset stays unset


def test_configure(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "d", hub_port=8123, demo_password=SecretStr(PASSWORD),
                 chp_command=sys.executable, hub_api_token=SecretStr("ops-token-0123456789"),
                 api_port=8999)
    c = Config()
    hubconfig.configure(c, s)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8123"
    assert c.JupyterHub.hub_ip == "127.0.0.1"
    assert c.ConfigurableHTTPProxy.command == [sys.executable]  # explicit path, not PATH
    assert c.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    assert "--HubOAuth.cache_max_age=5" in c.Spawner.args
    assert Path(c.Spawner.cmd[0]).is_absolute()
    assert c.Spawner.default_url == "/lab"
    assert c.JupyterHub.allow_named_servers is True
    assert c.JupyterHub.default_url is hubconfig.landing_url
    assert c.JupyterHub.authenticator_class is PlexhubAuthenticator
    assert c.JupyterHub.load_groups["org-acme"] == {"users": ["sponsor"]}
    names = [svc["name"] for svc in c.JupyterHub.services]
    assert names == ["plexhub", "plexhub-ops"]
    assert c.JupyterHub.services[0]["url"] == "http://127.0.0.1:8999"
    # each user may ingest from their own home (JupyterLab's "Ingest into a study")
    assert c.JupyterHub.services[0]["environment"]["PLEXHUB_INGEST_USER_ROOT"] == \
        str((tmp_path / "d" / "hub" / "homes" / "{user}").absolute())
    assert (tmp_path / "d" / "hub" / "users.json").exists()
    assert c.JupyterHub.spawner_class is PlexhubSpawner
    assert str((tmp_path / "d").absolute()) in c.PlexhubSpawner.hidden_paths
    assert str((tmp_path / "d" / "hub").absolute()) in c.PlexhubSpawner.hidden_paths


def test_servers_never_get_allow_root() -> None:
    """As root the hub starts each server as its user's own account: never --allow-root."""
    assert "--allow-root" not in hubconfig.spawner_args()


def test_settings_validation() -> None:
    with pytest.raises(ValidationError, match="at least 8"):
        Settings(demo_password=SecretStr("short"))
    with pytest.raises(ValidationError, match="16 characters"):
        Settings(hub_api_token=SecretStr("short"))
