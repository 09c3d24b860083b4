"""Running as a JupyterHub-managed service: hub tokens and OAuth logins become principals.

JupyterHub starts the service with ``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``,
``JUPYTERHUB_CLIENT_ID``, ``JUPYTERHUB_SERVICE_PREFIX``, ``JUPYTERHUB_OAUTH_CALLBACK_URL`` and
``JUPYTERHUB_BASE_URL`` in its environment. Talking to the hub is JupyterHub's own client,
:class:`jupyterhub.services.auth.HubOAuth`: the token check (``GET {api}/user``), the OAuth
authorize URL, PKCE and the code exchange. plexhub adds three things to it:

- the callers of checked tokens are cached in a bounded cache for at most ``CACHE_SECONDS``
  (5 s), so a removed user is refused within seconds and a known token costs no hub call (nor
  a thread hop, :meth:`HubAuth.cached`); refusals are never trusted from the cache;
- the OAuth state (the page to go back to and the PKCE verifier) is not kept in the process
  (HubOAuth keeps it in a per-process dict): it travels in a cookie signed with a key derived
  from the service's hub token, named after the state, so a login that starts on one API
  worker (``plexhub serve --workers``) finishes on any other, and two logins at once in one
  browser do not collide (:mod:`plexhub.api.huboauth`);
- the study groups mirrored from grants (the hub's group REST API).

Who is what (roles from hub groups, organisations, study groups) is
:mod:`plexhub.policies.roles`.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from cachetools import FIFOCache

from plexhub.policies.access import Principal
from plexhub.policies.roles import org_group, principal_of, study_group

if TYPE_CHECKING:
    from plexhub.api.huboauth import CookieStateOAuth

log = logging.getLogger("plexhub.api.hub")
CACHE_SECONDS = 5.0
STATE_SECONDS = 600.0  # how long a login may take between the hub's page and the callback
STATE_COOKIE = "plexhub-oauth-state"  # + "-<state>": one cookie per login under way
HUB_TIMEOUT = 10.0  # seconds for one call to the hub


def principal_for(model: dict[str, Any]) -> Principal | None:
    """Map a hub user model (``GET /hub/api/user``) to a plexhub principal."""
    if model.get("kind", "user") != "user" or not model.get("name"):
        return None
    return principal_of(str(model["name"]), model.get("groups") or [],
                        hub_admin=bool(model.get("admin")))


@dataclass(frozen=True)
class HubConfig:
    api_url: str  # http://127.0.0.1:8081/hub/api
    api_token: str
    client_id: str
    prefix: str  # /services/plexhub/
    callback_url: str  # /services/plexhub/oauth_callback
    public_hub: str  # "" (same origin) or https://hub.example.org
    hub_prefix: str = "/hub/"  # the hub's own prefix: JUPYTERHUB_BASE_URL + hub/

    @classmethod
    def from_env(cls) -> HubConfig | None:
        api_url = os.environ.get("JUPYTERHUB_API_URL")
        token = os.environ.get("JUPYTERHUB_API_TOKEN")
        if not api_url or not token:
            return None
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/plexhub/")
        base = os.environ.get("JUPYTERHUB_BASE_URL") or "/"
        return cls(api_url=api_url.rstrip("/"), api_token=token,
                   client_id=os.environ.get("JUPYTERHUB_CLIENT_ID", "service-plexhub"),
                   prefix=prefix,
                   callback_url=os.environ.get("JUPYTERHUB_OAUTH_CALLBACK_URL",
                                               prefix.rstrip("/") + "/oauth_callback"),
                   public_hub=os.environ.get("JUPYTERHUB_HOST", ""),
                   hub_prefix=base.rstrip("/") + "/hub/")


@dataclass(frozen=True)
class LoginStart:
    """Where to send a browser to log in, and the state cookie to set on that redirect."""

    url: str  # the hub's OAuth authorize page
    cookie_name: str
    cookie_value: str
    max_age: int


class HubAuth:
    """Token checks and OAuth logins (through :class:`HubOAuth`), and group mirroring."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self._oauth: CookieStateOAuth | None = None
        self._oauth_lock = threading.Lock()
        self._closed = False
        # (checked, caller): the oldest goes first when full; the age is checked on read
        # against CACHE_SECONDS as it is at that moment; cachetools is not thread-safe: the lock
        self._cache: FIFOCache[str, tuple[float, Principal | None]] = FIFOCache(10_000)
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=HUB_TIMEOUT, headers={
            "Authorization": f"token {config.api_token}"})

    @property
    def oauth(self) -> CookieStateOAuth:
        """HubOAuth, made on first use (importing jupyterhub takes seconds: :meth:`start`
        does it in the background, so that the service answers its health check sooner)."""
        with self._oauth_lock:
            if self._closed:
                raise RuntimeError("the hub client is closed")
            if self._oauth is None:
                from plexhub.api.huboauth import CookieStateOAuth

                oauth = CookieStateOAuth(
                    api_url=self.config.api_url, api_token=self.config.api_token,
                    oauth_client_id=self.config.client_id, base_url=self.config.prefix,
                    oauth_redirect_uri=self.config.callback_url,
                    hub_host=self.config.public_hub, hub_prefix=self.config.hub_prefix,
                    oauth_state_max_age=int(STATE_SECONDS), cache_max_age=0,
                    state_name=STATE_COOKIE, state_seconds=STATE_SECONDS,
                    request_timeout=HUB_TIMEOUT)
                oauth.start()
                self._oauth = oauth
            return self._oauth

    def start(self) -> None:
        """Make :attr:`oauth` in a background thread (requests that need it wait for it)."""
        def load() -> None:
            with contextlib.suppress(RuntimeError):  # closed first
                self.oauth  # noqa: B018  # the property makes it

        threading.Thread(target=load, name="plexhub-hub-oauth", daemon=True).start()

    def close(self) -> None:
        self._client.close()
        with self._oauth_lock:
            self._closed = True
            if self._oauth is not None:
                self._oauth.stop()
                self._oauth = None

    # -- tokens -------------------------------------------------------------------------
    def cached(self, token: str) -> Principal | None:
        """The caller of a token the hub accepted within ``CACHE_SECONDS``, without asking
        it; None when not cached or refused (the caller then goes through ``resolve``)."""
        with self._lock:
            hit = self._cache.get(token)
        if hit and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        return None

    def resolve(self, token: str) -> Principal | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(token)
            if hit and now - hit[0] < CACHE_SECONDS:
                return hit[1]
        principal = None
        try:
            model = self.oauth.user_for_token(token, use_cache=False)
            if isinstance(model, dict):
                principal = principal_for(model)
        except self.oauth.HubError as exc:
            log.warning("hub not reachable to check a token: %s", exc)
        with self._lock:
            self._cache[token] = (now, principal)
        return principal

    # -- OAuth --------------------------------------------------------------------------
    def state_cookie(self, state: str) -> str:
        """The name of the cookie that holds the state of login ``state``."""
        return f"{STATE_COOKIE}-{state}"

    def state_cookies(self, names: Iterable[str]) -> list[str]:
        """Which of the cookie ``names`` are login states (to clear after a login)."""
        return [n for n in names if n.startswith(f"{STATE_COOKIE}-")]

    def start_login(self, next_url: str) -> LoginStart:
        """Where to send a browser without a session: the hub's OAuth authorize page, with a
        fresh state and PKCE challenge; the state goes with the browser in a cookie."""
        verifier, challenge, method = self.oauth.generate_pkce_code_challenge()
        value = self.oauth.generate_state(next_url, code_verifier=verifier)
        state = self.oauth.state_id(value)
        url = self.oauth.authorize_url({"state": state, "code_challenge": challenge,
                                        "code_challenge_method": method})
        return LoginStart(url=url, cookie_name=self.state_cookie(state), cookie_value=value,
                          max_age=int(STATE_SECONDS))

    def finish_login(self, code: str, state: str,
                     cookies: Mapping[str, str]) -> tuple[str, str]:
        """Exchange the code for a hub token; return (token, the page to go back to). The
        state must be the one of a login this browser started (its cookie) within
        ``STATE_SECONDS``, on any worker of this service."""
        value = cookies.get(self.state_cookie(state), "")
        if not hmac.compare_digest(self.oauth.state_id(value).encode(), state.encode()):
            raise PermissionError("unknown or expired OAuth state")
        try:
            token = self.oauth.token_for_code(
                code, code_verifier=self.oauth.get_code_verifier(value))
        except self.oauth.HubError as exc:
            raise PermissionError(f"the hub refused the OAuth code ({exc})") from exc
        return str(token), str(self.oauth.get_next_url(value))

    # -- study groups mirrored from grants ------------------------------------------------
    def group_members(self, group: str) -> set[str]:
        r = self._client.get(f"{self.config.api_url}/groups/{group}")
        return set(r.json().get("users", [])) if r.status_code == 200 else set()

    def sync_study_group(self, code: str, principals: set[str]) -> None:
        """Make hub group ``study-<code>`` hold exactly the users the active grants name
        (directly, or through their organisation group)."""
        users: set[str] = set()
        for p in principals:
            kind, _, name = p.partition(":")
            if kind == "user":
                users.add(name)
            elif kind == "group":
                users |= self.group_members(org_group(name))
        group = study_group(code)
        api = self.config.api_url
        r = self._client.get(f"{api}/groups/{group}")
        if r.status_code == 404:
            self._client.post(f"{api}/groups/{group}")
            current: set[str] = set()
        else:
            current = set(r.json().get("users", []))
        if users - current:
            self._client.post(f"{api}/groups/{group}/users",
                              json={"users": sorted(users - current)})
        if current - users:
            self._client.request("DELETE", f"{api}/groups/{group}/users",
                                 json={"users": sorted(current - users)})
