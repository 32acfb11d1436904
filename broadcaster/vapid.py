"""VAPID keys (RFC 8292): the Web Push channel's identity towards the push services.

A key pair on the curve P-256. The private key stays in the environment
(`vapid_private_key: ${VAPID_PRIVATE_KEY}`); the public key is the page's "application
server key", which the browser binds its subscription to. Forms of the private key that
are accepted, the same as py_vapid and pywebpush accept:

- the raw 32-byte secret, base64url (43 characters; what `broadcaster vapid-keys` and the
  `web-push generate-vapid-keys` tool print);
- a DER private key (PKCS#8 or SEC 1), base64url or base64;
- a PEM private key (`-----BEGIN PRIVATE KEY-----`, what py_vapid's `vapid --gen` writes).

The `Authorization` header is `vapid t=<JWT>, k=<public key>`: a JWT signed ES256 with
`aud` (the push service's origin), `exp` (at most 24 hours ahead) and `sub` (a
`mailto:` or `https:` contact). Signing costs about as much as encrypting a push, and
10,000 subscriptions share a handful of origins, so each origin's header is kept
(`VapidSigner`) until it has less than an hour left.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

JWT_LIFETIME = 12 * 3600  # seconds; RFC 8292 allows at most 24 hours
JWT_RENEW = 3600  # a cached header with less than this left is signed again
_MAILTO = re.compile(r"^mailto:[^@\s]+@[^@\s]+\.[^@\s]+$", re.IGNORECASE)
_HTTPS = re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?(/\S*)?$", re.IGNORECASE)


class VapidKeyError(ValueError):
    """The configured key is not a usable P-256 private key (the message never holds it)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Base64url with or without padding; standard base64 (`+/`) too, as py_vapid does."""
    cleaned = "".join(text.split()).rstrip("=").replace("+", "-").replace("/", "_")
    if not re.fullmatch(r"[A-Za-z0-9_-]*", cleaned) or len(cleaned) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))


def load_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """The private key from any accepted form (see the module); VapidKeyError if none."""
    value = text.strip()
    if not value:
        raise VapidKeyError("is empty: set it to the private key `broadcaster vapid-keys` makes")
    key: object
    try:
        if "-----BEGIN" in value:
            key = serialization.load_pem_private_key(value.encode("ascii"), password=None)
        else:
            raw = b64url_decode(value)
            if len(raw) == 32:
                key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                key = serialization.load_der_private_key(raw, password=None)
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError):
        raise VapidKeyError(
            "is not a VAPID private key: give the 43-character base64url key that "
            "`broadcaster vapid-keys` prints (or a P-256 key as PEM or base64url DER)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise VapidKeyError("must be an elliptic-curve key on P-256 (prime256v1)")
    return key


def public_key(key: ec.EllipticCurvePrivateKey) -> str:
    """The application server key: the uncompressed point, base64url (87 characters)."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


def raw_private_key(key: ec.EllipticCurvePrivateKey) -> str:
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def new_key_pair() -> tuple[str, str]:
    """(private key for the environment, public application server key), both base64url."""
    key = ec.generate_private_key(ec.SECP256R1())
    return raw_private_key(key), public_key(key)


def subject_problem(subject: str) -> str | None:
    """Why `subject` cannot be a VAPID `sub` (RFC 8292 section 2.1), or None."""
    if _MAILTO.match(subject) or _HTTPS.match(subject):
        return None
    return "must be a mailto: address (mailto:warnungen@stadt.example) or an https:// URL"


def sign_jwt(key: ec.EllipticCurvePrivateKey, claims: dict[str, str | int]) -> str:
    """A compact JWS, ES256 (RFC 7518 3.4: the signature is r || s, 32 bytes each)."""
    header = b64url(b'{"typ":"JWT","alg":"ES256"}')
    # Sorted claims: some push services were seen to insist (py_vapid does the same).
    body = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{header}.{body}.{b64url(signature)}"


@dataclass
class _Signed:
    header: str
    expires: float


class VapidSigner:
    """`Authorization` headers for push service origins, each signed once and kept while
    it has more than JWT_RENEW seconds left."""

    def __init__(self, private_key: str, subject: str) -> None:
        self.key = load_private_key(private_key)
        self.public_key = public_key(self.key)
        self.subject = subject
        self._cache: dict[str, _Signed] = {}
        self.signed = 0  # JWTs made (a test checks they are shared)

    def header(self, origin: str, now: float | None = None) -> str:
        moment = time.time() if now is None else now
        found = self._cache.get(origin)
        if found is not None and found.expires - moment > JWT_RENEW:
            return found.header
        expires = int(moment) + JWT_LIFETIME
        claims: dict[str, str | int] = {"aud": origin, "exp": expires, "sub": self.subject}
        token = sign_jwt(self.key, claims)
        self.signed += 1
        header = f"vapid t={token}, k={self.public_key}"
        self._cache[origin] = _Signed(header, expires)
        return header
