"""Channels with several recipients (SMS, e-mail): each recipient's outcome, across attempts.

A retry sends only to the recipients not yet reached, and the alert shows how many were.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from broadcaster.channels.base import ChannelError, PermanentError, TransientError
from broadcaster.models import Receipt, Recipients

_SHOWN_FAILURES = 3  # recipients named in an error message


@dataclass
class RecipientProgress:
    """Where a delivery to several recipients stands, across attempts.

    Kept in the Receipt's `data`:

        {"delivered_to": [recipient, ...],        # reached, in configured order
         "ids": {recipient: provider id},          # Message-ID / SMS sid of each reached
         "failed": {recipient: error},             # not reached (yet), with the reason
         "permanent": [recipient, ...]}            # refused for good: never tried again

    and in `recipients` as Recipients(total, delivered, failed = total - delivered).

    An attempt starts from `message.previous` (this delivery's partial Receipt) and tries
    only the recipients neither reached nor permanently refused. After it:

    - every recipient reached: the Receipt is returned;
    - else, if any recipient failed transiently on this attempt: TransientError (with the
      largest `retry_after` asked for), `partial` = the Receipt so far, and the next
      attempt sends only to those;
    - else (only permanent refusals are left): PermanentError with the same `partial`.
    """

    service: str
    recipients: list[str]
    ids: dict[str, str | None] = field(default_factory=dict)
    permanent: dict[str, str] = field(default_factory=dict)
    transient: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # adapter-specific, kept in data

    @classmethod
    def resume(
        cls, service: str, recipients: Iterable[str], previous: Receipt | None
    ) -> RecipientProgress:
        unique = list(dict.fromkeys(recipients))
        progress = cls(service, unique)
        if previous is None:
            return progress
        data = previous.data
        delivered = _strings(data.get("delivered_to"))
        ids = _mapping(data.get("ids"))
        failed = _mapping(data.get("failed"))
        for recipient in unique:
            if recipient in delivered:
                found = ids.get(recipient)
                progress.ids[recipient] = found if isinstance(found, str) else None
        for recipient in _strings(data.get("permanent")):
            if recipient in unique and recipient not in progress.ids:
                progress.permanent[recipient] = str(failed.get(recipient, "refused"))
        return progress

    def pending(self) -> list[str]:
        """Recipients this attempt should try."""
        return [r for r in self.recipients if r not in self.ids and r not in self.permanent]

    def delivered(self, recipient: str, remote_id: str | None) -> None:
        self.ids[recipient] = remote_id
        self.transient.pop(recipient, None)

    def failed(self, recipient: str, error: ChannelError) -> None:
        if isinstance(error, TransientError):
            self.transient[recipient] = error.message
            if error.retry_after is not None:
                self.retry_after = max(self.retry_after or 0.0, error.retry_after)
        else:
            self.permanent[recipient] = error.message

    def receipt(self) -> Receipt:
        reached = [r for r in self.recipients if r in self.ids]
        failed = {
            r: self.permanent.get(r) or self.transient.get(r) or "not attempted"
            for r in self.recipients
            if r not in self.ids
        }
        ids = {r: self.ids[r] for r in reached if self.ids[r] is not None}
        first = next(iter(ids.values()), None)
        return Receipt(
            remote_id=first,
            data={
                "delivered_to": reached,
                "ids": ids,
                "failed": failed,
                "permanent": [r for r in self.recipients if r in self.permanent],
                **self.extra,
            },
            recipients=Recipients(
                total=len(self.recipients),
                delivered=len(reached),
                failed=len(self.recipients) - len(reached),
            ),
        )

    def outcome(self) -> Receipt:
        """The Receipt when every recipient was reached; else raise (see the class)."""
        receipt = self.receipt()
        missing = [r for r in self.recipients if r not in self.ids]
        if not missing:
            return receipt
        text = (
            f"{self.service}: {len(missing)} of {len(self.recipients)} recipients "
            f"not reached: {_summary(receipt.data['failed'])}"
        )
        if self.transient:
            raise TransientError(text, self.retry_after, partial=receipt)
        raise PermanentError(text, partial=receipt)


def _summary(failed: Mapping[str, str]) -> str:
    """`error (a, b); other error (c)`: each error once, with (some of) its recipients."""
    by_error: dict[str, list[str]] = {}
    for recipient, error in failed.items():
        by_error.setdefault(error, []).append(recipient)
    parts = []
    for error, recipients in list(by_error.items())[:_SHOWN_FAILURES]:
        named = ", ".join(recipients[:_SHOWN_FAILURES])
        if len(recipients) > _SHOWN_FAILURES:
            named += f" and {len(recipients) - _SHOWN_FAILURES} more"
        parts.append(f"{error} ({named})")
    if len(by_error) > _SHOWN_FAILURES:
        parts.append(f"{len(by_error) - _SHOWN_FAILURES} more errors")
    return "; ".join(parts)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
