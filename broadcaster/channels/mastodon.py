"""Mastodon: statuses of one account through the REST API (contract section 5, `type: mastodon`).

    POST {base_url}/api/v1/statuses
    Authorization: Bearer <access token>            (scope write:statuses)
    Idempotency-Key: <message.idempotency_key>
    Content-Type: application/x-www-form-urlencoded
    status=...&visibility=public&language=de[&in_reply_to_id=109...]

answers `200` with a Status entity (`id`, `url`, `uri`, ...), and
`DELETE {base_url}/api/v1/statuses/:id` answers `200` with the deleted Status
(docs.joinmastodon.org/methods/statuses/, repo mastodon/documentation
`content/en/methods/statuses.md`). The body is form data as documented; the text goes
as it is: a status is plain text, which Mastodon escapes itself when it renders the HTML
`content`, so `<12> & Co` needs no escaping here.

Idempotency: Mastodon keeps an Idempotency-Key for one hour per account and answers a
repeat with the original status instead of posting again (PostStatusService
`with_idempotency`), so a retry after a timeout or a 5xx is safe. A repeat that arrives
while the first is still being processed cannot take the key's lock and gets 503.

Threading: a later stage replies to the incident's first status (`in_reply_to_id`). A
reply to a status that is gone is `404 {"error": "The post you are trying to reply to
does not appear to exist."}` (StatusesController#set_thread): permanent.

Answers (docs.joinmastodon.org/entities/Error/, config/initializers/rack_attack.rb):
errors are JSON `{"error": "..."}` (OAuth errors may add `error_description`).

- 429 (`{"error": "Too many requests"}`): transient. Mastodon sends no Retry-After: the
  wait is `X-RateLimit-Reset` (an ISO 8601 time with microseconds, e.g.
  `2026-11-23T10:25:00.019685Z`) minus now. Deletes have their own limit of 30 per
  30 minutes per account, so a mass retraction meets it;
- 5xx (500, 502, 503 "temporary problem", 504) and 408/425: transient;
- 401 (token invalid), 403 (account disabled, unconfirmed, unapproved, or the token lacks
  the scope), 422 (validation, e.g. "Text character limit of 500 exceeded") and 404 (the
  reply's parent is gone, or a wrong base_url): permanent, keeping Mastodon's message.

Delete: `404 {"error": "Record not found"}` means the status is gone already, which a
retraction counts as success.

Receipt: `remote_id` is the status id, `url` its HTML permalink, `data`
`{"status_id": id, "uri": ActivityPub id}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from broadcaster.channels.base import OutgoingMessage, PermanentError
from broadcaster.channels.http import Answer, HttpAdapter, excerpt, retry_after_seconds
from broadcaster.channels.settings import MastodonChannel
from broadcaster.models import Receipt

USER_AGENT = "broadcaster-mastodon/1"
STATUSES_PATH = "/api/v1/statuses"


def reset_wait(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds until Mastodon's rate limit resets: `X-RateLimit-Reset` minus now.

    The header is an ISO 8601 time (Ruby `iso8601(6)`, rack_attack.rb); a time in the past
    means 0. Without a usable one, a Retry-After (from a proxy in front) is taken instead.
    """
    value = headers.get("X-RateLimit-Reset", "").strip()
    if value:
        try:
            reset = datetime.fromisoformat(value)
        except ValueError:
            reset = None
        if reset is not None:
            if reset.tzinfo is None:
                reset = reset.replace(tzinfo=UTC)
            now = now or datetime.now(UTC)
            return max(0.0, (reset - now).total_seconds())
    return retry_after_seconds(headers.get("Retry-After"))


class MastodonAdapter(HttpAdapter[MastodonChannel]):
    """One Mastodon account (channels/<id>.yaml with `type: mastodon`)."""

    service = "mastodon"
    redirect_fix = "fix base_url"

    can_thread: bool = True  # in_reply_to_id = the incident's first status
    can_delete: bool = True  # DELETE /api/v1/statuses/:id

    def setup(self) -> None:
        self._base = self._config.base_url.rstrip("/")

    def form(self, message: OutgoingMessage) -> dict[str, str]:
        """The form fields posted for this message."""
        fields = {
            "status": message.text,
            "visibility": self._config.visibility,
            "language": message.language,
        }
        parent = _status_id(message.reply_to) if message.reply_to is not None else None
        if parent is not None:
            fields["in_reply_to_id"] = parent
        return fields

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Authorization": f"Bearer {self._config.access_token}",
        }
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    async def send(self, message: OutgoingMessage) -> Receipt:
        form = self.form(message)
        answer = await self._request(
            "POST", self._base + STATUSES_PATH, form, message.idempotency_key
        )
        if answer.status == 404 and "in_reply_to_id" in form:
            raise PermanentError(
                f"{self._service}: HTTP 404: {self.describe(answer)} "
                f"(the status {form['in_reply_to_id']} to reply to is gone)"
            )
        self.check(answer)
        data = answer.fields
        found = data.get("id")
        if not isinstance(found, str | int) or isinstance(found, bool) or not str(found):
            raise PermanentError(
                f"{self._service}: no status id in the answer: {excerpt(answer.body)}"
            )
        status_id = str(found)
        url, uri = data.get("url"), data.get("uri")
        receipt_data: dict[str, Any] = {"status_id": status_id}
        if isinstance(uri, str) and uri:
            receipt_data["uri"] = uri
        return Receipt(
            remote_id=status_id,
            url=url if isinstance(url, str) and url else None,
            data=receipt_data,
        )

    async def delete(self, receipt: Receipt) -> None:
        status_id = _status_id(receipt)
        if status_id is None:
            raise PermanentError(f"{self._service}: the receipt has no status id to delete")
        url = f"{self._base}{STATUSES_PATH}/{quote(status_id, safe='')}"
        answer = await self._request("DELETE", url)
        if answer.status == 404:
            return  # "Record not found": deleted already, which is what a retraction wants
        self.check(answer)

    async def _request(
        self,
        method: Literal["POST", "DELETE"],
        url: str,
        form: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Answer:
        return await self.request(method, url, data=form, headers=self.headers(idempotency_key))

    def wait(self, answer: Answer) -> float | None:
        if answer.status == 429:
            return reset_wait(answer.headers)
        return super().wait(answer)

    def describe(self, answer: Answer) -> str:
        """Mastodon's `error` (with an OAuth `error_description`), else the start of the body."""
        data = answer.data
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            text = str(data["error"])
            description = data.get("error_description")
            if isinstance(description, str) and description and description != text:
                text += f": {description}"
            return text
        return excerpt(answer.body) or "(no body)"


def _status_id(receipt: Receipt) -> str | None:
    """The status id an earlier receipt names."""
    found = receipt.data.get("status_id") or receipt.remote_id
    return str(found) if isinstance(found, str | int) and str(found) else None
