"""Local users' passwords: the scrypt scheme shared by the hub's login and the API's
electronic signatures.

The hub (``hub/users.py``) owns the registry file and its logins; the API may not import the
hub, yet a signature on a hub deployment must re-check the signer's own password. Both use
this module: the hashing scheme and a read-only look-up of one user's hash in the registry
(``{"version": 1, "users": {NAME: {"role": ..., "password": "scrypt$N$r$p$salt$key"}}}``).
Asking the hub over HTTP instead would need a password-checking endpoint JupyterHub does not
have (its login form is a browser flow with XSRF and its own lockout).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path

from plexhub.errors import ConfigurationError

# scrypt cost: 2**15 x 8 x 128 bytes = 32 MiB and ~0.1 s per check (OWASP's minimum is 2**17
# with r=8 for storage-only use; logins here are interactive and rate-limited).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_MAXMEM = 64 * 2**20
MIN_PASSWORD = 8


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    """``scrypt$N$r$p$salt$key`` with a random 16-byte salt."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"passwords need at least {MIN_PASSWORD} characters")
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                         maxmem=_MAXMEM, dklen=32)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; malformed hashes never match."""
    try:
        kind, n, r, p, salt, key = encoded.split("$")
        if kind != "scrypt":
            return False
        expected = _unb64(key)
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r),
                             p=int(p), maxmem=_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def registry_hash(path: Path, user: str) -> str | None:
    """The password hash of ``user`` in the local user registry at ``path``; None when the
    file or the user is absent or the user has no password."""
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:  # unreadable or not JSON: never "no password"
        raise ConfigurationError(f"user registry {path}", f"cannot be read ({exc})",
                                 "check PLEXHUB_HUB_USERS_FILE and its permissions") from None
    entry = (doc.get("users") or {}).get(user) if isinstance(doc, dict) else None
    encoded = entry.get("password") if isinstance(entry, dict) else None
    return encoded if isinstance(encoded, str) and encoded else None
