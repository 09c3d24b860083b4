"""The local deployment's authenticator: the hub's login form, checked against users.json.

Production deployments use an identity provider instead (GenericOAuthenticator, see the
README); this one is for ``plexhub up`` and small single-machine installations.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from traitlets import Bool, Unicode

from plexhub.hub.users import hash_password, load_users, verify_password

# compared against when the user does not exist, so both cases take the same time
_DUMMY_HASH = hash_password("not-a-real-password", n=2**14)


class PlexhubAuthenticator(Authenticator):  # type: ignore[misc]  # jupyterhub is untyped
    """Username + password from ``users_file`` (scrypt hashes, see plexhub.hub.users).

    Only users in the file can log in; the file is read at every login, so password
    changes need no restart (group changes do: groups are loaded when the hub starts)."""

    users_file = Unicode("", config=True, help="Path of the users JSON file.")
    any_allow_config = Bool(True)  # the users file is the allow list

    def _path(self) -> Path:
        if not self.users_file:
            raise RuntimeError("PlexhubAuthenticator.users_file is not set")
        return Path(self.users_file)

    async def authenticate(self, handler: Any, data: dict[str, Any]) -> str | None:
        name = str(self.normalize_username(str(data.get("username", ""))))
        password = str(data.get("password", ""))
        user = load_users(self._path()).get(name)
        encoded = user.password_hash if user is not None else _DUMMY_HASH
        ok = await asyncio.to_thread(verify_password, password, encoded)
        if ok and user is not None:
            return name
        self.log.warning("failed login for %r", name)
        return None

    def check_allowed(self, username: str, authentication: Any = None) -> bool:
        return username in load_users(self._path())
