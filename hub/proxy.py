"""configurable-http-proxy (npm): where it is, and installing it when it is not.

JupyterHub looks the proxy up on PATH, and an ``npm install --prefix`` is not on PATH, so the
hub config always gets an explicit path. The default install folder is ``<venv>/node`` (what
``make`` uses), or ``<data_dir>/node`` outside a virtual environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from plexhub.errors import ConfigurationError
from plexhub.settings import Settings

CHP_PACKAGE = "configurable-http-proxy@5"
_BIN = Path("node_modules") / ".bin" / "configurable-http-proxy"


def _in_venv() -> bool:
    return sys.prefix != sys.base_prefix


def node_prefixes(settings: Settings) -> list[Path]:
    """npm ``--prefix`` folders searched, in order."""
    out = [Path(sys.prefix) / "node"] if _in_venv() else []
    return [*out, settings.data_dir.absolute() / "node"]


def find_chp(settings: Settings) -> str | None:
    """The proxy's path: the setting, an npm prefix folder, or PATH."""
    if settings.chp_command:
        path = shutil.which(settings.chp_command)
        if path is None:
            raise ConfigurationError("PLEXHUB_CHP_COMMAND", f"{settings.chp_command} is not "
                                     "an executable", f"npm install --prefix DIR {CHP_PACKAGE}")
        return path
    for prefix in node_prefixes(settings):
        candidate = prefix / _BIN
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("configurable-http-proxy")


def install_chp(prefix: Path) -> str:
    """``npm install --prefix PREFIX configurable-http-proxy@5``; returns the binary."""
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigurationError("npm", "is not installed; the hub's proxy comes from npm",
                                 "install Node.js 20+ and npm (apt-get install nodejs npm)")
    prefix.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                        "--loglevel=error", CHP_PACKAGE], capture_output=True, text=True,
                       check=False)
    binary = prefix / _BIN
    if r.returncode != 0 or not binary.is_file():
        raise ConfigurationError(CHP_PACKAGE, f"npm install failed: {r.stderr.strip()[-2000:]}")
    return str(binary)


def ensure_chp(settings: Settings) -> str:
    """Find the proxy, installing it into the first npm prefix folder when missing."""
    found = find_chp(settings)
    if found is not None:
        return found
    for prefix in node_prefixes(settings):
        try:
            prefix.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(prefix, os.W_OK):
            print(f"plexhub: installing {CHP_PACKAGE} into {prefix} (npm)", flush=True)
            return install_chp(prefix)
    raise ConfigurationError(CHP_PACKAGE, "no writable folder to install it into",
                             "set PLEXHUB_CHP_COMMAND")
