"""The one settings object (environment variables prefixed ``PLEXHUB_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """plexhub settings; every field can be set as ``PLEXHUB_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="PLEXHUB_", extra="ignore")

    data_dir: Path = Field(
        default=Path("plexhub-data"),
        description="Folder for the catalog database, image stores and samples.",
    )
    store_root: str | None = Field(
        default=None,
        description="Where converted image stores are written: a folder, or any fsspec URL "
        "(s3://bucket/prefix needs plexhub[s3]; the S3 endpoint comes from "
        "FSSPEC_S3_ENDPOINT_URL or AWS_ENDPOINT_URL, credentials from the standard AWS "
        "configuration, never from here). <data_dir>/stores when unset. The catalog records "
        "each store relative to this root (named 'stores'), so the root can move.",
    )
    store_roots: dict[str, str] = Field(
        default_factory=dict,
        description="Further named storage roots (JSON object name -> folder or URL) whose "
        "stores the catalog may still refer to, e.g. a root that was moved or an archive; "
        "'stores' is PLEXHUB_STORE_ROOT itself.",
    )
    archive_root: str | None = Field(
        default=None,
        description="The name of the storage root (one of PLEXHUB_STORE_ROOTS) that archived "
        "image stores move to (POST /images/{id}/tier, plexhub tiers); unset: nothing is "
        "archived.",
    )
    tier_rules_file: Path | None = Field(
        default=None,
        description="A YAML document of storage-tier rules (see policies/tiers.yaml, the "
        "built-in ones used when unset) that plexhub tiers evaluates.",
    )
    workers: int = Field(
        default=2, ge=1, le=256,
        description="Threads (local Dask) that read, downsample and write in parallel.",
    )
    dask_scheduler: str | None = Field(
        default=None,
        description="Address of a dask.distributed scheduler (tcp://host:8786); local threads "
        "when unset. Sources and outputs must then be reachable from the workers.",
    )
    dask_forward_credentials: bool = Field(
        default=True,
        description="Hand this process's object-storage credentials to the Dask tasks of a "
        "conversion (resolved again for every task submitted, so rotated credentials are "
        "picked up; never logged), for workers that have none. Set false when the workers "
        "have their own (IRSA, instance profiles): then only the endpoint is forwarded.",
    )
    chunk_size: int = Field(
        default=512, ge=16, le=8192,
        description="Chunk edge (pixels, Y and X) of every written level.",
    )
    block_size: int = Field(
        default=2048, ge=64, le=16384,
        description="Edge of the level-0 block one conversion task owns; with NGFF 0.5 it is "
        "also the shard edge. Memory per worker grows with its square.",
    )
    compression: Literal["lz4", "zstd", "blosclz", "zlib", "none"] = Field(
        default="lz4", description="Blosc codec for written chunks (or none)."
    )
    compression_level: int = Field(default=5, ge=0, le=9,
                                   description="Blosc compression level (0-9) of written chunks.")
    ngff_version: Literal["0.4", "0.5"] = Field(
        default="0.5", description="Default OME-NGFF version for conversions."
    )
    direct_writes: bool = Field(
        default=True,
        description="Write large chunks and shards of a local conversion with O_DIRECT (past "
        "the page cache) on a background I/O thread; filesystems that refuse it get buffered "
        "writes automatically. Set false to always write through the page cache.",
    )
    checkpoint_seconds: float = Field(
        default=2.0, ge=0.0,
        description="How often conversion progress is made durable for resuming.",
    )

    # --- the API service -------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the catalog; a SQLite file in data_dir when unset, "
        "e.g. postgresql+psycopg://user:pw@host/plexhub for PostgreSQL.",
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token accepted as admin (at least 16 characters)."
    )
    profiles_dir: Path | None = Field(
        default=None,
        description="Folder of the CRO's own compliance profiles (<name>.yaml each, beside "
        "the built-in glp and non-glp; see `plexhub profiles`); built-ins only when unset.",
    )
    ingest_roots: list[str] | None = Field(
        default=None,
        description='Folders or URI prefixes sources may be read from (JSON list); '
        '["<data_dir>/incoming"] when unset.',
    )
    ingest_user_root: str | None = Field(
        default=None,
        description="A folder with `{user}` in it that each user may also ingest from: "
        "their own, e.g. JupyterHub homes (the hub sets <hub dir>/homes/{user}); none when "
        "unset.",
    )
    tile_cache_bytes: int = Field(
        default=256 * 2**20, ge=0,
        description="Bytes of rendered tiles kept in memory (per API worker process).",
    )
    api_workers: int = Field(
        default=1, ge=1, le=64,
        description="API worker processes (`plexhub serve --workers`): one per core renders "
        "tiles on every core. Each has its own tile cache; conversion jobs are leased through "
        "the catalog, so any worker may run them.",
    )
    max_concurrent_jobs: int = Field(default=1, ge=1, le=64,
                                     description="Conversions that run at the same time.")
    run_jobs: bool = Field(
        default=True,
        description="Whether `plexhub serve` runs conversion jobs itself; false (`--no-jobs`) "
        "for an API replica that only serves, with `plexhub worker` processes running the "
        "jobs through the shared catalog.",
    )
    job_heartbeat_seconds: float = Field(
        default=2.0, gt=0, le=600,
        description="Seconds between a job runner's lease renewals (and queue polls).",
    )
    job_lease_seconds: float = Field(
        default=30.0, gt=0, le=24 * 3600,
        description="A running job whose runner renewed no lease for this long (host lost, "
        "process frozen) is taken over by another runner within this time; at least 3 "
        "heartbeats.",
    )
    findings_webhook: str | None = Field(
        default=None,
        description="URL (http or https) that receives a study's findings export as JSON when "
        "its peer review is signed off, signed with HMAC-SHA256 in X-Plexhub-Signature and "
        "retried with backoff (queued in the catalog); no webhook when unset.",
    )
    findings_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Secret of the findings webhook's HMAC-SHA256 signature (at least 16 "
        "characters; required with findings_webhook; never logged).",
    )
    findings_webhook_max_attempts: int = Field(
        default=8, ge=1, le=100,
        description="Attempts to deliver one findings webhook call before it is marked failed.",
    )
    findings_webhook_backoff_seconds: float = Field(
        default=5.0, gt=0, le=3600,
        description="Wait after the first failed webhook attempt; doubled after each further "
        "failure (at most an hour).",
    )
    notebook_timeout: float = Field(
        default=600.0, gt=0, le=24 * 3600,
        description="Seconds a notebook executed at publication (execute=true) may run in "
        "all, kernel start and every cell; the sandbox is killed and the publication fails "
        "with a 422 past that.",
    )
    notebook_user: str | None = Field(
        default="nobody",
        description="Unprivileged OS user that notebooks executed at publication run as "
        "(never root, never the service's own user). Execution needs the API service to run "
        "as root to switch to it; otherwise, or when empty, execute=true is refused with a "
        "422 and analysts publish notebooks they executed in their own JupyterLab.",
    )
    notebook_namespaces: bool = Field(
        default=True,
        description="Also give an executed notebook Linux namespaces of its own where the "
        "host allows them (root with CAP_SYS_ADMIN): no network, a /proc without the "
        "service, a private /tmp, the data folder hidden. False: the user switch and the "
        "limits only.",
    )
    notebook_memory_bytes: int = Field(
        default=4 * 2**30, ge=256 * 2**20,
        description="Address space (RLIMIT_AS) of each process of an executed notebook: the "
        "sandbox and its kernel.",
    )
    notebook_max_processes: int = Field(
        default=128, ge=16, le=65536,
        description="Processes and threads (RLIMIT_NPROC) the notebook user may have while "
        "a notebook executes; counted over every process of that OS user.",
    )
    notebook_file_bytes: int = Field(
        default=1024 * 2**20, ge=64 * 2**20,
        description="Largest file an executed notebook may write (RLIMIT_FSIZE); also the "
        "size of its private /tmp where the host allows mount namespaces.",
    )
    token_max_days: int | None = Field(
        default=None, ge=1, le=3650,
        description="Longest lifetime of a new API token in days: a token created without "
        "expires_at then expires after this many days, and a later expires_at is refused "
        "(422). Unset: tokens without expires_at never expire (revoke them instead).",
    )
    portal_session_idle_minutes: int = Field(
        default=120, ge=1, le=7 * 24 * 60,
        description="A standalone portal session ends after this many minutes without a "
        "request (measured in steps of about a minute); log in again with the token.",
    )
    portal_session_hours: int = Field(
        default=12, ge=1, le=30 * 24,
        description="A standalone portal session ends this many hours after its login, in "
        "use or not (and never outlives the token it was opened with).",
    )

    # --- clients of the API (plexhub.client: viewers, napari, plexhub publish) -------
    api_url: str | None = Field(
        default=None,
        description="Base URL of the plexhub API that clients (viewers, napari, plexhub "
        "publish) talk to, without /api/v1 (http://127.0.0.1:8000/services/plexhub); the hub "
        "sets it for single-user servers. Unset inside a hub's JupyterLab: the hub's plexhub "
        "service; elsewhere: no API.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token clients send to the API; unset inside a hub's JupyterLab: "
        "the server's own hub token (JUPYTERHUB_API_TOKEN).",
    )

    # --- the JupyterHub deployment (``plexhub up``, hub/) -----------------------------
    hub_port: int = Field(
        default=8000, ge=1, le=65535,
        description="Port of the public proxy (configurable-http-proxy): the hub answers at "
        "http://<hub_bind>:<hub_port>/hub/ and the API at /services/plexhub/.",
    )
    hub_bind: str = Field(
        default="127.0.0.1",
        description="Address the public proxy listens on; keep 127.0.0.1 and put a TLS proxy "
        "in front for anything but a local deployment.",
    )
    public_url: str | None = Field(
        default=None,
        description="The hub's public URL (https://hub.example.org/) when a TLS proxy sits in "
        "front; JupyterHub uses it for absolute links (share links, OAuth).",
    )
    hub_internal_port: int = Field(
        default=0, ge=0, le=65535,
        description="Port of the hub process on 127.0.0.1 (behind the proxy); 0 picks a free "
        "port at start.",
    )
    proxy_api_port: int = Field(
        default=0, ge=0, le=65535,
        description="Port of the proxy's REST API on 127.0.0.1; 0 picks a free port at start.",
    )
    api_port: int = Field(
        default=0, ge=0, le=65535,
        description="Port of the API service the hub starts (plexhub serve on 127.0.0.1, "
        "reached through /services/plexhub/); 0 picks a free port at start.",
    )
    chp_command: str | None = Field(
        default=None,
        description="Path of configurable-http-proxy. Unset: <venv>/node/node_modules/.bin/"
        "configurable-http-proxy, then <data_dir>/node/..., then PATH; plexhub up installs it "
        "with npm when none is found.",
    )
    demo_password: SecretStr | None = Field(
        default=None,
        description="Password of the demo users scientist, analyst and sponsor (at least 8 "
        "characters). plexhub up generates and prints one when unset; the hub keeps only "
        "scrypt hashes.",
    )
    hub_users_file: Path | None = Field(
        default=None,
        description="JSON file of the hub's local users (role, organisations, scrypt password "
        "hash); <data_dir>/hub/users.json when unset.",
    )
    hub_api_token: SecretStr | None = Field(
        default=None,
        description="Token of the hub service plexhub-ops (hub admin role) for operators' "
        "scripts and tests (at least 16 characters); no such service when unset.",
    )
    hub_login_max_failures: int = Field(
        default=5, ge=1, le=1000,
        description="Wrong passwords for one hub user name within hub_login_window_seconds "
        "that lock the name (the right password is refused too until the lock ends or an "
        "admin clears it: plexhub hub unlock NAME).",
    )
    hub_login_address_max_failures: int = Field(
        default=20, ge=1, le=100_000,
        description="Wrong passwords from one client address (any user names) within "
        "hub_login_window_seconds that lock every login from that address.",
    )
    hub_login_window_seconds: int = Field(
        default=900, ge=1, le=7 * 24 * 3600,
        description="Seconds in which failed hub logins are counted toward a lock.",
    )
    hub_login_lock_seconds: int = Field(
        default=900, ge=1, le=7 * 24 * 3600,
        description="Length of a first hub login lock; each further lock of the same name or "
        "address doubles it, up to hub_login_max_lock_seconds. A successful login or an "
        "admin's unlock starts over.",
    )
    hub_login_max_lock_seconds: int = Field(
        default=24 * 3600, ge=1, le=30 * 24 * 3600,
        description="Longest hub login lock, however often a name or address was locked.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="Issuer URL of the OpenID Connect provider users log in with; set, a "
        "user signs by logging in there again (prompt=login) instead of typing a token: "
        "/api/v1/signatures/oidc/start. Unset: no OIDC signatures.",
    )
    oidc_client_id: str | None = Field(
        default=None, description="The API's client id at the OIDC provider (signatures).")
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="The API's client secret at the OIDC provider.")
    oidc_username_claim: str = Field(
        default="preferred_username",
        description="ID token claim holding the plexhub user name (as the hub's login "
        "names users).")
    oidc_max_age_seconds: int = Field(
        default=300, ge=10, le=3600,
        description="How fresh an OIDC login must be to sign (auth_time at most this old); "
        "the one-time signature credential it gives is valid as long.",
    )

    @field_validator("store_root")
    @classmethod
    def _store_root(cls, v: str | None) -> str | None:
        if v and "://" in v and not v.startswith("file://"):
            from plexhub.errors import PlexhubError
            from plexhub.storage import parse_url

            try:  # scheme://bucket[/prefix], no credentials, no '..'
                parse_url(v, "PLEXHUB_STORE_ROOT")
            except PlexhubError as exc:
                raise ValueError(str(exc)) from exc
        return v

    @field_validator("demo_password")
    @classmethod
    def _demo_password(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 8:
            raise ValueError("demo_password must have at least 8 characters")
        return v

    @field_validator("hub_api_token")
    @classmethod
    def _hub_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("hub_api_token must be a real secret of at least 16 characters")
        return v

    @property
    def hub_dir(self) -> Path:
        """The hub's state: its database, cookie secret, users file, logs, user homes."""
        return self.data_dir / "hub"

    @property
    def hub_users_path(self) -> Path:
        return self.hub_users_file or self.hub_dir / "users.json"

    @field_validator("admin_token")
    @classmethod
    def _real_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        raw = v.get_secret_value()
        if len(raw) < 16 or raw.lower() in {"changeme", "change-me", "secret", "admin"}:
            raise ValueError("admin_token must be a real secret of at least 16 characters")
        return v

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'catalog.sqlite').absolute()}"

    @property
    def store_root_url(self) -> str:
        """PLEXHUB_STORE_ROOT as a URL or an absolute folder (the root named 'stores')."""
        root = self.store_root
        if root and "://" in root and not root.startswith("file://"):
            return root.rstrip("/")
        return str(Path(root.removeprefix("file://")).absolute() if root
                   else (self.data_dir / "stores").absolute())

    @property
    def stores_dir(self) -> Path:
        """The local folder of converted stores (<data_dir>/stores when the store root is
        a URL: nothing is written there then)."""
        url = self.store_root_url
        return self.data_dir / "stores" if "://" in url else Path(url)

    @property
    def ingest_root_list(self) -> list[str]:
        return self.ingest_roots or [str((self.data_dir / "incoming").absolute())]

    def ingest_roots_of(self, user: str | None) -> list[str]:
        """The ingest roots plus ``user``'s own folder (``ingest_user_root``), where the
        user's name can be a folder's (no ``/``, NUL, ``.`` or ``..``)."""
        roots = self.ingest_root_list
        if not self.ingest_user_root or not user or user in (".", "..") \
                or "/" in user or "\x00" in user:
            return roots
        return [*roots, self.ingest_user_root.replace("{user}", user)]

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"block_size must be a power of two, got {v}")
        return v

    @field_validator("ingest_user_root")
    @classmethod
    def _has_user(cls, v: str | None) -> str | None:
        if v is not None and "{user}" not in v:
            raise ValueError(f"ingest_user_root must contain {{user}} (each user's own "
                             f"folder), got {v!r}")
        return v

    @field_validator("chunk_size")
    @classmethod
    def _chunk_power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"chunk_size must be a power of two, got {v}")
        return v

    @model_validator(mode="after")
    def _webhook(self) -> Settings:
        url = self.findings_webhook
        if url is None:
            return self
        if not url.startswith(("http://", "https://")):
            raise ValueError("findings_webhook must be an http:// or https:// URL")
        secret = self.findings_webhook_secret
        if secret is None or len(secret.get_secret_value()) < 16:
            raise ValueError("findings_webhook needs findings_webhook_secret, a real secret "
                             "of at least 16 characters")
        return self

    @model_validator(mode="after")
    def _archive_is_a_root(self) -> Settings:
        name = self.archive_root
        if name == "stores":
            raise ValueError("archive_root must name another storage root than 'stores' "
                             "(the hot one, PLEXHUB_STORE_ROOT)")
        if name is not None and name not in self.store_roots:
            raise ValueError(f"archive_root {name!r} names no storage root; add it to "
                             f"store_roots (PLEXHUB_STORE_ROOTS='{{\"{name}\": \"URL\"}}')")
        return self

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> Settings:
        if self.job_lease_seconds < 3 * self.job_heartbeat_seconds:
            raise ValueError(
                f"job_lease_seconds ({self.job_lease_seconds}) must be at least 3 x "
                f"job_heartbeat_seconds ({self.job_heartbeat_seconds}), else a live runner "
                "loses its job; raise the lease or renew more often")
        return self


class HubServerEnvironment(BaseSettings):
    """What JupyterHub puts in the environment of a server it spawns (and so of its kernels
    and terminals): ``JUPYTERHUB_<FIELD>``. These are JupyterHub's names, not plexhub
    settings; plexhub reads them here and nowhere else on the client side."""

    model_config = SettingsConfigDict(env_prefix="JUPYTERHUB_", extra="ignore")

    service_prefix: str | None = Field(
        default=None, description="The server's URL prefix (/user/<name>/); set only in a "
        "server the hub spawned (or a hub service), so it tells that we run there.")
    api_token: SecretStr | None = Field(
        default=None, description="The server's own hub token; the API accepts it in hub "
        "mode as its user's bearer token.")
    base_url: str = Field(default="/", description="The hub's base URL path (/ or /jh/).")
    public_url: str | None = Field(
        default=None, description="The server's public URL, when the hub has one.")
    public_hub_url: str | None = Field(
        default=None, description="The hub's public URL (https://hub.example.org/hub/), when "
        "it has one.")

    @property
    def in_hub_server(self) -> bool:
        return bool(self.service_prefix)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
