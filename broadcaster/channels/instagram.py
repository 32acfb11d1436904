"""Instagram: posts the share-pic card to a professional account through the Graph API's
content publishing (contract section 5, `type: instagram`).

An Instagram post needs an image at a public URL: the card (broadcaster/sharepic.py),
which the daemon serves at `{http.public_url}/media/{alert_id}/{channel_id}.jpg` and Meta
fetches. One post takes these requests (developers.facebook.com/docs/instagram-platform/
content-publishing; base_url carries the version, .../v21.0):

1. `GET /{ig-user-id}/content_publishing_limit?fields=quota_usage,config` answers
   `{"data": [{"quota_usage": 3, "config": {"quota_total": 50, "quota_duration": 86400}}]}`:
   posts made through the API in the last 24 h, of how many. The channel keeps `reserve`
   of them for updates and corrections: a new warning (no earlier post of its incident
   here, not a correction) is refused (PermanentError, saying so) when it would take one
   of those. An update or a correction may use them. "N of M posts left in 24 h" goes
   into the receipt's `detail`, shown with the delivery.
2. `POST /{ig-user-id}/media` with `image_url`, `caption` and `alt_text` answers
   `{"id": "<container-id>"}`. Meta fetches the image now.
3. `GET /{container-id}?fields=status_code,status`: `IN_PROGRESS`, `FINISHED`, `ERROR`,
   `EXPIRED` (not published within 24 h) or `PUBLISHED`.
4. `POST /{ig-user-id}/media_publish` with `creation_id=<container-id>` answers
   `{"id": "<ig-media-id>"}`.
5. `GET /{ig-media-id}?fields=permalink`: the post's address.

Adapters never sleep: while the container is `IN_PROGRESS` the attempt ends in a
TransientError (busy: Meta is up, only not done) whose `partial` Receipt keeps the
container id, and the next attempt goes on with that container instead of making a
second one. The container id is also saved through `OutgoingMessage.checkpoint` as soon
as Meta answers, and the media id once published.

Never twice: a container can be published once. After a lost answer (a timeout, a
crash) the next attempt asks the container's status first: `PUBLISHED` means the post
exists, and it is looked up in `GET /{ig-user-id}/media` by its caption (the delivery
counts as delivered even when it is not found there, without a link); `FINISHED` means
it was not published, and it is published now. `EXPIRED`, or error subcode 2207020,
drops the container: the next attempt makes a new one.

Captions: `{title}\\n\\n{text}`, at most 2 200 characters and 5 hashtags (Meta allows
30; newer guidance and our design limit is 5). A longer caption is refused before any
request; `broadcaster validate` and the confirm page warn about it first (kinds.py).

Later stages and corrections: a new post with its own card (a comment under an old post
reaches nobody's feed), and under the incident's first post a comment that points to it
(`POST /{ig-media-id}/comments` with `message`), so who finds the old post finds the
update. The comment is best effort: its failure is kept in the receipt, the post stands.

Delete: the API cannot delete a post (CHANNELS.md section 7; the IG Media reference lists
reading only). A retraction posts the correction and records a manual task for a person:
"delete post <permalink> by hand" (retraction.py).

Errors are Graph error objects `{"error": {"message", "type", "code", "error_subcode",
"is_transient", "fbtrace_id", "error_user_msg"?}}`, classified by subcode, then code
(developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/error-codes):

- transient: subcodes 2207001 (server error, code -1), 2207003 (download timeout, code
  -2), 2207027 (media not ready, code 9007); codes -2, -1, 1, 2, 4, 17, 32, 341, 613,
  80002 (Instagram's business-use-case limit); `is_transient: true`; 5xx; with the wait
  from `X-Business-Use-Case-Usage` when it says one;
- container expired: subcode 2207020: a new container on the next attempt;
- permanent: subcodes 2207004 (image too large), 2207005 (format), 2207009 (aspect
  ratio), 2207042 (the account's publishing limit is reached), 2207050 (the account is
  restricted), 2207052 (media fetch failed: is `http.public_url` reachable from the
  internet?); codes 3, 10, 24, 25, 100, 190 (token), 200-299 (permission), 368, 9004;
  any other 4xx.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import aiohttp

from broadcaster.channels.base import ChannelError, OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.facebook import GraphAdapter, graph_int
from broadcaster.channels.http import (
    BUSY_STATUSES,
    DEFAULT_TIMEOUT,
    Answer,
    excerpt,
)
from broadcaster.channels.settings import InstagramChannel
from broadcaster.limits import Measurement
from broadcaster.models import Receipt
from broadcaster.sharepic import card_url

USER_AGENT = "broadcaster-instagram/1"
CAPTION_LIMIT = 2200  # characters
HASHTAG_LIMIT = 5
COMMENT_LIMIT = 2200
DEFAULT_QUOTA = 50  # posts per 24 h when Meta's answer lacks quota_total
MEDIA_PAGE = 25  # recent posts read when a published container's post is looked up
_HASHTAG = re.compile(r"(?<![\w#])#\w+")

TRANSIENT_SUBCODES = frozenset({2207001, 2207003, 2207027})
PERMANENT_SUBCODES = frozenset({2207004, 2207005, 2207009, 2207042, 2207050, 2207052})
EXPIRED_SUBCODE = 2207020
TRANSIENT_CODES = frozenset({-2, -1, 1, 2, 4, 17, 32, 341, 613, 80002})
PERMANENT_CODES = frozenset({3, 10, 24, 25, 100, 190, 368, 9004, *range(200, 300)})
FETCH_HINT = (
    " (Meta could not fetch the card: http.public_url must be reachable from the internet, "
    "and a robots.txt must not block /media/)"
)


def hashtags(text: str) -> int:
    return len(_HASHTAG.findall(text))


def measure_caption(text: str, limit: int | None) -> Measurement:
    """A caption as Instagram counts it: characters against the limit, and at most 5
    hashtags (over them, the hashtags are what is measured)."""
    tags = hashtags(text)
    if tags > HASHTAG_LIMIT:
        return Measurement(tags, HASHTAG_LIMIT, "hashtags")
    return Measurement(len(text), limit, "characters", f"{tags} of {HASHTAG_LIMIT} hashtags")


def caption(message: OutgoingMessage) -> str:
    return f"{message.title}\n\n{message.text}"


def alt_text(message: OutgoingMessage) -> str:
    """What the card shows, for people who cannot see it."""
    return f"{message.title}. {message.text}"[:1000]


class InstagramAdapter(GraphAdapter[InstagramChannel]):
    """One Instagram professional account (channels/<id>.yaml with `type: instagram`)."""

    service = "instagram"
    busy_statuses = BUSY_STATUSES

    can_thread: bool = True  # a later stage knows the first post: it comments under it
    can_delete: bool = False  # the API cannot delete: a person does (a manual task)

    def __init__(
        self,
        channel_id: str,
        config: InstagramChannel,
        session: aiohttp.ClientSession,
        *,
        public_url: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.public_url = public_url  # where Meta fetches the card
        super().__init__(channel_id, config, session, timeout=timeout)

    def setup(self) -> None:
        self._base = self._config.base_url.rstrip("/")
        self._user = self._config.ig_user_id

    async def send(self, message: OutgoingMessage) -> Receipt:
        text = caption(message)
        measured = measure_caption(text, CAPTION_LIMIT)
        if not measured.fits:
            raise PermanentError(
                f"{self._service}: the caption has {measured}; Instagram takes at most "
                f"{CAPTION_LIMIT} characters and this channel {HASHTAG_LIMIT} hashtags"
            )
        state: dict[str, Any] = dict(message.previous.data) if message.previous else {}
        try:
            return await self._post(message, text, state)
        except ChannelError as exc:
            if isinstance(exc, _Expired):
                _forget_container(state)  # the next attempt makes a new one
            partial = Receipt(data=state) if state else None
            if isinstance(exc, TransientError):
                raise TransientError(
                    exc.message, exc.retry_after, partial=partial, busy=exc.busy
                ) from None
            raise PermanentError(exc.message, partial=partial) from None

    async def delete(self, receipt: Receipt) -> None:
        where = receipt.url or receipt.remote_id or "the post"
        raise PermanentError(
            f"{self._service}: the Instagram API cannot delete a post; delete {where} by hand"
        )

    # -- the steps -----------------------------------------------------------------------

    async def _post(self, message: OutgoingMessage, text: str, state: dict[str, Any]) -> Receipt:
        """Go on from where an earlier attempt stood (`state`, kept in the partial receipt)."""
        if "media_id" not in state:
            await self._container(message, text, state)
            if "media_id" not in state:
                await self._publish(message, text, state)
        if "permalink" not in state:
            state["permalink"] = await self._permalink(state, state["media_id"])
        if message.reply_to is not None and "comment" not in state:
            await self._comment(message, state)
        data = dict(state)
        if note := data.get("note"):
            data["detail"] = "; ".join(x for x in (data.get("detail"), note) if x)
        return Receipt(remote_id=state["media_id"], url=state.get("permalink"), data=data)

    async def _container(self, message: OutgoingMessage, text: str, state: dict[str, Any]) -> None:
        """A container that is ready to publish (or published already) in `state`."""
        for _ in range(2):  # an expired container is replaced once per attempt
            if "container_id" not in state:
                await self._check_quota(message, state)
                answer = await self._graph(
                    "POST",
                    f"/{self._user}/media",
                    form={
                        "image_url": card_url(self.public_url, message.alert_id, self.channel_id),
                        "caption": text,
                        "alt_text": alt_text(message),
                    },
                    doing="creating the container",
                )
                container = _text(answer.get("id")) if isinstance(answer, dict) else None
                if container is None:
                    raise PermanentError(f"{self._service}: no container id in Meta's answer")
                state["container_id"] = container
                state["container_at"] = datetime.now(UTC).isoformat(timespec="seconds")
                await self._save(message, state)
            status, said = await self._status(state["container_id"])
            if status == "EXPIRED":
                _forget_container(state)
                continue
            if status == "IN_PROGRESS":
                raise TransientError(
                    f"{self._service}: container {state['container_id']} is still in progress",
                    busy=True,
                )
            if status == "PUBLISHED":
                await self._find_published(text, state)
            elif status != "FINISHED":
                _forget_container(state)
                raise PermanentError(
                    f"{self._service}: Meta could not process the card ({status}"
                    + (f": {said}" if said else "")
                    + ")"
                )
            return
        raise TransientError(f"{self._service}: the container expired twice", busy=True)

    async def _status(self, container: str) -> tuple[str, str | None]:
        """The container's status_code, and Meta's words on it (`status`)."""
        answer = await self._graph(
            "GET",
            f"/{container}",
            query={"fields": "status_code,status"},
            doing="reading the container's status",
        )
        data = answer if isinstance(answer, dict) else {}
        return _text(data.get("status_code")) or "UNKNOWN", _text(data.get("status"))

    async def _publish(self, message: OutgoingMessage, text: str, state: dict[str, Any]) -> None:
        answer = await self._graph(
            "POST",
            f"/{self._user}/media_publish",
            form={"creation_id": state["container_id"]},
            doing="publishing",
        )
        media = _text(answer.get("id")) if isinstance(answer, dict) else None
        if media is None:
            raise PermanentError(f"{self._service}: no media id in Meta's answer to publish")
        state["media_id"] = media
        await self._save(message, state)

    async def _find_published(self, text: str, state: dict[str, Any]) -> None:
        """The post of a container published by an attempt whose answer was lost. It is
        out whatever this finds: a failed look-up only leaves it without a link."""
        try:
            answer = await self._graph(
                "GET",
                f"/{self._user}/media",
                query={"fields": "id,caption,permalink,timestamp", "limit": str(MEDIA_PAGE)},
                doing="looking up the published post",
            )
        except ChannelError as exc:
            answer = None
            state["note"] = f"published; its post was not looked up: {exc.message}"
        items = answer.get("data") if isinstance(answer, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("caption") == text and _text(item.get("id")):
                state["media_id"] = item["id"]
                if permalink := _text(item.get("permalink")):
                    state["permalink"] = permalink
                return
        # Published, but not among the latest posts: delivered all the same, no link.
        state["media_id"] = None
        state["permalink"] = None
        state.setdefault("note", "published by an earlier attempt; its post was not found")

    async def _permalink(self, state: dict[str, Any], media: str | None) -> str | None:
        """The post's address. The post is out: a failure leaves it without a link (and
        the delivery delivered), never failed."""
        if media is None:
            return None
        try:
            answer = await self._graph(
                "GET", f"/{media}", query={"fields": "permalink"}, doing="reading the permalink"
            )
        except ChannelError as exc:
            state["note"] = f"published; its permalink was not read: {exc.message}"
            return None
        return _text(answer.get("permalink")) if isinstance(answer, dict) else None

    async def _comment(self, message: OutgoingMessage, state: dict[str, Any]) -> None:
        """Under the incident's first post: the update, and where it is."""
        parent = message.reply_to.remote_id if message.reply_to is not None else None
        if not parent or parent == state.get("media_id"):
            return
        link = state.get("permalink")
        body = message.text if not link else f"{message.text}\n\n{link}"
        if len(body) > COMMENT_LIMIT:
            body = body[: COMMENT_LIMIT - 1] + "…"
        try:
            answer = await self._graph(
                "POST", f"/{parent}/comments", form={"message": body}, doing="commenting"
            )
        except ChannelError as exc:
            state["comment"] = {"error": exc.message}
            return
        state["comment"] = {"id": _text(answer.get("id")) if isinstance(answer, dict) else None}

    async def _check_quota(self, message: OutgoingMessage, state: dict[str, Any]) -> None:
        """Refuse a new warning that would take a post kept for updates and corrections."""
        answer = await self._graph(
            "GET",
            f"/{self._user}/content_publishing_limit",
            query={"fields": "quota_usage,config"},
            doing="reading the publishing limit",
        )
        rows = answer.get("data") if isinstance(answer, dict) else None
        row = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else {}
        used = graph_int(row.get("quota_usage")) or 0
        found = row.get("config")
        config = found if isinstance(found, dict) else {}
        total = graph_int(config.get("quota_total")) or DEFAULT_QUOTA
        left = max(0, total - used)
        reserve = self._config.reserve
        follow_up = message.reply_to is not None or message.kind == "retraction"
        if left == 0 or (not follow_up and left <= reserve):
            kept = f", {reserve} of them kept for updates and corrections" if reserve else ""
            raise PermanentError(
                f"{self._service}: only {left} of {total} posts left in 24 h{kept}: "
                f"{'this update' if follow_up else 'this new warning'} was not posted"
            )
        state["quota"] = {"used": used + 1, "total": total, "reserve": reserve}
        state["detail"] = (
            f"{left - 1} of {total} posts left in 24 h ({reserve} kept for updates and corrections)"
        )

    async def _save(self, message: OutgoingMessage, state: dict[str, Any]) -> None:
        """Keep what Meta answered before the next request (a crash must not lose it)."""
        if message.checkpoint is not None:
            await message.checkpoint(Receipt(data=dict(state)))

    # -- Graph calls ---------------------------------------------------------------------

    async def _graph(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        doing: str,
    ) -> Any:
        answer = await self.request(
            method,
            self._base + path,
            data=form,
            params=query,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
                "Authorization": f"Bearer {self._config.access_token}",
            },
        )
        try:
            return self._classify(answer, doing)
        except ChannelError as exc:
            raise self.scrub(exc) from None

    def _classify(self, answer: Answer, doing: str) -> Any:
        error = self.graph_error(answer, doing)
        if error is None:
            return answer.data
        code = graph_int(error.get("code"))
        subcode = graph_int(error.get("error_subcode"))
        said = error.get("error_user_msg") or error.get("message") or excerpt(answer.body)
        label = f"code {code}" + (f"/{subcode}" if subcode is not None else "")
        text = f"{self._service}: {doing} refused: HTTP {answer.status}, {label}: {said}"
        if subcode == EXPIRED_SUBCODE:
            raise _Expired(text)
        if subcode in TRANSIENT_SUBCODES:
            raise TransientError(text, retry_after=self.wait(answer))
        if subcode in PERMANENT_SUBCODES:
            raise PermanentError(text + (FETCH_HINT if subcode == 2207052 else ""))
        if code in TRANSIENT_CODES:
            raise TransientError(text, retry_after=self.wait(answer))
        if code in PERMANENT_CODES:
            raise PermanentError(text)
        if error.get("is_transient") is True or answer.status >= 500:
            raise TransientError(text, retry_after=self.wait(answer))
        raise PermanentError(text)

    def secrets(self) -> tuple[tuple[str, str], ...]:
        return ((self._config.access_token, "<access_token>"),)


class _Expired(TransientError):
    """Meta says the container expired (2207020): the next attempt makes a new one."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=0.0, busy=True)


def _forget_container(state: dict[str, Any]) -> None:
    for key in ("container_id", "container_at"):
        state.pop(key, None)


def _text(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None
