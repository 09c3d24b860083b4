"""The hub's admin API for login locks (registered by ``PlexhubAuthenticator.get_handlers``):

- ``GET /hub/api/plexhub/lockouts``: the user names and addresses locked now;
- ``DELETE /hub/api/plexhub/lockouts/<name or address>``: clear them (audited, 204).

Both need the ``admin:users`` scope (hub admins, the ``plexhub-ops`` service).
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web


class LockoutsHandler(APIHandler):  # type: ignore[misc]  # jupyterhub is untyped
    def _guard(self) -> Any:
        guard = getattr(self.authenticator, "guard", None)
        if guard is None:
            raise web.HTTPError(404, "this hub's authenticator has no login locks")
        return guard

    @needs_scope("admin:users")  # type: ignore[untyped-decorator]
    def get(self, subject: str | None = None) -> None:
        if subject is not None:
            raise web.HTTPError(405, "GET lists every lock: /hub/api/plexhub/lockouts")
        self.write(json.dumps({"lockouts": self._guard().lockouts()}))

    @needs_scope("admin:users")  # type: ignore[untyped-decorator]
    def delete(self, subject: str | None = None) -> None:
        if not subject:
            raise web.HTTPError(400, "name the user or address to unlock: "
                                "DELETE /hub/api/plexhub/lockouts/<name or address>")
        actor = self.current_user.name if self.current_user is not None else "unknown"
        self._guard().unlock(subject, actor=f"hub:{actor}")
        self.set_status(204)
        self.finish()
