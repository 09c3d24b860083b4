"""A throwaway PostgreSQL server for tests: initdb in a temp folder, 127.0.0.1, a free port.

Uses the Debian packages (`apt-get install postgresql`, which .ci/run does). As root the
server runs as the `postgres` OS user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.net import free_port


def _bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql "
                           "(.ci/run does this)")
    return found[-1].parent


def _run(args: list[str]) -> None:
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    subprocess.run(args, check=True, capture_output=True, timeout=120)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh server; stop and delete it afterwards."""
    pg = _bin()
    base = Path(tempfile.mkdtemp(prefix="plexhub-pg-"))
    os.chmod(base, 0o777)
    data = base / "data"
    port = free_port()
    try:
        _run([str(pg / "initdb"), "-D", str(data), "-A", "trust", "-U", "plexhub",
              "--no-sync"])
        _run([str(pg / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-o",
              f"-p {port} -h 127.0.0.1 -k {base} -c fsync=off", "start"])
        yield f"postgresql+psycopg://plexhub@127.0.0.1:{port}/postgres"
    finally:
        if data.exists():
            subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
                           + [str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """CREATE DATABASE with a unique name on the server; return its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
