"""JupyterHub's :class:`~jupyterhub.services.auth.HubOAuth`, with its OAuth state in a cookie.

HubOAuth keeps each login's state (the page to go back to, the PKCE verifier) in a dict of the
process and puts only an id into the state cookie, so a login started on one API worker fails
when the hub sends the browser back to another. Here the "encoded OAuth state" that HubOAuth's
``get_next_url`` and ``get_code_verifier`` take *is* the state: JSON signed (tornado's signed
values, as HubOAuth's own cookies are) with a key derived from the service's hub token, which
every worker has. A value that is forged, from another service or older than
``state_seconds`` decodes to nothing.

Imported only in hub mode (``plexhub.api.hubauth.HubAuth``): jupyterhub is slow to import.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from jupyterhub.services.auth import HubOAuth
from tornado.httputil import url_concat
from tornado.web import HTTPError, create_signed_value, decode_signed_value
from traitlets import Float, Unicode

_KEY_LABEL = b"plexhub oauth state v1"


class CookieStateOAuth(HubOAuth):  # type: ignore[misc]  # traitlets classes are untyped
    """HubOAuth whose encoded state is self-contained (see the module docstring)."""

    HubError = HTTPError  # what HubOAuth raises when the hub fails or refuses

    state_name = Unicode("plexhub-oauth-state", help="the signed state's name (its cookie's)")
    state_seconds = Float(600.0, help="how long a login may take, in seconds")
    request_timeout = Float(10.0, help="seconds for one call to the hub")

    def _secret(self) -> bytes:
        return hmac.new(str(self.api_token).encode(), _KEY_LABEL, hashlib.sha256).digest()

    # -- HubOAuth's state hooks -----------------------------------------------------------
    def generate_state(self, next_url: str | None = None, **extra_state: Any) -> str:
        state = {"id": secrets.token_urlsafe(16), "next_url": next_url, **extra_state}
        return create_signed_value(self._secret(), self.state_name,
                                   json.dumps(state)).decode("ascii")

    def _decode_state(self, state_id: str, /) -> dict[str, Any]:
        raw = decode_signed_value(self._secret(), self.state_name, state_id or None,
                                  max_age_days=self.state_seconds / 86400)
        try:
            state = json.loads(raw) if raw is not None else {}
        except ValueError:
            return {}
        return state if isinstance(state, dict) else {}

    def clear_oauth_state(self, state_id: str) -> None:
        """Nothing is kept in the process (the browser drops the cookie)."""

    def state_id(self, value: str) -> str:
        """The state the hub echoes for the encoded state ``value`` ("" when invalid)."""
        return str(self._decode_state(value).get("id", ""))

    def authorize_url(self, params: dict[str, str]) -> str:
        """The hub's authorize page for this service (``login_url``) with ``params``."""
        return str(url_concat(self.login_url, params))

    # -- the hub calls ----------------------------------------------------------------------
    async def _api_request(self, method: str, url: str, /, **kwargs: Any) -> Any:
        """HubOAuth's hub call, with a time limit (aiohttp's default is 5 minutes)."""
        import aiohttp

        kwargs.setdefault("timeout", aiohttp.ClientTimeout(total=self.request_timeout))
        return await super()._api_request(method, url, **kwargs)

    def start(self) -> None:
        """Start HubOAuth's thread (which runs the hub calls of ``sync=True``) now: made on
        first use, two requests at once could each make one."""
        self._pool  # noqa: B018  # a lazy traitlets default: reading it creates it

    def stop(self) -> None:
        """Close the HTTP session on the thread's event loop, then the thread and loop."""
        self._synchronize(_close_http_client)
        self._pool.shutdown(wait=True)
        self._thread_loop.close()


async def _close_http_client() -> None:
    from jupyterhub.httpclient import JupyterHubHTTPClient

    await JupyterHubHTTPClient.loop_instance().close()
