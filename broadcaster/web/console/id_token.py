"""Checking an OIDC ID token (a JWT signed with RS256) against the provider's keys.

Only what OIDC Core 1.0 section 3.1.3.7 asks of a client that got the token straight
from the token endpoint over TLS: the signature by one of the provider's published keys
(JWKS), the issuer, the audience (and `azp` when there are several), the expiry and
issue time (with a minute's leeway for clocks), and the nonce this sign-in sent.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

LEEWAY = timedelta(seconds=60)
Keys = dict[str, rsa.RSAPublicKey]  # by key id ("" when the provider gives none)


class TokenRefused(Exception):
    """Why the ID token is not taken (audited, never shown with the token itself)."""


def _b64(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (ValueError, binascii.Error):
        raise TokenRefused("not base64url") from None


def _int(part: str) -> int:
    return int.from_bytes(_b64(part), "big")


def keys_of(jwks: dict[str, Any]) -> Keys:
    """The RSA signing keys of a JWKS document."""
    keys: Keys = {}
    for key in jwks.get("keys", []):
        if key.get("kty") == "RSA" and key.get("use", "sig") == "sig":
            numbers = rsa.RSAPublicNumbers(_int(key["e"]), _int(key["n"]))
            keys[str(key.get("kid", ""))] = numbers.public_key()
    return keys


def verify(
    token: str, keys: Keys, *, issuer: str, client_id: str, nonce: str, now: datetime
) -> dict[str, Any]:
    """The token's claims, or TokenRefused saying which check failed."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRefused("not a signed JWT")
    try:
        header = json.loads(_b64(parts[0]))
        claims = json.loads(_b64(parts[1]))
    except ValueError:
        raise TokenRefused("not JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenRefused("not a JWT")
    if header.get("alg") != "RS256":  # never "none", never a key of the token's choosing
        raise TokenRefused(f"algorithm {header.get('alg')!r}, expected RS256")
    kid = str(header.get("kid", ""))
    key = keys.get(kid) or (next(iter(keys.values())) if len(keys) == 1 and not kid else None)
    if key is None:
        raise TokenRefused(f"no published key {kid!r}")
    try:
        signed = f"{parts[0]}.{parts[1]}".encode()
        key.verify(_b64(parts[2]), signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise TokenRefused("bad signature") from None
    if claims.get("iss") != issuer:
        raise TokenRefused(f"issuer {claims.get('iss')!r}, expected {issuer!r}")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise TokenRefused("issued for another client")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise TokenRefused("authorized party is another client")
    moment = now.timestamp()
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= moment - LEEWAY.seconds:
        raise TokenRefused("expired")
    if not isinstance(claims.get("iat"), int | float) or claims["iat"] > moment + LEEWAY.seconds:
        raise TokenRefused("issued in the future")
    if claims.get("nonce") != nonce:
        raise TokenRefused("nonce of another sign-in")
    return claims
