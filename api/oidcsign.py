"""Electronic signatures by a fresh OpenID Connect login (issue 14; 21 CFR 11.200): for users
who log in through an identity provider and have neither a local password nor a token of
their own to type.

The flow (the API is a confidential client of the provider, ``PLEXHUB_OIDC_*``):

1. ``GET /api/v1/signatures/oidc/start`` (the signer, authenticated as usual) answers the
   provider's authorization URL with ``prompt=login`` and ``max_age=0`` (the provider must
   ask for the credential again, not reuse its session), a ``nonce``, PKCE (S256) and a
   ``state`` that carries the signer, the nonce and the PKCE verifier, MAC'd with a key
   derived from the client secret (no server-side state: any API replica takes the
   callback).
2. The provider sends the browser back to ``GET /api/v1/signatures/oidc/callback`` with a
   code; the API exchanges it (with the verifier and its client secret), and accepts the
   ID token only when it verifies against the provider's published keys (RS256/ES256), names
   this issuer and client, is unexpired, carries the flow's nonce, names the signer
   (``PLEXHUB_OIDC_USERNAME_CLAIM``) and has an ``auth_time`` after the flow started and
   at most ``PLEXHUB_OIDC_MAX_AGE_SECONDS`` old (a provider that skipped the login is
   refused). It answers a one-time signature credential (``oidc:...``).
3. The signer sends that credential as ``credential`` with the signed action, within the
   same time; :func:`check` accepts it once (its id is recorded in the ``signature.sign``
   event, and a second use is refused).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from cachetools import TTLCache
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from plexhub.api import audit
from plexhub.api.models import AuditEvent
from plexhub.errors import ConfigurationError, PermissionDeniedError
from plexhub.policies.access import Principal
from plexhub.settings import Settings

PREFIX = "oidc:"
FLOW_SECONDS = 600  # a started login must come back within this long
SKEW = 5  # seconds of clock difference tolerated between the provider and the API
ALGORITHMS = ["RS256", "ES256"]
_DISCOVERY: TTLCache[str, dict[str, Any]] = TTLCache(maxsize=8, ttl=3600)
_KEYS: TTLCache[str, KeySet] = TTLCache(maxsize=8, ttl=600)


class OidcRefusedError(PermissionDeniedError):
    """The provider's answer does not prove a fresh login of the signer (403)."""


@dataclass(frozen=True)
class Client:
    issuer: str
    client_id: str
    secret: str
    username_claim: str
    max_age: int


def client_of(settings: Settings) -> Client:
    if not (settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret):
        raise ConfigurationError("OIDC signatures", "are not configured",
                                 "set PLEXHUB_OIDC_ISSUER, PLEXHUB_OIDC_CLIENT_ID and "
                                 "PLEXHUB_OIDC_CLIENT_SECRET")
    return Client(settings.oidc_issuer.rstrip("/"), settings.oidc_client_id,
                  settings.oidc_client_secret.get_secret_value(),
                  settings.oidc_username_claim, settings.oidc_max_age_seconds)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(client: Client, purpose: str) -> bytes:
    return hashlib.sha256(f"plexhub-oidc-{purpose}\0{client.secret}".encode()).digest()


def _seal(client: Client, purpose: str, doc: dict[str, Any]) -> str:
    body = _b64(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(_key(client, purpose), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def _open(client: Client, purpose: str, sealed: str) -> dict[str, Any] | None:
    body, _, mac = sealed.partition(".")
    want = hmac.new(_key(client, purpose), body.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), want):
            return None
        doc = json.loads(_unb64(body))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def discovery(client: Client) -> dict[str, Any]:
    found = _DISCOVERY.get(client.issuer)
    if found is None:
        r = httpx.get(f"{client.issuer}/.well-known/openid-configuration", timeout=10)
        r.raise_for_status()
        found = dict(r.json())
        if found.get("issuer", "").rstrip("/") != client.issuer:
            raise ConfigurationError("OIDC provider", f"names issuer {found.get('issuer')!r}",
                                     f"set PLEXHUB_OIDC_ISSUER to it (now {client.issuer})")
        _DISCOVERY[client.issuer] = found
    return found


def _keys(client: Client, refresh: bool = False) -> KeySet:
    found = None if refresh else _KEYS.get(client.issuer)
    if found is None:
        r = httpx.get(discovery(client)["jwks_uri"], timeout=10)
        r.raise_for_status()
        found = KeySet.import_key_set(r.json())
        _KEYS[client.issuer] = found
    return found


def start(settings: Settings, signer: Principal, redirect_uri: str) -> dict[str, Any]:
    """The provider's authorization URL for a fresh login of ``signer``."""
    client = client_of(settings)
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(24)
    now = int(time.time())
    state = _seal(client, "state", {"u": signer.user, "r": signer.role, "n": nonce,
                                    "v": verifier, "t": now, "ru": redirect_uri})
    query = {"response_type": "code", "client_id": client.client_id,
             "redirect_uri": redirect_uri, "scope": "openid profile", "state": state,
             "nonce": nonce, "prompt": "login", "max_age": "0",
             "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
             "code_challenge_method": "S256"}
    url = f"{discovery(client)['authorization_endpoint']}?{urlencode(query)}"
    return {"authorize_url": url, "expires_in": FLOW_SECONDS}


def _refuse(why: str) -> OidcRefusedError:
    return OidcRefusedError("OIDC signature login", f"refused: {why}",
                            "start the signature again and log in at the identity provider")


def finish(settings: Settings, code: str, state: str) -> dict[str, Any]:
    """Exchange the provider's ``code`` and check its ID token (see the module's docstring);
    the one-time signature credential and until when it is valid."""
    client = client_of(settings)
    flow = _open(client, "state", state)
    now = time.time()
    if flow is None:
        raise _refuse("the state is not one this service issued")
    if now - float(flow["t"]) > FLOW_SECONDS:
        raise _refuse("the login took too long")
    r = httpx.post(discovery(client)["token_endpoint"], timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": flow["ru"],
        "code_verifier": flow["v"]}, auth=(client.client_id, client.secret))
    if r.status_code != 200:
        raise _refuse(f"the provider did not exchange the code ({r.status_code})")
    raw = r.json().get("id_token")
    if not isinstance(raw, str):
        raise _refuse("the provider sent no ID token")
    claims = _verified(client, raw)
    if claims.get("nonce") != flow["n"]:
        raise _refuse("the ID token is not from this login (nonce)")
    if claims.get(client.username_claim) != flow["u"]:
        raise _refuse(f"the login is not {flow['u']}'s")
    auth_time = claims.get("auth_time")
    if not isinstance(auth_time, int | float):
        raise _refuse("the ID token has no auth_time")
    if auth_time < float(flow["t"]) - SKEW or now - auth_time > client.max_age + SKEW:
        raise _refuse("the provider did not ask for the credential again (auth_time "
                      f"{int(auth_time)} is before this signature's login)")
    expires = int(auth_time) + client.max_age
    ticket = PREFIX + _seal(client, "ticket", {"u": flow["u"], "r": flow["r"],
                                               "j": secrets.token_hex(16),
                                               "at": int(auth_time), "exp": expires})
    return {"credential": ticket, "signer": flow["u"], "auth_time": int(auth_time),
            "expires_at": datetime.fromtimestamp(expires, UTC).isoformat()}


def _verified(client: Client, raw: str) -> dict[str, Any]:
    for refresh in (False, True):  # a key the cached set lacks: the provider rotated them
        try:
            token = jwt.decode(raw, _keys(client, refresh), algorithms=ALGORITHMS)
            break
        except (JoseError, ValueError) as exc:
            if refresh:
                raise _refuse(f"the ID token does not verify ({exc.__class__.__name__})") \
                    from None
    claims = dict(token.claims)
    registry = jwt.JWTClaimsRegistry(leeway=SKEW, iss={"essential": True,
                                                       "value": client.issuer},
                                     aud={"essential": True, "value": client.client_id},
                                     exp={"essential": True})
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise _refuse(f"the ID token's claims do not hold ({exc.error})") from None
    return claims


def is_ticket(credential: str) -> bool:
    return credential.startswith(PREFIX)


def check(session: Session, settings: Settings, signer: Principal,
          credential: str) -> tuple[bool, dict[str, Any]]:
    """Whether ``credential`` is an unused, unexpired signature credential of ``signer``
    (and what the signature's audit event records of it)."""
    try:
        client = client_of(settings)
    except ConfigurationError:
        return False, {}
    doc = _open(client, "ticket", credential[len(PREFIX):])
    if doc is None or doc.get("u") != signer.user or doc.get("r") != signer.role:
        return False, {}
    if time.time() > float(doc["exp"]):
        return False, {}
    jti = str(doc["j"])
    audit.lock_chain(session)  # two signatures with one credential: the second sees the first
    since = datetime.now(UTC) - timedelta(seconds=client.max_age + 2 * SKEW + 60)
    used = session.scalars(select(AuditEvent.after).where(
        AuditEvent.actor == signer.user, AuditEvent.action == "signature.sign",
        AuditEvent.ts >= since)).all()
    if any(isinstance(a, dict) and a.get("oidc_login") == jti for a in used):
        return False, {}
    return True, {"oidc_login": jti, "auth_time": int(doc["at"])}
