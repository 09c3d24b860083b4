"""A small OpenID Connect provider on 127.0.0.1 for tests (the identity provider's side, which
users of plexhub never run from it): discovery, JWKS, an authorization endpoint with a login
form, and a token endpoint (authorization code, client_secret_basic, PKCE S256) that issues
RS256 ID tokens with ``nonce`` and ``auth_time``.

``stale_login`` makes it behave like a provider that ignores ``prompt=login`` and answers from
an hour-old session (its ``auth_time`` is then an hour ago)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.helpers.net import free_port


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body."""
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


@dataclass
class Provider:
    base: str
    client_id: str
    client_secret: str
    users: dict[str, str]  # user name -> password
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(
        2048, parameters={"kid": "test-1", "use": "sig", "alg": "RS256"}))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    stale_login: bool = False
    logins: list[dict[str, str]] = field(default_factory=list)  # what /authorize was asked

    def app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            return JSONResponse({
                "issuer": self.base, "authorization_endpoint": f"{self.base}/authorize",
                "token_endpoint": f"{self.base}/token", "jwks_uri": f"{self.base}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "preferred_username", "auth_time", "nonce"]})

        async def jwks(request: Request) -> Response:
            return JSONResponse({"keys": [self.key.as_dict(private=False)]})

        async def authorize(request: Request) -> Response:
            q = dict(request.query_params)
            self.logins.append(q)
            hidden = "".join(f"<input type=hidden name='{escape(k)}' value='{escape(v)}'>"
                             for k, v in q.items())
            return HTMLResponse(f"<form method=post action=/login>{hidden}"
                                "<input name=username><input name=password type=password>"
                                "<button>Log in</button></form>")

        async def login(request: Request) -> Response:
            form = await _form(request)
            user, password = form.pop("username", ""), form.pop("password", "")
            if form.get("client_id") != self.client_id or self.users.get(user) != password:
                return HTMLResponse("wrong user name or password", status_code=401)
            code = secrets.token_urlsafe(16)
            now = int(time.time())
            self.codes[code] = {**form, "user": user,
                                "auth_time": now - 3600 if self.stale_login else now}
            sep = "&" if "?" in form["redirect_uri"] else "?"
            return RedirectResponse(f"{form['redirect_uri']}{sep}code={code}&state="
                                    f"{form['state']}", status_code=302)

        async def token(request: Request) -> Response:
            form = await _form(request)
            basic = request.headers.get("authorization", "")
            want = "Basic " + base64.b64encode(
                f"{self.client_id}:{self.client_secret}".encode()).decode()
            if basic != want:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.codes.pop(form.get("code", ""), None)
            if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(
                form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
            if challenge != grant.get("code_challenge"):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {"iss": self.base, "sub": f"sub-{grant['user']}", "aud": self.client_id,
                      "iat": now, "exp": now + 300, "auth_time": grant["auth_time"],
                      "nonce": grant.get("nonce"), "preferred_username": grant["user"]}
            id_token = jwt.encode({"alg": "RS256", "kid": "test-1"}, claims, self.key)
            return JSONResponse({"access_token": secrets.token_urlsafe(16),
                                 "token_type": "Bearer", "expires_in": 300,
                                 "id_token": id_token})

        return Starlette(routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks), Route("/authorize", authorize),
            Route("/login", login, methods=["POST"]), Route("/token", token, methods=["POST"])])


@contextmanager
def running_provider(users: dict[str, str], client_id: str = "plexhub-api",
                     client_secret: str = "provider-client-secret-42") -> Iterator[Provider]:
    port = free_port()
    provider = Provider(f"http://127.0.0.1:{port}", client_id, client_secret, users)
    server = uvicorn.Server(uvicorn.Config(provider.app(), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test OIDC provider did not start")
        time.sleep(0.02)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=30)
