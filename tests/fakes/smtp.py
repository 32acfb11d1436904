"""A submission server like a careful mail provider runs, on a free 127.0.0.1 port.

    async with FakeSmtp.start(tls=server_tls, credentials=("alerts", "pw")) as fake:
        adapter = EmailAdapter("mail", EmailChannel(host="127.0.0.1", port=fake.port, ...), ...)
        fake.refuse("b@example.org", 450, "4.2.1 Mailbox busy", times=1)
        ...
        assert fake.received_by("a@example.org")

It is aiosmtpd's real SMTP protocol (RFC 5321 state machine, ESMTP extensions, STARTTLS
per RFC 3207, AUTH PLAIN/LOGIN per RFC 4954) served in the test's own event loop, with a
handler that behaves like a provider:

1. with `tls` (a server SSLContext, e.g. from `self_signed_certificate`): STARTTLS is
   offered and required before MAIL (`530 Must issue a STARTTLS command first`, as
   aiosmtpd answers), AUTH is only offered after STARTTLS;
2. with `credentials`: AUTH is required before MAIL/RCPT (`530 5.7.0 Authentication
   required`); wrong credentials get `535 5.7.8 Authentication credentials invalid`;
3. RCPT: a refusal set with `refuse(address, code, text, times=...)` (4xx: try again
   later, 5xx: never, RFC 5321 section 4.2.1), else `250 OK`;
4. DATA: waits while `hold()` is in force; a refusal set with `fail_data(...)`, else
   `250 OK: queued as <id>` and the message is recorded in `messages`.

Every transaction that reached DATA is recorded in `transactions` (refused or not).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import subprocess
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SERVER_NAME = "fake-smtp.test"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1/localhost (cert, key), made with openssl.

    The `cryptography` package is not a dependency; the openssl command line is.
    """
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def client_context(cert: Path) -> ssl.SSLContext:
    """A client context that trusts only this certificate, still checking it fully."""
    return ssl.create_default_context(cafile=str(cert))


@dataclass
class Transaction:
    """One MAIL ... DATA exchange as the server saw it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool  # the session had done STARTTLS
    login: str | None  # the authenticated user, if any
    answer: str = ""  # the DATA reply sent

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def accepted(self) -> bool:
        return self.answer.startswith("250")


@dataclass
class _Refusal:
    code: int
    text: str
    times: int | None  # None: every time

    def take(self) -> str | None:
        if self.times is not None:
            if self.times <= 0:
                return None
            self.times -= 1
        return f"{self.code} {self.text}"


@dataclass
class _Handler:
    fake: FakeSmtp

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.fake.rcpt_attempts.append(address)
        refusal = self.fake._rcpt_refusals.get(address.lower())
        answer = refusal.take() if refusal is not None else None
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        transaction = Transaction(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=content,
            tls=session.ssl is not None,
            login=_login(session),
        )
        self.fake.transactions.append(transaction)
        await self.fake._notify()
        await self.fake._gate.wait()
        answer = None
        for rcpt in transaction.rcpt_tos:
            refusal = self.fake._data_refusals.get(rcpt.lower())
            answer = refusal.take() if refusal is not None else None
            if answer is not None:
                break
        if answer is None:
            answer = f"250 OK: queued as {uuid.uuid4().hex[:12].upper()}"
            self.fake.messages.append(transaction)
        transaction.answer = answer
        await self.fake._notify()
        return answer


def _login(session: Session) -> str | None:
    data: object = session.auth_data  # whatever the authenticator kept
    if isinstance(data, LoginPassword):
        return data.login.decode("utf-8", "replace")
    return None


class FakeSmtp:
    def __init__(self, *, tls: ssl.SSLContext | None, credentials: tuple[str, str] | None) -> None:
        self.tls = tls
        self.credentials = credentials
        self.port = 0  # set once listening
        self.transactions: list[Transaction] = []  # every DATA, accepted or refused
        self.messages: list[Transaction] = []  # accepted mail only
        self.rcpt_attempts: list[str] = []  # every RCPT TO address, in order
        self.auth_failures = 0
        self.connections = 0  # SMTP sessions opened, counted as each is accepted
        self._rcpt_refusals: dict[str, _Refusal] = {}
        self._data_refusals: dict[str, _Refusal] = {}
        self._gate = asyncio.Event()
        self._gate.set()
        self._changed = asyncio.Condition()

    @classmethod
    @asynccontextmanager
    async def start(
        cls, *, tls: ssl.SSLContext | None = None, credentials: tuple[str, str] | None = None
    ) -> AsyncIterator[FakeSmtp]:
        fake = cls(tls=tls, credentials=credentials)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(fake._protocol, "127.0.0.1", 0)
        fake.port = int(server.sockets[0].getsockname()[1])
        try:
            yield fake
        finally:
            fake.release()
            server.close()
            await server.wait_closed()

    def _protocol(self) -> SMTP:
        self.connections += 1
        kwargs: dict[str, Any] = {
            "hostname": SERVER_NAME,
            "loop": asyncio.get_running_loop(),
            "enable_SMTPUTF8": True,
            "timeout": 30,
        }
        if self.tls is not None:
            kwargs.update(tls_context=self.tls, require_starttls=True)
        if self.credentials is not None:
            kwargs.update(
                auth_required=True,
                auth_require_tls=self.tls is not None,
                authenticator=self._authenticate,
            )
        with warnings.catch_warnings():
            # AUTH without TLS (only when the test asks for it) makes aiosmtpd warn.
            warnings.simplefilter("ignore")
            return SMTP(_Handler(self), **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        expected = self.credentials
        if (
            expected is not None
            and isinstance(data, LoginPassword)
            and data.login == expected[0].encode("utf-8")
            and data.password == expected[1].encode("utf-8")
        ):
            return AuthResult(success=True, auth_data=data)
        self.auth_failures += 1
        return AuthResult(success=False, handled=False)

    # -- scripting ---------------------------------------------------------------------

    def refuse(self, address: str, code: int, text: str, *, times: int | None = None) -> None:
        """Answer RCPT TO for this address with `code text` (`times` times, or always)."""
        self._rcpt_refusals[address.lower()] = _Refusal(code, text, times)

    def fail_data(self, address: str, code: int, text: str, *, times: int | None = None) -> None:
        """Answer DATA of a transaction to this address with `code text`."""
        self._data_refusals[address.lower()] = _Refusal(code, text, times)

    def hold(self) -> None:
        """Leave every DATA unanswered until `release()` (the message is recorded)."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def received_by(self, address: str) -> list[Transaction]:
        """Accepted messages whose envelope named this recipient."""
        wanted = address.lower()
        return [t for t in self.messages if wanted in (r.lower() for r in t.rcpt_tos)]

    async def wait_for_transactions(self, count: int, timeout: float = 20.0) -> None:
        """Return once `count` transactions have reached DATA (answered or not)."""
        await self._wait(lambda: len(self.transactions) >= count, timeout)

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


__all__ = [
    "FakeSmtp",
    "Transaction",
    "client_context",
    "self_signed_certificate",
    "server_context",
]
