"""Failed hub logins in the API's audit trail (issue 14): what the hub sends and how the API
knows that the hub sent it.

The hub (``hub/loginforward.py``) may not import the API, so it posts its failed logins to
``POST /api/v1/audit/login-events`` (:data:`PATH`), which appends each one to the global
chain as :data:`ACTION`. Only the hub may call it: the request carries :func:`hub_key`,
derived from the API service's own hub token (the token the hub registers the service with
and hands it as ``JUPYTERHUB_API_TOKEN``), which only the hub and the service know; the token
itself never travels. Each event has an id; the API records an id once, so the hub may send
an event again after a lost answer.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

ACTION = "auth.login_failed"
PATH = "/api/v1/audit/login-events"
Reason = Literal["bad_password", "locked_out"]
REASONS: dict[str, str] = {
    "bad_password": "a wrong password, or a user name the hub does not know",
    "locked_out": "refused without a password check: the name or address is locked",
}
MAX_EVENTS = 100  # events in one request
USER_MAX = 200  # characters of a user name tried (the audit's actor column holds 200)
ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
_KEY_INFO = b"plexhub hub login events v1"


def hub_key(service_token: str) -> str:
    """The hub's credential for :data:`PATH`: an HMAC of a fixed label under the service's
    hub token (hex)."""
    return hmac.new(service_token.encode(), _KEY_INFO, hashlib.sha256).hexdigest()


def is_hub_key(presented: str, service_token: str) -> bool:
    """Whether ``presented`` is :func:`hub_key` of ``service_token`` (constant time)."""
    return bool(service_token) and hmac.compare_digest(presented.encode(),
                                                       hub_key(service_token).encode())
