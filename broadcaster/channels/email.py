"""E-mail over SMTP submission: one message per recipient (contract section 5, `type: email`).

One connection per attempt (STARTTLS when `starttls`, required then: RFC 3207; AUTH when
`username`/`password` are set: RFC 4954), then one SMTP transaction per recipient on it,
so that every recipient gets a To header of their own (nobody sees the list) and an
outcome of their own. Each message:

- `From`: the channel's `from`; `To`: the recipient; `Subject`: the title (non-ASCII as
  RFC 2047 encoded words); `Date`; `Content-Language`: the message's language;
- `Message-ID`: `<{key}.{h}@{sender domain}>`, with `key` the idempotency key (characters
  other than letters, digits, `_` and `-` written `=XX` per UTF-8 byte) and `h` the first
  16 hex digits of SHA-256 of the lower-cased recipient address: the same on every attempt,
  so a receiver can drop a duplicate after an ambiguous failure (RFC 5322 section 3.6.4);
- `In-Reply-To` and `References`: for a later stage (`reply_to`), the recipient's own
  Message-ID of the incident's first mail, else that mail's `remote_id`; mail clients
  thread on these (RFC 5322 section 3.6.4);
- `Auto-Submitted: auto-generated` (RFC 3834: no auto-replies), `X-Auto-Response-Suppress:
  All` (Exchange's equivalent, MS-OXCMAIL 2.2.3.2.14), `X-Broadcaster-Alert: <alert id>`;
- body: `multipart/alternative` of the text (text/plain, UTF-8, quoted-printable) and the
  same text as HTML (HTML-escaped, line breaks as `<br>`). A confirmation request whose
  text lacks its link gets the link appended.

Answers (RFC 5321 section 4.2.1: 4yz "transient negative", 5yz "permanent negative"):
a refused RCPT or DATA counts for that recipient only (4xx transient, 5xx permanent);
a refused greeting, STARTTLS or AUTH counts for every recipient still to reach, by the
same rule; no STARTTLS offered while `starttls` is set, and a server certificate that does
not verify, are permanent (a configuration or security problem); connection errors and
timeouts are transient for every recipient not yet reached. A timeout after DATA was sent
is ambiguous (the mail may be on its way): the retry sends it again with the same
Message-ID.

Several recipients (contract section 7, `recipients: {total, delivered, failed}`):
see `RecipientProgress`. Mail cannot be recalled: `can_delete` is False, and a retraction
goes out as a correction in the same thread.

Certificates are always verified; `tls_context` replaces the default trust store (tests
pass a context that trusts only their throwaway certificate).
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiohttp
import aiosmtplib

from broadcaster.channels.base import (
    ChannelError,
    OutgoingMessage,
    PermanentError,
    TransientError,
)
from broadcaster.channels.recipients import Checkpoints, RecipientProgress
from broadcaster.channels.settings import EmailChannel
from broadcaster.models import Receipt

DEFAULT_TIMEOUT = 10.0  # seconds for each SMTP command (connect, EHLO, ..., DATA)
ALERT_HEADER = "X-Broadcaster-Alert"
UNDISCLOSED = "undisclosed-recipients:;"  # an empty group (RFC 5322 section 3.4)
_ATOM_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


# -- the message ---------------------------------------------------------------------------


def envelope_address(value: str) -> str:
    """The bare address of `Name <addr>` (or of a bare address)."""
    return parseaddr(value)[1] or value.strip()


def _atom(text: str) -> str:
    return "".join(
        char if char in _ATOM_SAFE else "".join(f"={b:02X}" for b in char.encode("utf-8"))
        for char in text
    )


def _domain(sender: str) -> str:
    domain = envelope_address(sender).rpartition("@")[2].strip().lower()
    if not domain:
        return "localhost"
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "localhost"


def message_id(idempotency_key: str, recipient: str, sender: str) -> str:
    """The Message-ID of this delivery's mail to this recipient (stable across attempts)."""
    digest = hashlib.sha256(envelope_address(recipient).lower().encode("utf-8")).hexdigest()
    return f"<{_atom(idempotency_key)}.{digest[:16]}@{_domain(sender)}>"


def plain_text(message: OutgoingMessage) -> str:
    text = message.text
    if message.confirm_url and message.confirm_url not in text:
        text = f"{text.rstrip()}\n\n{message.confirm_url}"
    return text


def html_text(message: OutgoingMessage) -> str:
    """The text as an HTML document: every character escaped, line breaks as <br>."""
    lines = [html.escape(line, quote=True) for line in message.text.splitlines()]
    paragraph = "<br>\n".join(lines)
    link = ""
    if message.confirm_url and message.confirm_url not in message.text:
        url = html.escape(message.confirm_url, quote=True)
        link = f'<p><a href="{url}">{url}</a></p>\n'
    language = html.escape(message.language, quote=True)
    return (
        f'<!DOCTYPE html>\n<html lang="{language}">\n<head><meta charset="utf-8"></head>\n'
        f"<body>\n<p>{paragraph}</p>\n{link}</body>\n</html>\n"
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def compose(
    config: EmailChannel,
    message: OutgoingMessage,
    recipient: str | list[str],
    *,
    now: datetime | None = None,
) -> EmailMessage:
    """The mail for one recipient, or for a batch of them (`bcc_batch`): then the To
    header names nobody and the addresses are in the envelope only."""
    batch = [recipient] if isinstance(recipient, str) else recipient
    mail = EmailMessage()
    mail["From"] = config.sender
    if config.bcc_batch > 1:
        mail["To"] = UNDISCLOSED
        # Stable for the same batch: a resent batch keeps its Message-ID.
        key = "\n".join(sorted(envelope_address(r).lower() for r in batch))
    else:
        mail["To"] = batch[0]
        key = batch[0]
    mail["Subject"] = _one_line(message.title)
    mail["Date"] = format_datetime(now or datetime.now(UTC))
    mail["Message-ID"] = message_id(message.idempotency_key, key, config.sender)
    parent = _parent_id(message.reply_to, batch[0])
    if parent is not None:
        mail["In-Reply-To"] = parent
        mail["References"] = parent
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Auto-Response-Suppress"] = "All"
    mail[ALERT_HEADER] = _one_line(message.alert_id)
    mail.set_content(plain_text(message), subtype="plain", cte="quoted-printable")
    mail.add_alternative(html_text(message), subtype="html", cte="quoted-printable")
    # After the body: set_content() and add_alternative() move or drop Content-* headers.
    mail["Content-Language"] = _one_line(message.language)
    return mail


def _parent_id(reply_to: Receipt | None, recipient: str) -> str | None:
    if reply_to is None:
        return None
    ids = reply_to.data.get("ids")
    if isinstance(ids, Mapping) and isinstance(ids.get(recipient), str):
        return str(ids[recipient])
    return reply_to.remote_id


# -- the adapter ---------------------------------------------------------------------------


class EmailAdapter:
    """One mailbox sending to a list of addresses (channels/<id>.yaml, `type: email`)."""

    can_thread: bool = True  # In-Reply-To / References
    can_delete: bool = False  # sent mail cannot be recalled

    def __init__(
        self,
        channel_id: str,
        config: EmailChannel,
        session: aiohttp.ClientSession | None = None,  # unused: SMTP, not HTTP
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.channel_id = channel_id
        self._config = config
        self._timeout = timeout
        self._tls_context = tls_context
        self._service = f"email {channel_id}"

    async def send(self, message: OutgoingMessage) -> Receipt:
        progress = RecipientProgress.resume(self._service, self._config.to, message.previous)
        pending = progress.pending()
        if pending:
            checkpoints = Checkpoints(progress, message.checkpoint)
            await self._deliver(message, pending, progress, checkpoints)
        return progress.outcome()

    async def delete(self, receipt: Receipt) -> None:
        raise PermanentError(f"{self._service}: sent e-mail cannot be recalled")

    def _client(self) -> aiosmtplib.SMTP:
        config = self._config
        return aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password if config.username is not None else None,
            start_tls=config.starttls,
            validate_certs=True,
            tls_context=self._tls_context,
            timeout=self._timeout,
        )

    async def _deliver(
        self,
        message: OutgoingMessage,
        pending: list[str],
        progress: RecipientProgress,
        checkpoints: Checkpoints,
    ) -> None:
        client = self._client()
        try:
            await client.connect()
        except Exception as exc:
            error = self._session_error(exc)
            if error is None:
                raise
            for recipient in pending:
                progress.failed(recipient, error)
            client.close()
            return
        sender = envelope_address(self._config.sender)
        size = self._config.bcc_batch
        batches = [pending[i : i + size] for i in range(0, len(pending), size)]
        try:
            for index, batch in enumerate(batches):
                try:
                    mail = compose(self._config, message, batch)
                    addresses = {envelope_address(r): r for r in batch}
                    refused, _ = await client.send_message(
                        mail, sender=sender, recipients=list(addresses)
                    )
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    for refusal in exc.recipients:
                        who = addresses.get(refusal.recipient, batch[0])
                        progress.failed(who, self._reply_error(refusal.code, refusal.message))
                except aiosmtplib.SMTPResponseException as exc:
                    for recipient in batch:
                        progress.failed(recipient, self._reply_error(exc.code, exc.message))
                except (aiosmtplib.SMTPNotSupported, ValueError) as exc:
                    # A non-ASCII address the server cannot take, or no address at all.
                    for recipient in batch:
                        progress.failed(recipient, PermanentError(_one_line(str(exc))))
                except Exception as exc:
                    error = self._session_error(exc)
                    if error is None:
                        raise
                    for rest in batches[index:]:
                        for recipient in rest:
                            progress.failed(recipient, error)
                    break
                else:
                    for address, recipient in addresses.items():
                        answer = refused.get(address)
                        if answer is None:
                            progress.delivered(recipient, str(mail["Message-ID"]))
                        else:
                            progress.failed(
                                recipient, self._reply_error(answer.code, answer.message)
                            )
                await checkpoints.settle(len(batch))
        finally:
            await self._quit(client)

    async def _quit(self, client: aiosmtplib.SMTP) -> None:
        if client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        client.close()

    def _reply_error(self, code: int, text: str) -> ChannelError:
        """An SMTP reply as one recipient's error: 4yz transient, anything else permanent."""
        message = f"{code} {_one_line(text)}"
        if 400 <= code < 500:
            return TransientError(message)
        return PermanentError(message)

    def _session_error(self, exc: BaseException) -> ChannelError | None:
        """The error of every recipient still to reach; None: not ours to classify."""
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            # Greeting, EHLO, STARTTLS or AUTH refused with a reply code.
            return self._reply_error(exc.code, exc.message)
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or str(exc)
            return PermanentError(f"the server's certificate does not verify: {reason}")
        if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
            return TransientError(f"no answer within {self._timeout:g}s")
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
            return TransientError(_one_line(str(exc)))
        if isinstance(exc, ssl.SSLError | OSError):
            return TransientError(f"{type(exc).__name__}: {_one_line(str(exc))}")
        if isinstance(exc, aiosmtplib.SMTPException):
            # "STARTTLS extension not supported", "AUTH extension not supported", ...
            return PermanentError(_one_line(str(exc)))
        return None
