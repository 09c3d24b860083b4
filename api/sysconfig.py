"""The system version and configuration in force (issue 14; OECD GLP No. 17, 21 CFR 11.10):
a ``system.config`` event in the global audit chain whenever a service starts with a
configuration that differs from the last one recorded.

The record (:func:`configuration`) holds plexhub's version, Python's and the key libraries'
versions, the catalog's database, each compliance profile's digest and the non-secret
settings (:func:`public_settings`: every secret field left out, credentials in URLs
redacted), with the SHA-256 of its canonical JSON. A service records it at start
(:func:`record`, under the chain's append lock, so API workers starting together write it
once); the auditor's report shows, for every change and signature, the last record before
it (:func:`in_force`).
"""

from __future__ import annotations

import hashlib
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any

from pydantic import SecretBytes, SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub import __version__
from plexhub.api import audit
from plexhub.api.auditchain import canonical
from plexhub.api.auditreport import system_facts
from plexhub.api.models import AuditEvent
from plexhub.settings import Settings

ACTION = "system.config"
# the libraries whose versions decide what plexhub stores, renders and serves
LIBRARIES = ("numpy", "zarr", "numcodecs", "tifffile", "imagecodecs", "dask", "distributed",
             "ome-zarr-models", "pillow", "simplejpeg", "scipy", "fastapi", "starlette",
             "uvicorn", "pydantic", "pydantic-settings", "sqlalchemy", "alembic", "psycopg",
             "jupyterhub", "nbconvert", "nh3", "fpdf2")
REDACTED = "(redacted)"
SECRET_NAME = re.compile(r"token|password|passwd|secret|credential|private|api_?key|"
                         r"access_?key|session_?key", re.I)
URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):[^@/?#\s]*@")
URL_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;][^=&#\s]*(?:token|password|passwd|secret|signature|credential|key)"
    r"[^=&#\s]*=)[^&#\s]*", re.I)


def redact_text(text: str) -> str:
    """``text`` with the password of any URL in it (``scheme://user:pw@host``) and the value
    of any secret-named query parameter replaced by :data:`REDACTED`."""
    text = URL_PASSWORD.sub(lambda m: f"{m['head']}:{REDACTED}@", text)
    return URL_QUERY_SECRET.sub(lambda m: f"{m['key']}{REDACTED}", text)


def _public(name: str, value: Any) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED  # that it is set, never what it is
    if isinstance(value, str):
        return REDACTED if SECRET_NAME.search(name) else redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): _public(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_public(name, v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))  # paths and the like


def public_settings(settings: Settings) -> dict[str, Any]:
    """Every setting without its secrets: a secret field (a token, a password) only says
    that it is set, a string-valued field whose name says it is secret the same, and a URL's
    password or secret query parameter is redacted; the catalog URL in use is included so."""
    found = {name: _public(name, getattr(settings, name))
             for name in sorted(type(settings).model_fields)}
    found["catalog_url"] = redact_text(settings.catalog_url)
    return found


def library_versions(names: Iterable[str] = LIBRARIES) -> dict[str, str | None]:
    """Installed versions of ``names`` (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def configuration(settings: Settings, session: Session) -> dict[str, Any]:
    """The system and its non-secret configuration, as recorded (without its hash)."""
    facts = system_facts(session.get_bind().dialect.name, audit.profiles(session))
    return {"plexhub": __version__, "python": platform.python_version(),
            "python_implementation": platform.python_implementation(),
            "libraries": library_versions(), "database": facts["database"],
            "profiles": facts["profiles"], "settings": public_settings(settings)}


def digest(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the configuration's canonical JSON."""
    return hashlib.sha256(canonical(config)).hexdigest()


def last(session: Session) -> AuditEvent | None:
    """The latest ``system.config`` event."""
    return session.scalar(select(AuditEvent).where(AuditEvent.action == ACTION)
                          .order_by(AuditEvent.seq.desc()).limit(1))


def record(session: Session, settings: Settings, process: str = "api") -> AuditEvent | None:
    """Record the configuration in force as a ``system.config`` event of the global chain
    when it differs from the last one recorded (committed); None when it is the same.
    ``process`` names what started with it (api, worker)."""
    config = configuration(settings, session)
    sha = digest(config)
    audit.lock_chain(session)  # decide and append under the chain's lock
    previous = last(session)
    before = previous.after if previous is not None else None
    if isinstance(before, dict) and before.get("sha256") == sha:
        session.rollback()
        return None
    event = audit.record(session, audit.SYSTEM, ACTION, "system", sha[:16],
                         before=None if before is None else {"sha256": before.get("sha256")},
                         after={"sha256": sha, "process": process, "config": config})
    session.commit()
    return event


def in_force(configs: Sequence[Mapping[str, Any]], seq: int) -> Mapping[str, Any] | None:
    """Of ``configs`` (``system.config`` events in ``seq`` order), the last one recorded
    before event ``seq``; None when none was."""
    found = None
    for c in configs:
        if int(c["seq"]) >= seq:
            break
        found = c
    return found


def events(session: Session) -> list[dict[str, Any]]:
    """Every ``system.config`` event, oldest first, as plain mappings."""
    return [audit.fields(e) for e in session.scalars(
        select(AuditEvent).where(AuditEvent.action == ACTION).order_by(AuditEvent.seq))]
