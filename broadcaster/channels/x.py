"""X (Twitter): posts of one account through the X API v2 (contract section 5, `type: x`).

    POST {base_url}/2/tweets
    Authorization: OAuth oauth_consumer_key="...", oauth_token="...",
                   oauth_signature_method="HMAC-SHA1", oauth_signature="...", ...
    Content-Type: application/json
    {"text": "...", "reply": {"in_reply_to_tweet_id": "1445880548472328192"}}

answers `201 {"data": {"id": "1445880548472328192", "text": "..."}}`, and
`DELETE {base_url}/2/tweets/:id` answers `{"data": {"deleted": true}}`
(docs.x.com/x-api/posts/manage-tweets/quickstart, docs.x.com/x-api/posts/delete-post).

Auth is OAuth 1.0a user context (the four keys of the channel's settings; the tokens do
not expire). The Authorization header is made by `oauthlib.oauth1.Client` (HMAC-SHA1,
RFC 5849). Only the method, the URL and the query and `oauth_*` parameters are signed:
a JSON body is not part of the signature base string (RFC 5849 section 3.4.1.3.1 takes
body parameters only from a form-encoded body), so the body is left out of the signing.
A fresh nonce and timestamp per request, so a retry is signed anew.

Threading: a later stage replies to the incident's first post
(`reply.in_reply_to_tweet_id`); replying to one's own posts is allowed.

Answers (docs.x.com/x-api/fundamentals/rate-limits and the v2 problem types): errors are
problem JSON `{"title", "detail", "type", "status"}` or carry an `errors` array.

- 429: transient; the wait is until `x-rate-limit-reset` (epoch seconds; X sends no
  Retry-After), or until the 24-hour user or app limit resets when that one is spent
  (`x-user-limit-24hour-*`, `x-app-limit-24hour-*`). A 429 of type `.../usage-capped`
  (the app's monthly or spend cap) is permanent: it lasts far beyond any retry, and
  someone has to raise the cap;
- 5xx (and 408, 425): transient;
- 400 (invalid), 401 (signature or keys wrong), 403 (forbidden; including "duplicate
  content", which can also mean that an earlier, ambiguous attempt was posted, and
  replies to a post that is gone): permanent, keeping X's detail.

Idempotency: the X API has none. A timeout after the request reached X is ambiguous: the
retry posts twice or, with the same text, gets the 403 duplicate-content refusal.

Delete: a 404 (or a `resource-not-found` problem) means the post is gone already, which
a retraction counts as success.

Receipt: `remote_id` is the post id, `url` `https://x.com/i/status/{id}` (works without
the account name), `data` `{"tweet_id": id}`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any, Literal

from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_AUTH_HEADER, Client

from broadcaster.channels.base import OutgoingMessage, PermanentError
from broadcaster.channels.http import Answer, HttpAdapter, excerpt, retry_after_seconds
from broadcaster.channels.settings import XChannel
from broadcaster.models import Receipt

USER_AGENT = "broadcaster-x/1"
_POST_ID = re.compile(r"^\d{1,19}$")  # the API's pattern for a post id
_NOT_FOUND = "resource-not-found"
_USAGE_CAPPED = "usage-capped"
_DUPLICATE = "duplicate content"
_GONE = object()  # a delete found nothing to delete


def reset_wait(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds until the spent rate limit resets (X sends no Retry-After).

    The 15-minute window's `x-rate-limit-reset`, unless a 24-hour user or app limit is the
    one spent (its `-remaining` is 0): then that one's reset. All are epoch seconds.
    """
    now = time.time() if now is None else now
    resets: list[float] = []
    for prefix in ("x-user-limit-24hour", "x-app-limit-24hour"):
        if headers.get(f"{prefix}-remaining", "").strip() == "0":
            reset = _epoch(headers.get(f"{prefix}-reset"))
            if reset is not None:
                resets.append(reset)
    if not resets:
        reset = _epoch(headers.get("x-rate-limit-reset"))
        if reset is None:
            return retry_after_seconds(headers.get("Retry-After"))
        resets.append(reset)
    return max(0.0, max(resets) - now)


class XAdapter(HttpAdapter[XChannel]):
    """One X account (channels/<id>.yaml with `type: x`)."""

    service = "x"
    redirect_fix = "fix base_url"

    can_thread: bool = True  # reply.in_reply_to_tweet_id = the incident's first post
    can_delete: bool = True  # DELETE /2/tweets/:id

    def setup(self) -> None:
        self._base = self._config.base_url.rstrip("/")
        self._oauth = Client(
            self._config.api_key,
            client_secret=self._config.api_secret,
            resource_owner_key=self._config.access_token,
            resource_owner_secret=self._config.access_secret,
            signature_method=SIGNATURE_HMAC_SHA1,
            signature_type=SIGNATURE_TYPE_AUTH_HEADER,
        )

    def request_body(self, message: OutgoingMessage) -> dict[str, Any]:
        """The JSON object posted for this message."""
        body: dict[str, Any] = {"text": message.text}
        parent = _post_id(message.reply_to) if message.reply_to is not None else None
        if parent is not None:
            body["reply"] = {"in_reply_to_tweet_id": parent}
        return body

    def authorization(self, method: Literal["POST", "DELETE"], url: str) -> str:
        """The OAuth 1.0a header for one request (nonce and timestamp fresh each time)."""
        _, headers, _ = self._oauth.sign(url, http_method=method)
        return str(headers["Authorization"])

    async def send(self, message: OutgoingMessage) -> Receipt:
        body = json.dumps(self.request_body(message), ensure_ascii=False).encode("utf-8")
        answer = await self._request("POST", f"{self._base}/2/tweets", body)
        data = answer.get("data") if isinstance(answer, dict) else None
        found = data.get("id") if isinstance(data, dict) else None
        if not isinstance(found, str) or not _POST_ID.match(found):
            raise PermanentError(f"{self._service}: no post id in the answer: {_problem(answer)}")
        return Receipt(
            remote_id=found, url=f"https://x.com/i/status/{found}", data={"tweet_id": found}
        )

    async def delete(self, receipt: Receipt) -> None:
        target = _post_id(receipt)
        if target is None:
            raise PermanentError(f"{self._service}: the receipt has no post id to delete")
        answer = await self._request("DELETE", f"{self._base}/2/tweets/{target}", None)
        if answer is _GONE:
            return
        data = answer.get("data") if isinstance(answer, dict) else None
        if isinstance(data, dict) and data.get("deleted") is True:
            return
        if any(kind.endswith(_NOT_FOUND) for kind in _types(answer)):
            return  # a 200 with only a not-found problem: gone already
        raise PermanentError(
            f"{self._service}: delete of {target} not confirmed: {_problem(answer)}"
        )

    async def _request(
        self, method: Literal["POST", "DELETE"], url: str, body: bytes | None
    ) -> Any:
        """One signed call: the JSON answer on 2xx, else TransientError/PermanentError."""
        try:
            authorization = self.authorization(method, url)
        except ValueError as exc:  # oauthlib cannot sign a URL without scheme and host
            raise PermanentError(f"{self._service}: invalid URL {url}: {exc}") from exc
        headers = {"Authorization": authorization, "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = "application/json"
        answer = await self.request(method, url, data=body, headers=headers)
        data = answer.data
        if not answer.ok:
            if method == "DELETE" and answer.status == 404:
                return _GONE
            if answer.status == 429 and any(k.endswith(_USAGE_CAPPED) for k in _types(data)):
                said = self.describe(answer)
                raise PermanentError(
                    f"{self._service}: HTTP 429"
                    + (f": {said}" if said else "")
                    + " (the app's usage cap is spent)"
                )
            self.check(answer)  # raises
        return data if data is not None else {}

    def wait(self, answer: Answer) -> float | None:
        if answer.status == 429:
            return reset_wait(answer.headers)
        return super().wait(answer)

    def describe(self, answer: Answer) -> str:
        return _problem(answer.data) or excerpt(answer.body)

    def note(self, answer: Answer, message: str) -> str:
        if _DUPLICATE in message.lower():
            return " (an earlier attempt may have been posted)"
        return ""


def _post_id(receipt: Receipt) -> str | None:
    found = receipt.data.get("tweet_id", receipt.remote_id)
    return found if isinstance(found, str) and _POST_ID.match(found) else None


def _epoch(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def _types(data: Any) -> list[str]:
    """Every problem `type` in an answer, top level and in `errors`."""
    if not isinstance(data, dict):
        return []
    found = [data["type"]] if isinstance(data.get("type"), str) else []
    errors = data.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            found.append(error["type"])
    return found


def _problem(data: Any) -> str:
    """X's words for what went wrong: `title: detail` and the first `errors` entry."""
    if not isinstance(data, dict):
        return ""
    parts = [str(data[key]) for key in ("title", "detail") if isinstance(data.get(key), str | int)]
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        said = first.get("message") or first.get("detail") or first.get("title")
        if isinstance(said, str) and said not in parts:
            parts.append(said)
    if len(parts) >= 2 and parts[0] == parts[1]:  # {"title": "Too Many Requests", "detail": same}
        parts.pop(1)
    return ": ".join(parts)
