"""Everything ``hub/jupyterhub_config.py`` sets, built from plexhub's Settings.

- Network: the proxy on ``hub_bind:hub_port``; the hub, the proxy API and the API service on
  127.0.0.1 (free ports unless set).
- Authentication: :class:`plexhub.hub.auth.PlexhubAuthenticator` (users.json, scrypt), with
  login locks per user name and per address (``hub_login_*`` settings, state in the hub dir).
- Groups: ``plexhub-<role>s`` and ``org-<name>`` from users.json (``load_groups``, at start);
  the mapping is :mod:`plexhub.policies.roles`, which the API reads too.
- Roles: JupyterHub's ``user`` role is narrowed so that it cannot start servers (sponsors never
  get a server or a kernel); ``plexhub-server-users`` (scientists, analysts, admins) adds
  ``self``; ``admin`` goes to ``plexhub-admins``; the API service may read users and manage
  groups (it mirrors grants into ``study-<code>`` groups).
- Spawner: :class:`plexhub.hub.spawner.PlexhubSpawner`, JupyterLab as local processes; as
  root each user's server runs as its own unprivileged OS account in a mount namespace that
  hides the data folder, the catalog and the hub's state (otherwise as the hub's OS user),
  with the single-user servers' hub auth cache at 5 s.
- Pages: JupyterHub's templates with plexhub's name (``hub/templates``, extending the stock
  ones); the home page shows server buttons only to users who may start servers.
- First start of a user's server: the project's notebooks in ``~/plexhub``, JupyterLab on the
  quick start, the news pop-up off, the environment's ``bin`` on PATH (hub/spawner.py).
- The API as the managed service ``plexhub`` at ``/services/plexhub/``; the hub forwards its
  failed logins to the API's audit chain (``PlexhubAuthenticator.login_events_*``).
- Kubernetes (Zero to JupyterHub, hub/k8s/): :func:`configure_kubernetes`, the same login,
  roles and pages with the chart's KubeSpawner and the API as an external service.
"""

from __future__ import annotations

import secrets
import socket
import sys
from pathlib import Path
from typing import Any

from plexhub.hub.users import ensure_demo_users, group_members, load_users
from plexhub.policies.loginaudit import PATH as LOGIN_EVENTS_PATH
from plexhub.policies.loginaudit import hub_key
from plexhub.policies.roles import ORG_PREFIX, ROLE_GROUPS, SERVER_GROUPS, may_run_servers
from plexhub.settings import Settings

CONFIG_FILE = Path(__file__).with_name("jupyterhub_config.py")  # jupyterhub -f
TEMPLATES = Path(__file__).with_name("templates")  # plexhub's overrides of the hub's pages
SERVICE_NAME = "plexhub"
SERVICE_PREFIX = f"/services/{SERVICE_NAME}"
PORTAL_PATH = f"services/{SERVICE_NAME}/portal/"  # relative to the hub's base_url
OPS_SERVICE = "plexhub-ops"
CACHE_MAX_AGE = 5  # seconds the single-user servers trust a hub token check
# seconds the hub waits for the API service to answer at start before it gives up and exits
# (JupyterHub's default, 30 s, is too short for several workers on a busy machine)
SERVICE_START_TIMEOUT = 120
# what every hub user gets: JupyterHub's default 'self' minus servers!user (starting servers)
USER_SCOPES = [
    "read:users!user", "read:users:groups!user", "read:servers!user",
    "access:servers!user", "users:activity!user", "tokens!user",
    f"access:services!service={SERVICE_NAME}",
]
SERVICE_SCOPES = ["list:users", "read:users", "read:users:groups", "read:groups",
                  "list:groups", "admin:groups"]
# the API service's OAuth client: no confirmation page; a browser login's OAuth token may read
# its own user model, groups included
SERVICE_OAUTH: dict[str, Any] = {
    "oauth_no_confirm": True,
    "oauth_client_allowed_scopes": ["read:users:name!user", "read:users:groups!user"],
    "display": True,
}
# the service's own secrets are not the hub's: never pass these on (nor the settings of API
# clients, plexhub.client's, which the service does not read)
_NOT_FOR_SERVICE = frozenset({"demo_password", "hub_api_token", "api_url", "api_token"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def roles(ops_service: bool = False) -> list[dict[str, Any]]:
    """``load_roles``. Re-applied at every start: config is the truth for these roles."""
    admin: dict[str, Any] = {"name": "admin", "groups": [ROLE_GROUPS["admin"]]}
    if ops_service:
        admin["services"] = [OPS_SERVICE]
    return [
        {"name": "user", "description": "every user: own model, tokens, the plexhub service; "
         "no server of their own", "scopes": USER_SCOPES},
        {"name": "plexhub-server-users", "description": "JupyterLab servers (named too)",
         "scopes": ["self"], "groups": sorted(SERVER_GROUPS)},
        admin,
        {"name": "plexhub-service", "description": "the API: users, groups, study groups",
         "scopes": SERVICE_SCOPES, "services": [SERVICE_NAME]},
        # single-user servers' tokens (JUPYTERHUB_API_TOKEN, which kernels inherit): also
        # read their owner's groups, so the API can tell the owner's role from that token
        {"name": "server", "description": "post activity; the owner's name and groups",
         "scopes": ["users:activity!user", "access:servers!server", "read:users:name!user",
                    "read:users:groups!user"]},
    ]


def load_groups(users_file: Path) -> dict[str, dict[str, Any]]:
    """Role and organisation groups of the users in ``users_file``. JupyterHub only adds
    members at start (it never removes them)."""
    members = group_members(load_users(users_file), ROLE_GROUPS, ORG_PREFIX)
    return {group: {"users": names} for group, names in members.items()}


def may_start_servers(user: Any) -> bool:
    """Whether a hub user may have a server (admins, scientists, analysts; not sponsors)."""
    if user is None:
        return False
    return may_run_servers((g.name for g in user.groups), hub_admin=bool(user.admin))


def landing_url(handler: Any) -> str | None:
    """``JupyterHub.default_url``: users who may not start a server (sponsors) land on the
    portal; ``None`` keeps JupyterHub's default (spawn, then the user's JupyterLab)."""
    user = handler.current_user
    if user is None:
        return None
    if may_start_servers(user):
        return None
    return str(handler.base_url).rstrip("/") + "/" + PORTAL_PATH


def service_environment(settings: Settings) -> dict[str, str]:
    """PLEXHUB_* for the API service: managed services get a clean environment."""
    env = {}
    for name in type(settings).model_fields:
        if name in _NOT_FOR_SERVICE:
            continue
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, Path):
            value = value.absolute()
        elif isinstance(value, list | dict):
            import json

            value = json.dumps(value)
        env[f"PLEXHUB_{name.upper()}"] = str(value)
    return env


def service(settings: Settings, api_port: int) -> dict[str, Any]:
    """The hub-managed API service (uvicorn behind the proxy at /services/plexhub/)."""
    import jupyterhub

    spec: dict[str, Any] = {
        "name": SERVICE_NAME,
        "url": f"http://127.0.0.1:{api_port}",
        "command": [sys.executable, "-m", "plexhub", "serve", "--host", "127.0.0.1",
                    "--port", str(api_port), "--root-path", SERVICE_PREFIX],
        "cwd": str(settings.data_dir.absolute()),
        "environment": service_environment(settings),
        **SERVICE_OAUTH,
    }
    if jupyterhub.version_info >= (6,):  # a service's start timeout is new in 6.0
        spec["timeout"] = SERVICE_START_TIMEOUT
    return spec


def singleuser_command() -> list[str]:
    """The venv's jupyterhub-singleuser, by path (the venv need not be on PATH)."""
    script = Path(sys.executable).parent / "jupyterhub-singleuser"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "jupyterhub.singleuser"]


def spawner_args() -> list[str]:
    """Command-line options of every single-user server (never ``--allow-root``: a hub
    running as root starts each server as its user's own unprivileged account)."""
    return [f"--HubOAuth.cache_max_age={CACHE_MAX_AGE}"]


def hidden_folders(settings: Settings) -> list[str]:
    """Folders a user's server sees as empty: the data folder, the hub's state (homes but the
    user's own), the folders of a SQLite catalog and of the users file elsewhere."""
    from sqlalchemy.engine import make_url

    folders = {settings.data_dir.absolute(), settings.hub_dir.absolute(),
               settings.hub_users_path.absolute().parent}
    url = make_url(settings.catalog_url)
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
        folders.add(Path(str(url.database)).absolute().parent)
    return sorted(str(f) for f in folders if f != Path("/"))


def lockout(c: Any, s: Settings) -> None:
    """Brute-force protection of the login form: counters and audit file in the hub dir,
    limits from the ``hub_login_*`` settings (see plexhub.hub.lockout)."""
    a = c.PlexhubAuthenticator
    a.lockout_dir = str(s.hub_dir.absolute())
    a.lockout_max_failures = s.hub_login_max_failures
    a.lockout_address_max_failures = s.hub_login_address_max_failures
    a.lockout_window = float(s.hub_login_window_seconds)
    a.lockout_seconds = float(s.hub_login_lock_seconds)
    a.lockout_max_seconds = float(s.hub_login_max_lock_seconds)


def login_events(c: Any, api_url: str, api_token: str) -> None:
    """Forward failed logins to the API at ``api_url`` (the service's own URL), signed with
    the key derived from the service's hub token ``api_token``
    (:mod:`plexhub.policies.loginaudit`)."""
    a = c.PlexhubAuthenticator
    a.login_events_url = f"{api_url.rstrip('/')}{SERVICE_PREFIX}{LOGIN_EVENTS_PATH}"
    a.login_events_key = hub_key(api_token)


STATE_FILES = ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "jupyterhub.log", "proxy.pid",
               "users.json")


def private_state(settings: Settings) -> Path:
    """The hub's state folder 0700 and its files 0600 (the database is created empty and
    0600 before the hub opens it; SQLite gives its journals the same mode), the users file
    0600 wherever it lies, the users' homes 0700."""
    from plexhub.private import private_dir, private_file

    state = private_dir(settings.hub_dir.absolute())
    private_file(state / "jupyterhub.sqlite", create=True)
    for name in STATE_FILES:
        for path in (state / name, state / f"{name}-journal", state / f"{name}-wal",
                     state / f"{name}-shm"):
            private_file(path)
    private_file(settings.hub_users_path.absolute())
    homes = state / "homes"
    if homes.is_dir():
        private_dir(homes)
    return state


def login_and_roles(c: Any, s: Settings) -> None:
    """Login (users file, locks), groups, roles, the sponsors' landing page and the hub's
    pages: the same on one machine and on Kubernetes."""
    from plexhub.hub.auth import PlexhubAuthenticator

    users_file = s.hub_users_path.absolute()
    c.JupyterHub.authenticator_class = PlexhubAuthenticator
    c.PlexhubAuthenticator.users_file = str(users_file)
    lockout(c, s)
    c.JupyterHub.load_groups = load_groups(users_file)
    c.JupyterHub.load_roles = roles(ops_service=s.hub_api_token is not None)
    c.JupyterHub.default_url = landing_url
    # the hub's pages carry plexhub's name; sponsors see no server buttons (templates/)
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    c.JupyterHub.template_vars = {"plexhub_may_start_servers": may_start_servers}


def external_service(url: str, api_token: str) -> dict[str, Any]:
    """The API as an externally managed hub service (its own Deployment on Kubernetes): the
    hub proxies /services/plexhub/ to ``url``; ``api_token`` is the API's
    JUPYTERHUB_API_TOKEN."""
    return {
        "name": SERVICE_NAME,
        "url": url,
        "api_token": api_token,
        **SERVICE_OAUTH,
    }


def configure_kubernetes(c: Any, api_url: str, api_token: str,
                         settings: Settings | None = None) -> None:
    """Zero to JupyterHub's ``hub.extraConfig`` (hub/k8s/values.yaml): plexhub's login, groups,
    roles, landing page and pages, the API as an external service at ``api_url``, and the
    single-user servers' hub auth cache; the chart keeps its own network, database, proxy and
    KubeSpawner (each user's server a pod of its own, so no OS accounts here)."""
    s = settings or Settings()
    hub_dir = s.hub_dir.absolute()
    hub_dir.mkdir(parents=True, exist_ok=True)  # the lock counters (hub's PVC)
    login_and_roles(c, s)
    c.KubeSpawner.args = spawner_args()
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 5
    login_events(c, api_url, api_token)
    services = [external_service(api_url, api_token)]
    if s.hub_api_token is not None:
        services.append({"name": OPS_SERVICE,
                         "api_token": s.hub_api_token.get_secret_value()})
    c.JupyterHub.services = services


def configure(c: Any, settings: Settings | None = None) -> None:
    """Fill JupyterHub's config object ``c`` (``get_config()``) from ``settings``."""
    from plexhub.hub.proxy import find_chp
    from plexhub.hub.spawner import PlexhubSpawner

    s = settings or Settings()
    state = private_state(s)

    # network: the public proxy, everything else on loopback
    c.JupyterHub.bind_url = f"http://{s.hub_bind}:{s.hub_port}"
    if s.public_url:
        c.JupyterHub.public_url = s.public_url
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = s.hub_internal_port or free_port()
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s.proxy_api_port or free_port()}"
    chp = find_chp(s)
    if chp is None:
        raise RuntimeError("configurable-http-proxy not found: run `plexhub up` (installs it) "
                           "or npm install --prefix .venv/node configurable-http-proxy@5")
    c.ConfigurableHTTPProxy.command = [chp]
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.JupyterHub.cleanup_proxy = True
    c.JupyterHub.cleanup_servers = True

    # state
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")

    # authentication and groups
    users_file = s.hub_users_path.absolute()
    if s.demo_password is not None:
        ensure_demo_users(users_file, s.demo_password.get_secret_value())
    login_and_roles(c, s)

    # single-user JupyterLab servers: local processes, each user's own account as root
    c.JupyterHub.spawner_class = PlexhubSpawner
    c.PlexhubSpawner.home_dir_template = str(state / "homes" / "{username}")
    c.PlexhubSpawner.hidden_paths = hidden_folders(s)
    c.Spawner.cmd = singleuser_command()
    c.Spawner.args = spawner_args()
    c.Spawner.default_url = "/lab"
    # the notebook viewer and the napari plugin find the API here (the proxy, loopback)
    c.Spawner.environment = {
        "PLEXHUB_API_URL": f"http://127.0.0.1:{s.hub_port}{SERVICE_PREFIX}"}
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 120
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 5

    # services: the API, and optionally a token-only admin client
    api = service(s, s.api_port or free_port())
    # each user may ingest files of their own home (JupyterLab's "Ingest into a study")
    api["environment"].setdefault("PLEXHUB_INGEST_USER_ROOT",
                                  str(state / "homes" / "{user}"))
    # the service's hub token, new at each start (JupyterHub would make one): the hub
    # derives from it the key it forwards failed logins to the API with
    api["api_token"] = secrets.token_hex(32)
    login_events(c, api["url"], api["api_token"])
    services = [api]
    if s.hub_api_token is not None:
        services.append({"name": OPS_SERVICE,
                         "api_token": s.hub_api_token.get_secret_value()})
    c.JupyterHub.services = services
