"""An OIDC provider like a city's directory runs one (Keycloak, Entra ID), on a free
127.0.0.1 port: discovery, the authorization endpoint (the person already signed in there
as `user`), the token endpoint and the JWKS, with its own RSA key.

    async with FakeOidc.start(client_id="broadcaster", client_secret="s3cret") as idp:
        idp.redirect_uri = "http://127.0.0.1:8080/console/login/oidc/callback"  # registered
        idp.user = {"preferred_username": "a.meier"}  # who signs in there
        ...

What it checks, with its own code, as a provider would:
- authorize: response_type code, the registered client and redirect URI (else 400, no
  redirect: an unknown redirect is never followed), scope with openid, a PKCE S256
  challenge; the person's consent is taken as given;
- token: POST form, grant_type authorization_code, client_secret_post matching, the
  code known, unused and for this client and redirect URI, the PKCE verifier hashing to
  the challenge; else 400 `invalid_grant` / 401 `invalid_client` as RFC 6749 says.

Levers for the faults a client must catch: `lie` sets claims of the next ID token
(another audience, an old `exp`, another nonce), `foreign_key` signs it with a key that
is not published, `deny` answers the authorization with `error=access_denied`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.base import FakeServer, serving


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    user: dict[str, Any]
    used: bool = False


class FakeOidc(FakeServer):
    def __init__(self, *, client_id: str, client_secret: str, redirect_uri: str = "") -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(4)
        self.user: dict[str, Any] = {"preferred_username": "a.meier"}
        self.grants: dict[str, Grant] = {}
        self.lie: dict[str, Any] = {}
        self.foreign_key = False
        self.deny = False
        self.tokens_issued = 0

    @classmethod
    @asynccontextmanager
    async def start(cls, **options: Any) -> AsyncIterator[FakeOidc]:
        async with serving(cls(**options)) as fake:
            yield fake

    @property
    def issuer(self) -> str:
        return self.base_url

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        routes = {
            "/.well-known/openid-configuration": self.discovery,
            "/authorize": self.authorize,
            "/token": self.token,
            "/jwks": self.jwks,
        }
        handler = routes.get(request.path)
        answer = await handler(request) if handler else web.json_response({}, status=404)
        await self._notify()
        return answer

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.base_url}/authorize",
                "token_endpoint": f"{self.base_url}/token",
                "jwks_uri": f"{self.base_url}/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        numbers = self.key.public_key().public_numbers()

        def whole(n: int) -> str:
            return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        key = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid}
        return web.json_response({"keys": [key | {"n": whole(numbers.n), "e": whole(numbers.e)}]})

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id or q.get("redirect_uri") != self.redirect_uri:
            return web.Response(status=400, text="unknown client or redirect_uri")
        back = q["redirect_uri"]
        state = q.get("state", "")
        if (
            q.get("response_type") != "code"
            or "openid" not in q.get("scope", "").split()
            or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")
        ):
            query = urlencode({"error": "invalid_request", "state": state})
            raise web.HTTPFound(f"{back}?{query}")
        if self.deny:
            raise web.HTTPFound(f"{back}?{urlencode({'error': 'access_denied', 'state': state})}")
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(
            self.client_id, back, q["code_challenge"], q.get("nonce", ""), dict(self.user)
        )
        raise web.HTTPFound(f"{back}?{urlencode({'code': code, 'state': state})}")

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.grants.get(str(form.get("code", "")))
        verifier = str(form.get("code_verifier", ""))
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant.used
            or grant.redirect_uri != form.get("redirect_uri")
            or b64(hashlib.sha256(verifier.encode()).digest()) != grant.challenge
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        grant.used = True  # a code is good once
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": secrets.token_hex(8),
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            **grant.user,
            **self.lie,
        }
        self.tokens_issued += 1
        return web.json_response({"id_token": self.sign(claims), "token_type": "Bearer"})

    def sign(self, claims: dict[str, Any]) -> str:
        key = rsa.generate_private_key(65537, 2048) if self.foreign_key else self.key
        header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": self.kid}).encode())
        body = b64(json.dumps(claims).encode())
        signature = key.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{body}.{b64(signature)}"
