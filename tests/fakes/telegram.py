"""The Telegram Bot API as far as the Telegram adapter uses it, on a free 127.0.0.1 port.

    async with FakeTelegram.start() as fake:
        config = TelegramChannel(type="telegram", base_url=fake.base_url,
                                 bot_token=fake.token, chat_id=fake.channel.username_ref)
        fake.rate_limit(retry_after=7)        # the next answer: 429 with parameters.retry_after
        ...
        assert fake.sent[0]["text"] == "Großbrand"

What it does with each request, in this order (shapes from core.telegram.org/bots/api,
#making-requests, #sendmessage, #deletemessage, #formatting-options, #responseparameters):

1. records it in `requests` (HTTP method, path, Bot API method, headers, body, parameters,
   time, and later the status it was answered with);
2. 404 `Not Found` unless the path is `/bot<token>/<method>`; 401 `Unauthorized` for
   another token; 404 `Not Found: method not found` for a method other than sendMessage
   and deleteMessage (method names are case-insensitive, as Telegram's);
3. waits while `hold()` is in force, then `delay(seconds)`;
4. a scripted answer, if one is queued with `script(...)` / `rate_limit(...)` (taken
   verbatim: an outage or flood control in front of the bot's chat);
5. parameters from the query string and a JSON body (`Content-Type: application/json`);
6. sendMessage: 400 `chat_id is empty` / `chat not found` (chats are known by id and by
   `@username`), 403 `bot is not a member of the channel chat` after `kick()`, 400
   `message text is empty`, 400 `unsupported parse_mode`; with parse_mode HTML the text is
   parsed as Telegram does: only the supported tags, only the entities `&lt; &gt; &amp;
   &quot;` and numeric ones, every other `<`, `>` or `&` is 400 `can't parse entities:
   ...`; 400 `message is too long` over 4096 UTF-16 units after parsing; a reply to a
   message that does not exist is 400 `message to be replied not found` unless
   `allow_sending_without_reply`, which posts it standalone; otherwise 200 with
   `{"ok": true, "result": <Message>}` (message_id counting up per chat, `chat`, `date`,
   the parsed `text` with its `entities` in UTF-16 offsets, `reply_to_message`,
   `link_preview_options`), appended to `sent`;
7. deleteMessage: `{"ok": true, "result": true}` for a message of the chat;
   400 `message to delete not found` for one that never existed or is gone; 400
   `message can't be deleted` for one made `too_old(...)` (over 48 hours).

Errors are `{"ok": false, "error_code": N, "description": "...", "parameters"?: {...}}` with
the HTTP status equal to error_code. The Bot API has no idempotency key: the same
sendMessage twice is two messages, here too.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy

from tests.fakes.base import FakeServer, serving

TOKEN = "123456789:AAFake-Token_for-Tests"
MAX_LENGTH = 4096  # characters after entity parsing (counted here in UTF-16 units)
_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
_TAG = re.compile(
    r"<(?P<close>/?)(?P<name>[A-Za-z][A-Za-z0-9-]*)"
    r"(?P<attrs>(?:\s+[A-Za-z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*>"
)
_HREF = re.compile(r"href\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+))")
_ENTITY = re.compile(
    r"&(?:(?P<name>lt|gt|amp|quot)|#(?P<dec>\d{1,7})|#x(?P<hex>[0-9a-fA-F]{1,6}));"
)
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# HTML tags of #formatting-options and the entity type each makes.
_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",  # only <span class="tg-spoiler">
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}


@dataclass
class RecordedRequest:
    method: str  # the HTTP method
    path: str  # the token is in it, as sent
    api_method: str | None  # sendMessage, deleteMessage, ... as written in the path
    headers: CIMultiDictProxy[str]
    body: bytes
    params: dict[str, Any]  # query string and JSON body, merged
    at: datetime
    status: int | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        return web.Response(status=self.status, body=self.body, headers=dict(self.headers))


@dataclass(frozen=True)
class Chat:
    id: int
    type: str = "channel"
    title: str = "Feuerwehr Düsseldorf – Warnungen"
    username: str | None = None

    @property
    def username_ref(self) -> str:
        """`@username`, as a chat_id setting names a public channel."""
        assert self.username is not None
        return f"@{self.username}"

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "title": self.title, "type": self.type}
        if self.username is not None:
            data["username"] = self.username
        return data


CHANNEL = Chat(id=-1001234567890, username="fw_duesseldorf_warn")
PRIVATE_CHANNEL = Chat(id=-1009876543210, title="Lagedienst intern")


class ParseError(ValueError):
    pass


def _json(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Answer:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Answer(status, body, {"Content-Type": "application/json", **(headers or {})})


def ok(result: Any) -> Answer:
    return _json(200, {"ok": True, "result": result})


def telegram_error(
    error_code: int, description: str, *, retry_after: int | None = None, **parameters: Any
) -> Answer:
    """The Bot API's error envelope; the HTTP status is the error_code, as Telegram sends."""
    data: dict[str, Any] = {"ok": False, "error_code": error_code, "description": description}
    if retry_after is not None:
        parameters["retry_after"] = retry_after
    if parameters:
        data["parameters"] = parameters
    return _json(error_code, data)


_DEFAULT_ERRORS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests: retry after 5",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def utf16_length(text: str) -> int:
    """UTF-16 code units, the unit of the Bot API's text length and entity offsets: two
    for a character outside the Basic Multilingual Plane (a surrogate pair)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML mode: the plain text and its entities (UTF-16 offsets), or ParseError."""
    plain: list[str] = []
    position = 0  # UTF-16 units of plain text so far
    open_tags: list[tuple[str, int, dict[str, Any]]] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(text):
        char = text[i]
        at = len(text[:i].encode("utf-8"))
        if char == "<":
            tag = _TAG.match(text, i)
            if tag is None:
                raise ParseError(f"Unsupported start tag at byte offset {at}")
            name = tag["name"].lower()
            if name not in _TAG_TYPES:
                raise ParseError(f'Unsupported start tag "{name}" at byte offset {at}')
            if tag["close"]:
                if not open_tags:
                    raise ParseError(f'Unexpected end tag "{name}" at byte offset {at}')
                expected, start, attributes = open_tags.pop()
                if expected != name:
                    raise ParseError(
                        f'Unmatched end tag at byte offset {at}, expected "</{expected}>", '
                        f'found "</{name}>"'
                    )
                if position > start:
                    entity = {"offset": start, "length": position - start}
                    entities.append({"type": _TAG_TYPES[name], **entity, **attributes})
            else:
                extra = {}
                if name == "a":
                    href = _HREF.search(tag["attrs"])
                    if href is None:
                        raise ParseError(f"Can't find href of the link at byte offset {at}")
                    extra["url"] = next(group for group in href.groups() if group is not None)
                if name == "span" and "tg-spoiler" not in tag["attrs"]:
                    raise ParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
                open_tags.append((name, position, extra))
            i = tag.end()
            continue
        if char == "&":
            entity_match = _ENTITY.match(text, i)
            if entity_match is None:
                raise ParseError(f"Unsupported HTML entity at byte offset {at}")
            if entity_match["name"]:
                decoded = _NAMED[entity_match["name"]]
            else:
                number = (
                    int(entity_match["dec"])
                    if entity_match["dec"]
                    else int(entity_match["hex"], 16)
                )
                decoded = chr(number) if 0 < number < 0x110000 else "\ufffd"
            plain.append(decoded)
            position += utf16_length(decoded)
            i = entity_match.end()
            continue
        if char == ">":
            raise ParseError(f'Unexpected ">" at byte offset {at}')
        plain.append(char)
        position += utf16_length(char)
        i += 1
    if open_tags:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(plain), entities


class FakeTelegram(FakeServer):
    def __init__(self, *, token: str, chats: list[Chat]) -> None:
        super().__init__()
        self.token = token
        self.chats = {chat.id: chat for chat in chats}
        self.channel = chats[0]
        self.sent: list[dict[str, Any]] = []  # every Message posted, in order
        self.deleted: set[tuple[int, int]] = set()  # (chat id, message id)
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._next_id: dict[int, int] = {}
        self._old: set[tuple[int, int]] = set()
        self._kicked: set[int] = set()
        self._script: deque[Answer] = deque()

    @classmethod
    @asynccontextmanager
    async def start(
        cls, *, token: str = TOKEN, chats: list[Chat] | None = None
    ) -> AsyncIterator[FakeTelegram]:
        fake = cls(token=token, chats=chats or [CHANNEL, PRIVATE_CHANNEL])
        async with serving(fake):
            yield fake

    # -- scripting ---------------------------------------------------------------------

    def script(self, *answers: Answer | int) -> None:
        """Answer the next requests with these, one each, then behave normally again.

        A bare status becomes the Bot API error envelope for it."""
        for answer in answers:
            if isinstance(answer, int):
                answer = telegram_error(answer, _DEFAULT_ERRORS.get(answer, f"Error {answer}"))
            self._script.append(answer)

    def rate_limit(self, retry_after: int = 5, times: int = 1) -> None:
        """Flood control: 429 with `parameters.retry_after`, as Telegram sends it."""
        for _ in range(times):
            self.script(
                telegram_error(
                    429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
                )
            )

    def kick(self, chat: Chat | None = None) -> None:
        """The bot is no longer a member (admin) of the chat."""
        self._kicked.add((chat or self.channel).id)

    def too_old(self, message_id: int, chat: Chat | None = None) -> None:
        """The message was sent more than 48 hours ago: it can no longer be deleted."""
        self._old.add(((chat or self.channel).id, message_id))

    def delete_by_admin(self, message_id: int, chat: Chat | None = None) -> None:
        """Someone removed the message in the app."""
        key = ((chat or self.channel).id, message_id)
        self._messages.pop(key, None)
        self.deleted.add(key)

    def message(self, message_id: int, chat: Chat | None = None) -> dict[str, Any] | None:
        """A message that exists in the chat now."""
        return self._messages.get(((chat or self.channel).id, message_id))

    # -- serving -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        params: dict[str, Any] = dict(request.query)
        if body and request.content_type == "application/json":
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                params.update(parsed)
        path = _PATH.match(request.path)
        record = RecordedRequest(
            request.method,
            request.path,
            path["method"] if path else None,
            request.headers,
            body,
            params,
            datetime.now(UTC),
        )
        self.requests.append(record)
        await self._notify()
        try:
            response = (await self._answer(record)).response()
            record.status = response.status
            return response
        finally:
            await self._notify()

    async def _answer(self, record: RecordedRequest) -> Answer:
        path = _PATH.match(record.path)
        if path is None:
            return telegram_error(404, "Not Found")
        if path["token"] != self.token:
            return telegram_error(401, "Unauthorized")
        handler = {"sendmessage": self._send, "deletemessage": self._delete}.get(
            path["method"].lower()
        )
        if handler is None:
            return telegram_error(404, "Not Found: method not found")
        await self._gate.wait()
        if self._delay:
            await asyncio.sleep(self._delay)  # the fake's latency, not test synchronisation
        if self._script:
            return self._script.popleft()
        return handler(record.params)

    def _chat(self, params: dict[str, Any]) -> Chat | Answer:
        ref = params.get("chat_id")
        if ref is None or ref == "":
            return telegram_error(400, "Bad Request: chat_id is empty")
        chat: Chat | None = None
        if isinstance(ref, str) and ref.startswith("@"):
            wanted = ref[1:].lower()  # usernames are case-insensitive
            chat = next(
                (c for c in self.chats.values() if (c.username or "").lower() == wanted), None
            )
        elif isinstance(ref, int) or (isinstance(ref, str) and re.fullmatch(r"-?\d+", ref)):
            chat = self.chats.get(int(ref))
        if chat is None:
            return telegram_error(400, "Bad Request: chat not found")
        if chat.id in self._kicked:
            return telegram_error(403, "Forbidden: bot is not a member of the channel chat")
        return chat

    def _send(self, params: dict[str, Any]) -> Answer:
        chat = self._chat(params)
        if isinstance(chat, Answer):
            return chat
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return telegram_error(400, "Bad Request: message text is empty")
        mode = params.get("parse_mode")
        entities: list[dict[str, Any]] = []
        if mode is not None and str(mode).lower() == "html":
            try:
                text, entities = parse_html(text)
            except ParseError as exc:
                return telegram_error(400, f"Bad Request: can't parse entities: {exc}")
        elif mode not in (None, ""):
            return telegram_error(400, f"Bad Request: unsupported parse_mode {mode!r}")
        if not text.strip():
            return telegram_error(400, "Bad Request: message text is empty")
        if utf16_length(text) > MAX_LENGTH:
            return telegram_error(400, "Bad Request: message is too long")
        reply_to: dict[str, Any] | None = None
        reply = params.get("reply_parameters")
        if reply is not None:
            if not isinstance(reply, dict) or not isinstance(reply.get("message_id"), int):
                return telegram_error(400, "Bad Request: invalid reply parameters specified")
            reply_to = self._messages.get((chat.id, reply["message_id"]))
            if reply_to is None and not reply.get("allow_sending_without_reply"):
                return telegram_error(400, "Bad Request: message to be replied not found")
        message_id = self._next_id.get(chat.id, 1)
        self._next_id[chat.id] = message_id + 1
        message: dict[str, Any] = {
            "message_id": message_id,
            "sender_chat": chat.as_json(),
            "chat": chat.as_json(),
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            message["entities"] = entities
        if isinstance(params.get("link_preview_options"), dict):
            message["link_preview_options"] = params["link_preview_options"]
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        self._messages[(chat.id, message_id)] = message
        self.sent.append(message)
        return ok(message)

    def _delete(self, params: dict[str, Any]) -> Answer:
        chat = self._chat(params)
        if isinstance(chat, Answer):
            return chat
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            return telegram_error(400, "Bad Request: message identifier is not specified")
        key = (chat.id, message_id)
        if key not in self._messages:
            return telegram_error(400, "Bad Request: message to delete not found")
        if key in self._old:
            return telegram_error(400, "Bad Request: message can't be deleted")
        del self._messages[key]
        self.deleted.add(key)
        return ok(True)
