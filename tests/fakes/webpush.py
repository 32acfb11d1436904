"""A Web Push service (RFC 8030) as browsers' push services answer, on a free 127.0.0.1 port.

    async with FakePushService.start() as fake:
        browser = fake.subscribe()            # a browser's key pair and auth secret
        browser.json()                        # what PushSubscription.toJSON() gives the page
        ...                                   # the adapter pushes to browser.endpoint
        assert fake.delivered_to(browser)[0].data["title"] == "..."
        fake.expire(browser)                  # from now on 410 Gone

It checks with its own code (cryptography and hmac, not pywebpush), in this order, what
each `POST /push/<token>` carries:

1. records it in `requests` (and later the status it was answered with);
2. 404 for any other path, 405 for any other method, 404 for a token it never handed
   out, 410 for one `expire`d (the browser unsubscribed);
3. waits while `hold()` is in force, then `delay(seconds)`;
4. a scripted answer, if one is queued with `script(...)` (429 with Retry-After, 5xx...);
5. 413 for a body over 4,096 bytes (RFC 8030 7.2: the limit push services must take);
6. 400 without a `TTL` header (a number), with an `Urgency` other than very-low, low,
   normal or high, or a `Topic` longer than 32 characters or outside base64url;
   415 unless `Content-Encoding: aes128gcm`;
7. VAPID (RFC 8292): 401 without `Authorization: vapid t=<JWT>, k=<key>`; 403 when the
   JWT is not ES256 signed by `k`, `aud` is not this service's origin, `exp` is past or
   more than 24 hours ahead, `sub` is not `mailto:` or `https:`, or `k` is not the
   application server key the subscription was made with (when `subscribe(key=...)`);
8. decrypts the body (RFC 8291 with RFC 8188 records) with the browser's private key and
   auth secret; 400 when that fails. With `check_every = n`, only every n-th push is
   decrypted (the bench's 10,000: decrypting would make the fake the bottleneck); every
   push is still checked for 5-7 and counted. VAPID signatures are verified once per
   distinct header (the sender reuses one per origin) and `exp` on every request;
9. 201 Created with `Location: /message/<id>`, the push appended to `pushes`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import struct
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from multidict import CIMultiDictProxy

from tests.fakes.base import Answer, FakeServer, ScriptedAnswer, phrase, scripted, serving

MAX_BODY = 4096
_PATH = re.compile(r"^/push/(?P<token>[A-Za-z0-9_-]+)$")
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
MAX_EXP = 24 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    if not _BASE64URL.match(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with one block of output (all that RFC 8291 needs): written out with
    hmac, so the check does not share code with the sender."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


class DecryptError(ValueError):
    pass


def decrypt(body: bytes, private_key: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """RFC 8291 section 3 and RFC 8188 section 2: the plaintext of an aes128gcm body."""
    if len(body) < 21:
        raise DecryptError("body shorter than the aes128gcm header")
    salt, (record_size,), id_length = body[:16], struct.unpack("!I", body[16:20]), body[20]
    if record_size < 18:
        raise DecryptError(f"record size {record_size} below 18")
    sender_key = body[21 : 21 + id_length]
    if id_length != 65:
        raise DecryptError(f"keyid is {id_length} bytes, not the sender's 65-byte P-256 key")
    try:
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_key)
    except ValueError:
        raise DecryptError("keyid is not a P-256 point") from None
    receiver = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    shared = private_key.exchange(ec.ECDH(), sender)
    key_info = b"WebPush: info\x00" + receiver + sender_key
    ikm = _hkdf(auth_secret, shared, key_info, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    ciphertext = body[21 + id_length :]
    if not ciphertext:
        raise DecryptError("no records")
    records = [ciphertext[i : i + record_size] for i in range(0, len(ciphertext), record_size)]
    plaintext = b""
    for sequence, record in enumerate(records):
        iv = (int.from_bytes(nonce, "big") ^ sequence).to_bytes(12, "big")
        try:
            opened = AESGCM(cek).decrypt(iv, record, None)
        except InvalidTag:
            raise DecryptError(f"record {sequence} does not decrypt (wrong keys?)") from None
        padded = opened.rstrip(b"\x00")
        last = sequence == len(records) - 1
        if not padded or padded[-1] != (2 if last else 1):
            raise DecryptError(f"record {sequence} has no valid padding delimiter")
        plaintext += padded[:-1]
    return plaintext


@dataclass
class BrowserSubscription:
    """What a browser holds for one subscription: its key pair and auth secret."""

    token: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    server_key: str | None = None  # the applicationServerKey it was made with

    @property
    def p256dh(self) -> str:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(point)

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)

    def json(self) -> dict[str, Any]:
        """PushSubscription.toJSON(), as the page posts it."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": self.auth},
        }


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    status: int | None = None
    error: str | None = None  # what the fake found wrong


@dataclass
class Push:
    """An accepted push: its headers and, when it was decrypted, the plaintext."""

    token: str
    ttl: int
    urgency: str | None
    topic: str | None
    claims: dict[str, Any]
    plaintext: bytes | None
    at: float = field(default_factory=time.monotonic)

    @property
    def data(self) -> Any:
        assert self.plaintext is not None, "this push was counted, not decrypted"
        return json.loads(self.plaintext)


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _error(status: int, headers: Any = None, reason: str | None = None) -> Answer:
    # Push services answer errors with a short JSON body (autopush: code, errno, error).
    body = json.dumps({"code": status, "error": phrase(status), "message": reason or ""})
    return Answer(status, body.encode(), {"Content-Type": "application/json", **(headers or {})})


class FakePushService(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.browsers: dict[str, BrowserSubscription] = {}
        self.expired: set[str] = set()
        self.pushes: list[Push] = []
        self.check_every = 1  # decrypt every n-th push (all are counted)
        self.decrypted = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[Answer] = deque()
        self._verified: dict[str, dict[str, Any]] = {}  # Authorization header -> its claims
        self._seen = 0

    @classmethod
    @asynccontextmanager
    async def start(cls) -> AsyncIterator[FakePushService]:
        fake = cls()
        async with serving(fake):
            yield fake

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    # -- the browser's side --------------------------------------------------------------

    def subscribe(self, key: str | None = None) -> BrowserSubscription:
        """A new subscription as a browser makes it (a P-256 key pair and 16 random bytes
        of auth secret); `key`: the application server key it is bound to."""
        token = secrets.token_urlsafe(24)
        browser = BrowserSubscription(
            token,
            f"{self.base_url}/push/{token}",
            ec.generate_private_key(ec.SECP256R1()),
            secrets.token_bytes(16),
            key,
        )
        self.browsers[token] = browser
        return browser

    def expire(self, browser: BrowserSubscription) -> None:
        """The browser unsubscribed: its endpoint answers 410 Gone from now on."""
        self.expired.add(browser.token)

    def forget(self, browser: BrowserSubscription) -> None:
        """The push service lost it: 404 Not Found from now on."""
        self.browsers.pop(browser.token, None)

    def script(self, *answers: ScriptedAnswer) -> None:
        """Answer the next pushes with these (after the path and token checks)."""
        self._script.extend(scripted(a, lambda s, h: _error(s, h)) for a in answers)

    def delivered_to(self, browser: BrowserSubscription) -> list[Push]:
        return [p for p in self.pushes if p.token == browser.token]

    # -- serving -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        record = RecordedRequest(request.method, request.path, request.headers, body)
        self.requests.append(record)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await self._notify()
        try:
            try:
                answer = await self._answer(request, record)
            except _Refused as refused:
                record.error = refused.reason
                answer = _error(refused.status, reason=refused.reason)
            response = answer.response()
            record.status = response.status
            return response
        finally:
            self.in_flight -= 1
            await self._notify()

    async def _answer(self, request: web.Request, record: RecordedRequest) -> Answer:
        match = _PATH.match(request.path)
        if match is None:
            return _error(404, reason="no such path")
        if request.method != "POST":
            return _error(405, {"Allow": "POST"})
        token = match["token"]
        if token in self.expired:
            return _error(410, reason="subscription expired or unsubscribed")
        browser = self.browsers.get(token)
        if browser is None:
            return _error(404, reason="no such subscription")
        await self._gate.wait()
        if self._delay:
            await asyncio.sleep(self._delay)  # the service's latency, not synchronisation
        if self._script:
            return self._script.popleft()
        headers = request.headers
        if len(record.body) > MAX_BODY:
            raise _Refused(413, f"{len(record.body)} bytes; at most {MAX_BODY}")
        ttl, urgency, topic = self._headers(headers)
        claims = self._vapid(headers.get("Authorization"), browser)
        self._seen += 1
        plaintext = None
        if (self._seen - 1) % self.check_every == 0:
            try:
                plaintext = decrypt(record.body, browser.private_key, browser.auth_secret)
            except DecryptError as exc:
                raise _Refused(400, f"cannot decrypt: {exc}") from None
            self.decrypted += 1
        message = secrets.token_urlsafe(12)
        self.pushes.append(Push(token, ttl, urgency, topic, claims, plaintext))
        return Answer(201, b"", {"Location": f"{self.base_url}/message/{message}"})

    def _headers(self, headers: CIMultiDictProxy[str]) -> tuple[int, str | None, str | None]:
        ttl = headers.get("TTL")
        if ttl is None or not ttl.isascii() or not ttl.isdigit():
            raise _Refused(400, "TTL header missing or not a number of seconds")
        urgency = headers.get("Urgency")
        if urgency is not None and urgency not in URGENCIES:
            raise _Refused(400, f"Urgency {urgency!r} is not one of {sorted(URGENCIES)}")
        topic = headers.get("Topic")
        if topic is not None and (len(topic) > 32 or not _BASE64URL.match(topic)):
            raise _Refused(400, "Topic: at most 32 characters of base64url")
        if headers.get("Content-Encoding") != "aes128gcm":
            raise _Refused(415, "Content-Encoding must be aes128gcm")
        return int(ttl), urgency, topic

    def _vapid(self, authorization: str | None, browser: BrowserSubscription) -> dict[str, Any]:
        """The JWT's claims, checked (RFC 8292 sections 2-4); _Refused when not valid."""
        if authorization is None:
            raise _Refused(401, "Authorization missing")
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() != "vapid":
            raise _Refused(401, "Authorization is not `vapid t=..., k=...`")
        params: dict[str, str] = {}
        for part in rest.split(","):
            name, _, value = part.strip().partition("=")
            params[name.strip().lower()] = value.strip()
        token, key = params.get("t"), params.get("k")
        if not token or not key:
            raise _Refused(401, "vapid needs t= and k=")
        if browser.server_key is not None and key != browser.server_key:
            raise _Refused(403, "k is not the key this subscription was made with")
        claims = self._verified.get(authorization)
        if claims is None:
            claims = _verify_jwt(token, key)
            self._verified[authorization] = claims
        if claims.get("aud") != self.origin:
            raise _Refused(403, f"aud {claims.get('aud')!r} is not {self.origin}")
        exp, now = claims.get("exp"), time.time()
        if not isinstance(exp, int) or exp <= now or exp > now + MAX_EXP:
            raise _Refused(403, "exp must be in the future and at most 24 hours ahead")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
            raise _Refused(403, "sub must be a mailto: or https: contact")
        return claims


def _verify_jwt(token: str, key: str) -> dict[str, Any]:
    try:
        head, body, signature = token.split(".")
        header = json.loads(unb64url(head))
        point = unb64url(key)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        raw = unb64url(signature)
    except (ValueError, binascii.Error):
        raise _Refused(403, "t is not a JWT or k not a P-256 key") from None
    if header.get("alg") != "ES256" or len(raw) != 64:
        raise _Refused(403, "the JWT must be ES256 (a 64-byte r||s signature)")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{head}.{body}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise _Refused(403, "the JWT's signature does not verify with k") from None
    claims = json.loads(unb64url(body))
    if not isinstance(claims, dict):
        raise _Refused(403, "the JWT's claims are not an object")
    return claims


async def subscribe(
    http: aiohttp.ClientSession, base: str, push: FakePushService, *, drill: bool = False
) -> BrowserSubscription:
    """What push.js does: fetch the key, subscribe the browser with it, post toJSON()."""
    async with http.get(f"{base}/warnings/push/key") as r:
        assert r.status == 200
        key = (await r.json())["key"]
    browser = push.subscribe(key=key)
    body = {**browser.json(), "language": "de", "drill": drill}
    async with http.post(f"{base}/warnings/subscriptions", json=body) as r:
        assert r.status == 201, await r.text()
    return browser
