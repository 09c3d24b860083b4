"""Running as a JupyterHub-managed service: hub tokens and OAuth logins become principals.

JupyterHub starts the service with ``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``,
``JUPYTERHUB_CLIENT_ID``, ``JUPYTERHUB_SERVICE_PREFIX`` and ``JUPYTERHUB_OAUTH_CALLBACK_URL``
in its environment. A hub token (a script's, or the one an OAuth login yields and the
``plexhub-session`` cookie keeps) is checked with ``GET {api}/user`` and cached for at most
``CACHE_SECONDS`` (5 s), so a removed user is refused within seconds.

Roles come from hub groups: ``plexhub-admins``, ``plexhub-scientists``, ``plexhub-analysts``,
``plexhub-sponsors`` (hub admins are plexhub admins); a sponsor's organisations are its
``org-<name>`` groups. A hub user in none of these groups is not a plexhub user.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from cachetools import FIFOCache, TTLCache

from plexhub.policies.access import Principal, Role

log = logging.getLogger("plexhub.api.hub")
CACHE_SECONDS = 5.0
STATE_SECONDS = 600.0  # how long a login may take between the hub's page and the callback
STATES_MAX = 100_000  # logins under way at once; past it the oldest is forgotten
ROLE_GROUPS: dict[str, Role] = {"plexhub-admins": "admin", "plexhub-scientists": "scientist",
                                "plexhub-analysts": "analyst", "plexhub-sponsors": "sponsor"}
ORG_PREFIX = "org-"
STUDY_GROUP_PREFIX = "study-"


def principal_for(model: dict[str, Any]) -> Principal | None:
    """Map a hub user model (``GET /hub/api/user``) to a plexhub principal."""
    if model.get("kind", "user") != "user" or not model.get("name"):
        return None
    groups = set(model.get("groups") or [])
    role: Role | None = "admin" if model.get("admin") else None
    for group, r in ROLE_GROUPS.items():  # ordered from most to least privileged
        if role is None and group in groups:
            role = r
    if role is None:
        return None
    orgs = frozenset(g[len(ORG_PREFIX):] for g in groups if g.startswith(ORG_PREFIX))
    return Principal(user=str(model["name"]), role=role, groups=orgs)


@dataclass(frozen=True)
class HubConfig:
    api_url: str  # http://127.0.0.1:8081/hub/api
    api_token: str
    client_id: str
    prefix: str  # /services/plexhub/
    callback_url: str  # /services/plexhub/oauth_callback
    public_hub: str  # "" (same origin) or https://hub.example.org

    @classmethod
    def from_env(cls) -> HubConfig | None:
        api_url = os.environ.get("JUPYTERHUB_API_URL")
        token = os.environ.get("JUPYTERHUB_API_TOKEN")
        if not api_url or not token:
            return None
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/plexhub/")
        return cls(api_url=api_url.rstrip("/"), api_token=token,
                   client_id=os.environ.get("JUPYTERHUB_CLIENT_ID", "service-plexhub"),
                   prefix=prefix,
                   callback_url=os.environ.get("JUPYTERHUB_OAUTH_CALLBACK_URL",
                                               prefix.rstrip("/") + "/oauth_callback"),
                   public_hub=os.environ.get("JUPYTERHUB_HOST", ""))


class HubAuth:
    """Token checks against the hub, OAuth code exchange, and group mirroring."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        # (checked, caller): the oldest goes first when full; the age is checked on read
        # against CACHE_SECONDS as it is at that moment; cachetools is not thread-safe: the lock
        self._cache: FIFOCache[str, tuple[float, Principal | None]] = FIFOCache(10_000)
        # OAuth states waiting for their callback, each for STATE_SECONDS
        self._states: TTLCache[str, str] = TTLCache(STATES_MAX, STATE_SECONDS,
                                                    timer=time.monotonic)
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=10.0, headers={
            "Authorization": f"token {config.api_token}"})

    def close(self) -> None:
        self._client.close()

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
            r = httpx.get(f"{self.config.api_url}/user", timeout=10.0,
                          headers={"Authorization": f"token {token}"})
            if r.status_code == 200:
                principal = principal_for(r.json())
        except httpx.HTTPError as exc:
            log.warning("hub not reachable to check a token: %s", exc)
        with self._lock:
            self._cache[token] = (now, principal)
        return principal

    # -- OAuth --------------------------------------------------------------------------
    def login_url(self, next_url: str) -> str:
        """Where to send a browser without a session: the hub's OAuth authorize page."""
        state = secrets.token_urlsafe(24)
        with self._lock:
            self._states[state] = next_url
        hub_prefix = self.config.api_url.split("/hub/api", 1)[0] if \
            self.config.public_hub else ""
        query = urlencode({"client_id": self.config.client_id,
                           "redirect_uri": self.config.callback_url,
                           "response_type": "code", "state": state})
        base = (self.config.public_hub or hub_prefix) + "/hub/api/oauth2/authorize"
        return f"{base}?{query}"

    def finish_login(self, code: str, state: str) -> tuple[str, str]:
        """Exchange the code for a hub token; return (token, the page to go back to)."""
        with self._lock:
            entry = self._states.pop(state, None)
        if entry is None:
            raise PermissionError("unknown or expired OAuth state")  # expired: TTLCache
        r = self._client.post(f"{self.config.api_url}/oauth2/token", data={
            "client_id": self.config.client_id, "client_secret": self.config.api_token,
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": self.config.callback_url})
        if r.status_code != 200:
            raise PermissionError(f"the hub refused the OAuth code ({r.status_code})")
        return str(r.json()["access_token"]), entry

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
                users |= self.group_members(f"{ORG_PREFIX}{name}")
        group = f"{STUDY_GROUP_PREFIX}{code}"
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
