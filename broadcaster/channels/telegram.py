"""Telegram: a bot posting to one chat or channel (contract section 5, `type: telegram`).

One Bot API call per message (core.telegram.org/bots/api#sendmessage; field list checked
against the Bot API 10.1 spec dump, github.com/PaulSonOfLars/telegram-bot-api-spec
`api.json`):

    POST {base_url}/bot<bot_token>/sendMessage
    Content-Type: application/json
    {"chat_id": -1001234567890 | "@channelname", "text": "<b>Title</b>\\n\\nText",
     "parse_mode": "HTML", "link_preview_options": {"is_disabled": true},
     "reply_parameters": {"message_id": 42, "allow_sending_without_reply": true}}

The token travels in the path (there is no auth header), so it is kept out of every
error message. `reply_parameters` is sent only when the message has `reply_to` (the
incident's first post here); `allow_sending_without_reply` makes Telegram post it
standalone when that post is gone, instead of refusing it.

Text (#formatting-options, HTML style): the title in bold, a blank line, the text. Both
are user data and are escaped: every `&`, `<` and `>` becomes `&amp;`, `&lt;`, `&gt;`
(the only characters HTML mode requires escaped outside tags; quotes may stay), so a
`<12>` in a street name can never be read as a tag nor break parsing. A confirmation
request whose text lacks its link gets the link appended (an internal chat of the duty
officers).

The answer is the envelope `{"ok": true, "result": <Message>}` or
`{"ok": false, "error_code", "description", "parameters": {"retry_after",
"migrate_to_chat_id"}}` (#making-requests, #responseparameters). Classified on the HTTP
status plus `parameters`, as the API advises (error codes "are subject to change"):

- 429 (flood control): transient, `retry_after` from `parameters.retry_after` (seconds);
- 5xx (and 408, 425): transient;
- everything else is permanent, keeping Telegram's description: 400 "can't parse
  entities", "chat not found", "message is too long", a group migrated to a supergroup
  (`migrate_to_chat_id`: the chat_id setting must change), 401 (bad token), 403 (bot not
  a member, kicked, no rights), 404 (no such method: base_url or token wrong);
- an answer that is not the envelope (a proxy's HTML page): `broadcaster.channels.http`.

Idempotency: the Bot API has none (no key, no client message id). A timeout after the
request reached Telegram is ambiguous and the dispatcher's retry may post the message
twice; nothing here can prevent that.

Receipt: `remote_id` is the message_id; `url` the public link (`https://t.me/<username>/
<id>` for a chat with a username, `https://t.me/c/<id without -100>/<id>` for a private
supergroup or channel, none for other chats); `data` holds `chat_id` and `message_id` for
a later reply (`reply_parameters`) or `deleteMessage`.

Delete: `deleteMessage(chat_id, message_id)` answers `{"ok": true, "result": true}`.
"message to delete not found" counts as success (already gone); "message can't be
deleted" (older than 48 hours, or no rights) is permanent.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from broadcaster.channels.base import ChannelError, OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.http import BUSY_STATUSES, Answer, HttpAdapter, excerpt
from broadcaster.channels.settings import TelegramChannel
from broadcaster.models import Receipt

USER_AGENT = "broadcaster-telegram/1"
_NUMERIC = re.compile(r"^-?\d+$")
_GONE = "message to delete not found"


def escape_html(text: str) -> str:
    """Text safe inside Telegram's HTML mode: `&`, `<` and `>` as entities."""
    return html.escape(text, quote=False)


def message_text(message: OutgoingMessage) -> str:
    """The `text` parameter: the escaped title in bold, a blank line, the escaped text."""
    body = message.text
    if message.confirm_url and message.confirm_url not in body:
        body = f"{body.rstrip()}\n{message.confirm_url}"
    title = message.title.strip()
    if not title:
        return escape_html(body)
    return f"<b>{escape_html(title)}</b>\n\n{escape_html(body)}"


def chat_param(chat_id: str | int) -> str | int:
    """The configured chat as the API takes it: an integer id or `@username`.

    Settings read from the environment are strings; a numeric one is sent as a number.
    """
    if isinstance(chat_id, int):
        return chat_id
    chat = chat_id.strip()
    return int(chat) if _NUMERIC.match(chat) else chat


def public_url(chat: Mapping[str, Any], configured: str | int, message_id: int) -> str | None:
    """The message's t.me link, where the chat has one."""
    username = chat.get("username")
    if (not isinstance(username, str) or not username) and (
        isinstance(configured, str) and configured.startswith("@")
    ):
        username = configured[1:]
    if isinstance(username, str) and username:
        return f"https://t.me/{username}/{message_id}"
    chat_id = chat.get("id", configured)
    text = str(chat_id)
    if text.startswith("-100") and text[4:].isdigit():  # supergroups and channels
        return f"https://t.me/c/{text[4:]}/{message_id}"
    return None


class TelegramAdapter(HttpAdapter[TelegramChannel]):
    """One bot and one chat (channels/<id>.yaml with `type: telegram`)."""

    service = "telegram"
    busy_statuses = BUSY_STATUSES

    can_thread: bool = True  # reply_parameters.message_id = the incident's first post
    can_delete: bool = True  # deleteMessage, within 48 hours of posting

    def setup(self) -> None:
        self._chat = chat_param(self._config.chat_id)
        self._base = f"{self._config.base_url.rstrip('/')}/bot{self._config.bot_token}"

    def request_body(self, message: OutgoingMessage) -> dict[str, Any]:
        """The sendMessage parameters for this message."""
        body: dict[str, Any] = {
            "chat_id": self._chat,
            "text": message_text(message),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        parent = _message_id(message.reply_to) if message.reply_to is not None else None
        if parent is not None:
            body["reply_parameters"] = {"message_id": parent, "allow_sending_without_reply": True}
        return body

    async def send(self, message: OutgoingMessage) -> Receipt:
        result = await self._call("sendMessage", self.request_body(message))
        if not isinstance(result, dict):
            raise PermanentError(f"{self._service}: sendMessage answered without a Message")
        message_id = result.get("message_id")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise PermanentError(f"{self._service}: sendMessage answered without a message_id")
        found = result.get("chat")
        chat: dict[str, Any] = found if isinstance(found, dict) else {}
        chat_id = chat.get("id", self._chat)
        if message_id == 0:
            # Scheduled by Telegram and not yet usable (Message.message_id): nothing to
            # link to, reply under or delete.
            return Receipt(remote_id=None, url=None, data={"chat_id": chat_id})
        return Receipt(
            remote_id=str(message_id),
            url=public_url(chat, self._chat, message_id),
            data={"chat_id": chat_id, "message_id": message_id},
        )

    async def delete(self, receipt: Receipt) -> None:
        message_id = _message_id(receipt)
        if message_id is None:
            raise PermanentError(f"{self._service}: the receipt has no message id to delete")
        chat_id = receipt.data.get("chat_id", self._chat)
        try:
            await self._call("deleteMessage", {"chat_id": chat_id, "message_id": message_id})
        except PermanentError as exc:
            if _GONE in exc.message.lower():
                return  # deleted already (by us or an admin): what a retraction wants
            raise

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        """One Bot API method; its `result` on success, else TransientError/PermanentError."""
        body = json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        answer = await self.request(
            "POST",
            f"{self._base}/{method}",
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        try:
            return self._result(answer)
        except ChannelError as exc:
            raise self.scrub(exc) from None

    def _result(self, answer: Answer) -> Any:
        envelope = answer.data
        if not isinstance(envelope, dict) or not isinstance(envelope.get("ok"), bool):
            self.check(answer)  # raises unless 2xx
            raise PermanentError(f"{self._service}: not a Bot API answer: {excerpt(answer.body)}")
        status = answer.status
        if envelope["ok"] and answer.ok:
            return envelope.get("result")
        description = envelope.get("description")
        said = description if isinstance(description, str) and description else excerpt(answer.body)
        message = f"{self._service}: HTTP {status}: {said}"
        parameters = envelope.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        retry_after = parameters.get("retry_after")
        wait = float(retry_after) if isinstance(retry_after, int | float) else None
        if self.is_transient(status) or wait is not None:
            raise TransientError(message, retry_after=wait)
        migrated = parameters.get("migrate_to_chat_id")
        if migrated is not None:
            message += f" (the group is now chat {migrated}: change chat_id)"
        raise PermanentError(message)

    def secrets(self) -> tuple[tuple[str, str], ...]:
        # The bot token is part of every request's URL.
        return ((self._config.bot_token, "<bot_token>"),)


def _message_id(receipt: Receipt) -> int | None:
    found = receipt.data.get("message_id")
    if isinstance(found, int) and not isinstance(found, bool):
        return found
    if receipt.remote_id is not None and _NUMERIC.match(receipt.remote_id):
        return int(receipt.remote_id)
    return None
