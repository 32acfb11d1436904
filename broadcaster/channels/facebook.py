"""Facebook: posts on one Page through the Graph API (contract section 5, `type: facebook`).

    POST {base_url}/{page_id}/feed              (base_url carries the version: .../v21.0)
    Content-Type: application/x-www-form-urlencoded
    message=<text>&access_token=<page access token>

answers `{"id": "{page-id}_{post-id}"}` (developers.facebook.com/docs/pages-api/posts).
The token is a Page access token; it travels in the form body (and in the query string
of a DELETE, which has no body), never in an error message.

Threading: Pages have no threaded posts, so a later stage of an incident becomes a
comment by the Page under the incident's first post: `POST /{post-id}/comments` with
`message` (needs pages_manage_engagement), answering `{"id": "<comment-id>"}`. A
*retraction* is posted to the feed instead: it is followed by deleting the original,
and deleting a post deletes its comments, the correction with them.

Delete: `DELETE /{id}?access_token=...` answers `{"success": true}`. An object that is
gone answers error code 100 ("Unsupported delete request. Object with ID ... does not
exist"): a retraction counts that as success.

Errors are `{"error": {"message", "type", "code", "error_subcode", "error_user_title",
"error_user_msg", "fbtrace_id", "is_transient"?}}` and are classified by `code`, not by
the HTTP status: throttling often arrives as 400 or 403
(developers.facebook.com/docs/graph-api/guides/error-handling and .../overview/rate-limiting):

- transient: 1 (unknown, maybe downtime), 2 (service), 4 (app request limit), 17 (user
  request limit), 32 (Page request limit), 341 (app limit reached), 613 (custom rate
  limit), 80001 (Pages business-use-case limit); with `retry_after` from the
  `X-Business-Use-Case-Usage` header's `estimated_time_to_regain_access` (minutes) when
  it is there and above zero;
- permanent: 3 (capability), 10 and 200-299 (permission), 190 (token expired or
  invalid), 368 (temporarily blocked for policy: a person must look), 506 (duplicate
  post: Facebook refuses the same text twice in a row; it may also mean that an earlier,
  ambiguous attempt was posted after all), 100 (invalid parameter) outside a delete;
- any other code: transient when the error says `is_transient: true` or the status is
  5xx (or 408, 425, 429), else permanent;
- no Graph error object: `broadcaster.channels.http` (5xx transient, other 4xx permanent).

Idempotency: the Graph API has none. A timeout after the request reached Facebook is
ambiguous; the retry then posts twice or, with the same text, gets the 506 above.

Text: `message.text`, unchanged: Page posts are plain text (no markup to escape).

Photo posts (`media: card`): the first post of an incident, and a retraction's
correction, go as a photo of the share-pic card (broadcaster/sharepic.py, served at
`{http.public_url}/media/{alert_id}/{channel_id}.jpg`, which Facebook fetches):
`POST /{page_id}/photos` with `url` and `caption` (the text) answers `{"id":
"<photo-id>", "post_id": "{page-id}_{post-id}"}` (developers.facebook.com/docs/
graph-api/reference/page/photos). The receipt's post is `post_id`, so later stages
comment under it as under a text post; a delete removes the photo (and its post and
comments with it).

Receipt: `remote_id` is the post id (`{page}_{post}`) or the comment id, `url`
`https://www.facebook.com/{id}`, `data` `{"post_id": <the post>}` and, for a comment,
`"comment_id"`; a later comment goes under `post_id`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import aiohttp

from broadcaster.channels.base import ChannelError, OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.http import (
    BUSY_STATUSES,
    DEFAULT_TIMEOUT,
    Answer,
    ConfigT,
    HttpAdapter,
    excerpt,
)
from broadcaster.channels.settings import FacebookChannel
from broadcaster.models import Receipt
from broadcaster.sharepic import card_url

USER_AGENT = "broadcaster-facebook/1"
USAGE_HEADER = "X-Business-Use-Case-Usage"
TRANSIENT_CODES: frozenset[int] = frozenset({1, 2, 4, 17, 32, 341, 613, 80001})
PERMANENT_CODES: frozenset[int] = frozenset({3, 10, 100, 190, 368, 506, *range(200, 300)})
DUPLICATE = 506
INVALID_PARAMETER = 100
_GRAPH_ID = re.compile(r"^\d+(?:_\d+)?$")


def usage_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds until access returns, from `X-Business-Use-Case-Usage`.

    The header is `{"<business-object-id>": [{"type": "pages", "call_count": 100, ...,
    "estimated_time_to_regain_access": <minutes>}]}`; the longest wait in it counts.
    """
    raw = headers.get(USAGE_HEADER)
    if not raw:
        return None
    try:
        usage = json.loads(raw)
    except ValueError:
        return None
    minutes: list[float] = []
    for entries in usage.values() if isinstance(usage, dict) else []:
        for entry in entries if isinstance(entries, list) else []:
            value = (
                entry.get("estimated_time_to_regain_access") if isinstance(entry, dict) else None
            )
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                minutes.append(float(value))
    return max(minutes) * 60 if minutes else None


class GraphAdapter(HttpAdapter[ConfigT]):
    """What the Graph API's adapters share (Facebook, Instagram): its error object and
    its usage header."""

    def graph_error(self, answer: Answer, doing: str | None = None) -> dict[str, Any] | None:
        """The answer's Graph error object. None when it has none: then an answer that is
        not 2xx raises as `check` does, and a 2xx one must be JSON (`answer.data`)."""
        data = answer.data
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            return error
        self.check(answer, doing=doing)  # raises unless 2xx
        if data is None:
            raise PermanentError(f"{self._service}: not a Graph API answer: {excerpt(answer.body)}")
        return None

    def wait(self, answer: Answer) -> float | None:
        found = usage_wait(answer.headers)
        return found if found is not None else super().wait(answer)


class FacebookAdapter(GraphAdapter[FacebookChannel]):
    """One Facebook Page (channels/<id>.yaml with `type: facebook`)."""

    service = "facebook"
    busy_statuses = BUSY_STATUSES  # an answer without a Graph error object

    can_thread: bool = True  # a comment by the Page under the incident's first post
    can_delete: bool = True  # DELETE /{id}

    def __init__(
        self,
        channel_id: str,
        config: FacebookChannel,
        session: aiohttp.ClientSession,
        *,
        public_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.public_url = public_url  # where Facebook fetches the card (`media: card`)
        super().__init__(channel_id, config, session, timeout=timeout)

    def setup(self) -> None:
        self._base = self._config.base_url.rstrip("/")

    async def send(self, message: OutgoingMessage) -> Receipt:
        parent = _post_id(message.reply_to) if message.reply_to is not None else None
        if message.kind == "retraction":
            parent = None  # the original is deleted next, and its comments with it
        token = self._config.page_access_token
        if not parent and self._config.media == "card" and message.kind != "refusal":
            return await self._photo(message)
        path = f"/{parent}/comments" if parent else f"/{self._config.page_id}/feed"
        form = {"message": message.text, "access_token": token}
        answer = await self._request("POST", path, form=form)
        found = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(found, str) or not found:
            raise PermanentError(f"{self._service}: the Graph API answered without an id")
        data: dict[str, Any] = {"post_id": parent or found}
        if parent:
            data["comment_id"] = found
        return Receipt(remote_id=found, url=f"https://www.facebook.com/{found}", data=data)

    async def _photo(self, message: OutgoingMessage) -> Receipt:
        """A photo post of the share-pic card, the text as its caption."""
        if self.public_url is None:
            raise PermanentError(f"{self._service}: media: card needs the daemon's public_url")
        form = {
            "url": card_url(self.public_url, message.alert_id, self.channel_id),
            "caption": message.text,
            "access_token": self._config.page_access_token,
        }
        answer = await self._request("POST", f"/{self._config.page_id}/photos", form=form)
        photo = answer.get("id") if isinstance(answer, dict) else None
        post = answer.get("post_id") if isinstance(answer, dict) else None
        if not isinstance(photo, str) or not photo:
            raise PermanentError(f"{self._service}: the Graph API answered without a photo id")
        post = post if isinstance(post, str) and post else f"{self._config.page_id}_{photo}"
        return Receipt(
            remote_id=post,
            url=f"https://www.facebook.com/{post}",
            data={"post_id": post, "photo_id": photo},
        )

    async def delete(self, receipt: Receipt) -> None:
        # A photo post goes with its photo; any other post by its own id.
        photo = receipt.data.get("photo_id")
        target = photo if isinstance(photo, str) and photo else receipt.remote_id
        if not target or not _GRAPH_ID.match(target):
            raise PermanentError(f"{self._service}: the receipt has no post id to delete")
        answer = await self._request(
            "DELETE", f"/{target}", query={"access_token": self._config.page_access_token}
        )
        if answer is _GONE:
            return
        if not isinstance(answer, dict) or answer.get("success") is not True:
            raise PermanentError(
                f"{self._service}: delete of {target} not confirmed: {json.dumps(answer)[:200]}"
            )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        """One Graph API call: the JSON answer on success, else TransientError/PermanentError."""
        answer = await self.request(
            method,
            self._base + path,
            data=form,
            params=query,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        try:
            return self._classify(answer, deleting=method == "DELETE")
        except ChannelError as exc:
            raise self.scrub(exc) from None

    def _classify(self, answer: Answer, *, deleting: bool) -> Any:
        error = self.graph_error(answer)
        if error is None:
            return answer.data
        status = answer.status
        code = graph_int(error.get("code"))
        subcode = graph_int(error.get("error_subcode"))
        said = (
            error.get("message") if isinstance(error.get("message"), str) else excerpt(answer.body)
        )
        label = f"code {code}" + (f"/{subcode}" if subcode is not None else "")
        text = f"{self._service}: HTTP {status}, {label}: {said}"
        if deleting and (code == INVALID_PARAMETER or "does not exist" in str(said).lower()):
            return _GONE  # nothing left to delete
        if code == DUPLICATE:
            text += " (an earlier attempt may have been posted)"
        if code in TRANSIENT_CODES:
            raise TransientError(text, retry_after=self.wait(answer))
        if code in PERMANENT_CODES:
            raise PermanentError(text)
        if error.get("is_transient") is True or self.is_transient(status) or status >= 500:
            raise TransientError(text, retry_after=self.wait(answer))
        raise PermanentError(text)

    def secrets(self) -> tuple[tuple[str, str], ...]:
        return ((self._config.page_access_token, "<page_access_token>"),)


_GONE = object()  # a delete found nothing to delete


def _post_id(receipt: Receipt) -> str | None:
    """The Page post a comment goes under: the receipt's post, or the post it comments on."""
    found = receipt.data.get("post_id", receipt.remote_id)
    return found if isinstance(found, str) and _GRAPH_ID.match(found) else None


def graph_int(value: Any) -> int | None:
    """A number the Graph API may send as a string (codes are negative at times: -2)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None
