"""Where stores and sources live: a local folder or any fsspec URL (``s3://bucket/prefix``).

One place for what the API, the job workers and the conversion pipeline need to agree on:

- :func:`is_url` tells a URL from a local path (``file://`` counts as local);
- :func:`parse_url` splits a URL into scheme, bucket and clean key parts, refusing ``..``,
  ``.`` and empty parts, so ``Path("s3://x")`` never collapses a URL into ``s3:/x``;
- :class:`StorageOptions` are the fsspec options of one URL in the process that has the
  configuration (the S3 endpoint from ``FSSPEC_S3_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL``).
  Credentials are never frozen into them here: this process's own filesystems use the
  standard AWS chain (variables, shared files, instance roles; refreshed by botocore). Options
  made with ``credentials=True`` are *forwarded*: pickled inside
  :func:`forwarding_credentials` (a Dask graph submission), they carry the credentials this
  process holds at that moment (resolved again at most every :data:`CREDENTIALS_TTL`
  seconds), so every submission picks up rotated credentials and a worker needs no AWS
  settings of its own; outside it (or with forwarding turned off, for workers with their own
  credentials: IRSA, instance profiles) they carry the endpoint only. Their ``repr`` never
  shows a secret, and nothing here logs them;
- :class:`StoreRoots` names the storage roots the catalog records locations against (the
  default root is :data:`DEFAULT_ROOT`, ``PLEXHUB_STORE_ROOT``), so a root can move: the
  catalog keeps ``(root name, relative key)`` and only this mapping changes.

Only the standard library and fsspec-style libraries (imported lazily) are used here.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import posixpath
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from plexhub.errors import InputError, NotFoundError, PermissionDeniedError

DEFAULT_ROOT = "stores"  # the name of PLEXHUB_STORE_ROOT in the catalog
ENDPOINT_VARIABLES = ("FSSPEC_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")


def is_url(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` is a URL of a remote filesystem (``file://`` and paths are local)."""
    s = os.fspath(text)
    return "://" in s and not s.startswith("file://")


def local_path(text: str | os.PathLike[str]) -> Path:
    """A local path (``file://`` prefix removed)."""
    s = os.fspath(text)
    return Path(s.removeprefix("file://"))


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str
    bucket: str
    parts: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"{self.scheme}://{'/'.join((self.bucket, *self.parts))}"

    def inside(self, root: ParsedUrl) -> bool:
        """Whether this URL is ``root`` or lies under it (whole names only)."""
        return (self.scheme, self.bucket) == (root.scheme, root.bucket) and \
            self.parts[:len(root.parts)] == root.parts


def _shown(text: str) -> str:
    return repr(text if len(text) <= 120 else f"{text[:120]}…")


def parse_url(url: str, what: str | None = None) -> ParsedUrl:
    """``url`` split into scheme, bucket (host) and key parts; a URL with ``..`` or ``.``
    parts, a query, a fragment, credentials or a NUL is refused (InputError naming it)."""
    shown = what or _shown(url)
    if "\x00" in url:
        raise InputError(shown, "is not a valid URL", "it holds a NUL character")
    try:
        split = urlsplit(url)
    except ValueError as exc:
        raise InputError(shown, f"is not a valid URL ({exc})") from exc
    if not split.scheme or not split.netloc:
        raise InputError(shown, "is not a URL of the form scheme://bucket/key",
                         "write e.g. s3://bucket/folder/file.ome.tif")
    if split.query or split.fragment:
        raise InputError(shown, "has a query or fragment", "give the object's plain URL")
    if "@" in split.netloc:
        raise InputError(shown, "holds credentials",
                         "give credentials through the standard AWS/fsspec configuration")
    raw = split.path.split("/")[1:] if split.path else []
    while raw and raw[-1] == "":
        raw.pop()  # a trailing slash
    if any(p in ("", ".", "..") for p in raw):
        raise PermissionDeniedError(shown, "has '..', '.' or empty names in its path",
                                    "give the object's plain URL")
    return ParsedUrl(split.scheme.lower(), split.netloc, tuple(raw))


# --------------------------------------------------------------------------- fsspec

def endpoint_url() -> str | None:
    """The S3 endpoint of this process (None: the provider's default)."""
    for name in ENDPOINT_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    return None


_SECRET_KEYS = frozenset({"key", "secret", "token", "password", "aws_access_key_id",
                          "aws_secret_access_key", "aws_session_token"})


CREDENTIALS_TTL = 30.0  # seconds a resolved set of credentials is reused for forwarding
# whether StorageOptions(forward=True) pickled in this context carry credentials
_FORWARDING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "plexhub_forward_credentials", default=False)


@contextlib.contextmanager
def forwarding_credentials(enabled: bool = True) -> Iterator[None]:
    """While active in this thread (or task), :class:`StorageOptions` made with
    ``credentials=True`` are pickled with this process's credentials, resolved then (Dask
    pickles a task's arguments when it is submitted). ``enabled=False``: never."""
    token = _FORWARDING.set(enabled)
    try:
        yield
    finally:
        _FORWARDING.reset(token)


@dataclass(frozen=True)
class StorageOptions:
    """fsspec options for one protocol; never shown in a repr. ``forward``: when pickled
    inside :func:`forwarding_credentials` (a Dask submission), the credentials this process
    holds then travel with them, for workers that have none."""

    protocol: str
    options: dict[str, Any] = field(default_factory=dict)
    forward: bool = False

    def __repr__(self) -> str:
        shown = {k: ("***" if k in _SECRET_KEYS else v) for k, v in self.options.items()}
        return f"StorageOptions({self.protocol!r}, {shown}{', forward' if self.forward else ''})"

    def __reduce__(self) -> tuple[Any, ...]:
        opts = self.options
        if self.forward and self.protocol == "s3" and _FORWARDING.get():
            opts = {**opts, **_aws_credentials()}
        return (StorageOptions, (self.protocol, opts, self.forward))

    __str__ = __repr__

    def filesystem(self) -> Any:
        """The fsspec filesystem (fsspec caches instances by their options)."""
        import fsspec

        return fsspec.filesystem(self.protocol, **self.options)


def storage_options(url: str, *, credentials: bool = False) -> StorageOptions:
    """The fsspec options of ``url``'s protocol in this process: for S3 the endpoint
    (``FSSPEC_S3_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL``). With ``credentials`` they are
    forwarded: sent to a Dask worker inside :func:`forwarding_credentials`, they carry the
    credentials the standard AWS chain finds here at that moment (for workers that have none).
    """
    protocol = urlsplit(url).scheme.lower() if is_url(url) else "file"
    opts: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        protocol = "s3"
        ep = endpoint_url()
        if ep:
            opts["endpoint_url"] = ep
    return StorageOptions(protocol, opts, forward=credentials and protocol == "s3")


_resolved: tuple[float, dict[str, Any]] | None = None
_resolved_lock = threading.Lock()


def forget_credentials() -> None:
    """Resolve the credentials again at the next forwarding (not after the TTL)."""
    global _resolved
    with _resolved_lock:
        _resolved = None


def _aws_credentials() -> dict[str, Any]:
    """This process's AWS credentials (and region) as s3fs options, resolved again (a new
    botocore session: ~25 ms) at most every :data:`CREDENTIALS_TTL` seconds. botocore
    refreshes temporary credentials 10-15 minutes before they expire, so what this returns
    stays valid well past the TTL."""
    global _resolved
    with _resolved_lock:
        if _resolved is not None and time.monotonic() - _resolved[0] < CREDENTIALS_TTL:
            return dict(_resolved[1])
        found = _resolve_aws_credentials()
        _resolved = (time.monotonic(), found)
        return dict(found)


def _resolve_aws_credentials() -> dict[str, Any]:
    try:
        import botocore.session
    except ImportError:  # pragma: no cover - s3fs brings botocore
        return {}
    session = botocore.session.get_session()
    creds = session.get_credentials()
    out: dict[str, Any] = {}
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        if frozen.access_key and frozen.secret_key:
            out = {"key": frozen.access_key, "secret": frozen.secret_key}
            if frozen.token:
                out["token"] = frozen.token
    region = session.get_config_variable("region")
    if region:
        out["client_kwargs"] = {"region_name": region}
    return out


def filesystem(url: str, options: StorageOptions | None = None) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) of ``url``; ``options`` default to this
    process's (:func:`storage_options`). A missing driver (s3fs) is named with its extra."""
    opts = options or storage_options(url)
    try:
        fs = opts.filesystem()
    except ImportError as exc:
        raise InputError(_shown(url), f"needs the fsspec driver for {opts.protocol}:// "
                         f"({exc.name or exc})",
                         "install plexhub[s3] (s3fs) for s3:// URLs") from exc
    return fs, fs._strip_protocol(url)


# --------------------------------------------------------------------------- roots

@dataclass(frozen=True)
class StoreLocation:
    """Where one image's OME-Zarr is: a local folder (``path``) or a URL (``url``), and
    the options to reach it. What :meth:`plexhub.api.models.Image.store_root` returns."""

    url: str  # a URL, or the absolute local path as text
    options: StorageOptions | None = None

    @property
    def remote(self) -> bool:
        return is_url(self.url)

    @property
    def path(self) -> Path:
        """The local folder (ValueError for a remote store: use :meth:`filesystem`)."""
        if self.remote:
            raise ValueError(f"{self.url} is not a local folder")
        return local_path(self.url)

    def join(self, key: str) -> str:
        """The URL (or path) of ``key`` inside the store."""
        return f"{self.url.rstrip('/')}/{key}" if key else self.url

    def filesystem(self) -> tuple[Any, str]:
        return filesystem(self.url, self.options)

    def zarr_store(self, read_only: bool = True) -> Any:
        """A zarr-python store of this location (FsspecStore for a URL)."""
        import zarr.storage

        if not self.remote:
            return zarr.storage.LocalStore(self.path, read_only=read_only)
        fs, path = self.filesystem()
        return zarr.storage.FsspecStore(_async_fs(fs), path=path, read_only=read_only)

    def __fspath__(self) -> str:  # os.fspath(): only a local folder is a path
        return str(self.path)

    def __truediv__(self, key: str) -> Path:
        """``location / "tables"``: a path inside a local store (ValueError for a URL)."""
        return self.path / key


def _async_fs(fs: Any) -> Any:
    """An asynchronous instance of ``fs`` (what zarr's FsspecStore needs)."""
    if getattr(fs, "async_impl", False) and getattr(fs, "asynchronous", False):
        return fs
    import fsspec

    return fsspec.filesystem(fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0],
                             asynchronous=True, **fs.storage_options)


class StoreRoots:
    """Named storage roots: ``{name: folder or URL}``. The catalog records an image's store
    as (name, key relative to that root); moving a root is changing its URL here."""

    def __init__(self, roots: dict[str, str]) -> None:
        self.roots = {name: _normal_root(url) for name, url in roots.items()}

    @classmethod
    def from_settings(cls, settings: Any) -> StoreRoots:
        return cls({DEFAULT_ROOT: str(settings.store_root_url),
                    **dict(getattr(settings, "store_roots", None) or {})})

    @property
    def default(self) -> str:
        return self.roots[DEFAULT_ROOT]

    def resolve(self, name: str, key: str) -> StoreLocation:
        """The location of ``key`` under the root called ``name``."""
        base = self.roots.get(name)
        if base is None:
            raise NotFoundError(f"storage root {name!r}", "is not configured",
                                "set PLEXHUB_STORE_ROOT (or PLEXHUB_STORE_ROOTS for other "
                                "named roots) on this process")
        clean = _clean_key(key)
        url = f"{base}/{clean}" if clean else base
        return StoreLocation(url, storage_options(url) if is_url(url) else None)

    def relative(self, location: str) -> tuple[str, str] | None:
        """(root name, key) of an absolute ``location`` that lies under a root, else None
        (the default root first)."""
        norm = _normal_root(location)
        for name in sorted(self.roots, key=lambda n: n != DEFAULT_ROOT):
            base = self.roots[name]
            if norm == base:
                return name, ""
            if norm.startswith(base + "/"):
                return name, norm[len(base) + 1:]
        return None


def _normal_root(url: str) -> str:
    """A root or location without a trailing slash; a local one absolute and normalised."""
    if is_url(url):
        return parse_url(url).url
    return posixpath.normpath(str(local_path(url).absolute()))


def _clean_key(key: str) -> str:
    parts = [p for p in key.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise PermissionDeniedError(f"store key {key!r}", "leaves its storage root")
    return "/".join(parts)


def open_binary(url: str, options: StorageOptions | None = None) -> Any:
    """``url`` opened for reading as a seekable binary file (fsspec's, read in blocks)."""
    fs, path = filesystem(url, options)
    return fs.open(path, "rb")


def zarr_target(url: str) -> Any:
    """What ``zarr.open_group`` / ``zarr.open_array`` should open for ``url``: a local
    path as it is, a URL as a store on this process's options (an endpoint given by the
    environment now, never one an earlier filesystem instance was made with)."""
    if not is_url(url):
        return url
    return StoreLocation(url, storage_options(url)).zarr_store()


def connect(url: str) -> None:
    """Make the client of ``url``'s filesystem now (an S3 client takes ~0.5 s to build),
    so that the first read of a store does not wait for it. Errors surface at that read."""
    if not is_url(url):
        return
    try:
        fs, path = filesystem(url)
        make = getattr(fs, "connect", None)
        if callable(make):
            make()
        fs.exists(path)  # the first request pays for the connection and the signer
    except Exception:  # a warm-up only: the first real read reports it
        return


def remove_tree(location: StoreLocation) -> bool:
    """Remove the folder (or object prefix) at ``location`` and everything under it: a local
    folder, or a URL through its fsspec filesystem. False when there was nothing there. Only
    the retention purge (a store whose retention period has ended) and a tier move (the old
    copy, once the catalog points at the verified new one) call it."""
    if not location.remote:
        import shutil

        path = location.path
        if not path.exists():
            return False
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    fs, key = location.filesystem()
    key = key.rstrip("/")
    if not fs.exists(key):
        return False
    fs.rm(key, recursive=True)
    invalidate = getattr(fs, "invalidate_cache", None)  # the listing cache still has the keys
    if callable(invalidate):
        invalidate(key)
    return True
