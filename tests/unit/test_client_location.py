"""plexhub.client's one rule for finding the API (arguments, then PLEXHUB_API_URL /
PLEXHUB_API_TOKEN, then the hub's service and hub token inside a hub-spawned server, else
none), read through the settings from the environment."""

from __future__ import annotations

import os

import pytest

from plexhub.client import ApiClient, api_root, hub_service_url, locate_api
from plexhub.errors import InputError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("JUPYTERHUB_", "PLEXHUB_")):
            monkeypatch.delenv(key)


def in_hub_server(monkeypatch: pytest.MonkeyPatch, base_url: str = "/") -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ann/")
    monkeypatch.setenv("JUPYTERHUB_BASE_URL", base_url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token-of-ann")


def test_no_api_anywhere_is_none() -> None:
    assert locate_api() == (None, None)
    assert ApiClient.from_settings() is None


def test_arguments_win_over_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLEXHUB_API_URL", "http://api.example.org/services/plexhub/")
    monkeypatch.setenv("PLEXHUB_API_TOKEN", "env-token")
    assert locate_api() == ("http://api.example.org/services/plexhub", "env-token")
    assert locate_api("http://other:9/api/v1", "arg-token") == ("http://other:9", "arg-token")
    # each is found on its own: an explicit URL still takes the token of the settings
    assert locate_api("http://other:9") == ("http://other:9", "env-token")
    client = ApiClient.from_settings()
    assert client is not None
    assert client.base_url == "http://api.example.org/services/plexhub"
    assert client.headers == {"Authorization": "Bearer env-token"}
    client.close()


def test_settings_win_over_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    in_hub_server(monkeypatch)
    monkeypatch.setenv("PLEXHUB_API_URL", "http://127.0.0.1:8123/services/plexhub")
    assert locate_api() == ("http://127.0.0.1:8123/services/plexhub", "hub-token-of-ann")
    monkeypatch.setenv("PLEXHUB_API_TOKEN", "plexhub-token")
    assert locate_api()[1] == "plexhub-token"


def test_inside_a_hub_server_the_hub_service_and_hub_token(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert hub_service_url() is None
    in_hub_server(monkeypatch)
    assert hub_service_url() == "http://127.0.0.1:8000/services/plexhub"
    assert locate_api() == ("http://127.0.0.1:8000/services/plexhub", "hub-token-of-ann")
    monkeypatch.setenv("PLEXHUB_HUB_PORT", "8111")
    assert hub_service_url() == "http://127.0.0.1:8111/services/plexhub"
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_HUB_URL", "https://hub.example.org/jh/hub/")
    monkeypatch.setenv("JUPYTERHUB_BASE_URL", "/jh/")
    assert hub_service_url() == "https://hub.example.org/jh/services/plexhub"


def test_a_hub_token_outside_a_hub_server_is_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """JUPYTERHUB_API_TOKEN alone (no JUPYTERHUB_SERVICE_PREFIX) is no hub-spawned server:
    its token does not go to whatever PLEXHUB_API_URL names."""
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "someone-elses-hub-token")
    monkeypatch.setenv("PLEXHUB_API_URL", "http://api.example.org")
    assert locate_api() == ("http://api.example.org", None)


@pytest.mark.parametrize("url", ["api.example.org", "ftp://api.example.org", "http://",
                                 "", "/services/plexhub"])
def test_a_url_that_is_no_http_url_is_refused(url: str) -> None:
    with pytest.raises(InputError, match="is not an http\\(s\\) URL"):
        api_root(url)


def test_bad_api_url_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLEXHUB_API_URL", "localhost:8000")
    with pytest.raises(InputError, match="'localhost:8000'"):
        ApiClient.from_settings()


def test_a_clients_settings_do_not_reach_the_hub_managed_service() -> None:
    """An operator's own client token (PLEXHUB_API_TOKEN in the shell that runs plexhub up)
    is no setting of the API service: the hub does not pass it on."""
    from pydantic import SecretStr

    from plexhub.hub.config import service_environment
    from plexhub.settings import Settings

    env = service_environment(Settings(api_url="http://127.0.0.1:1",
                                       api_token=SecretStr("client-tok")))
    assert "PLEXHUB_API_TOKEN" not in env
    assert "PLEXHUB_API_URL" not in env
    assert "client-tok" not in env.values()
