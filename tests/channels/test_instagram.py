"""The Instagram adapter against a fake Graph API that fetches the card over real sockets,
as Meta's crawler does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.instagram import InstagramAdapter, hashtags, measure_caption
from broadcaster.channels.kinds import KINDS
from broadcaster.channels.settings import InstagramChannel
from broadcaster.models import Receipt
from broadcaster.sharepic import card_url
from tests.fakes.cards import CardServer, serving_cards
from tests.fakes.instagram import IG_USER_ID, TOKEN, FakeInstagram, graph_error
from tests.servers import free_port

MakeMessage = Callable[..., OutgoingMessage]


@pytest.fixture
async def cards() -> AsyncIterator[CardServer]:
    async with serving_cards() as server:
        yield server


@pytest.fixture
async def fake() -> AsyncIterator[FakeInstagram]:
    async with FakeInstagram.start() as server:
        yield server


def instagram(
    session: aiohttp.ClientSession,
    fake: FakeInstagram,
    public_url: str,
    *,
    token: str = TOKEN,
    reserve: int = 10,
    timeout: float = 10.0,
) -> InstagramAdapter:
    config = InstagramChannel(
        type="instagram",
        base_url=f"{fake.base_url}/v21.0",
        ig_user_id=IG_USER_ID,
        access_token=token,
        reserve=reserve,
    )
    return InstagramAdapter("insta", config, session, public_url=public_url, timeout=timeout)


async def until_posted(adapter: InstagramAdapter, message: OutgoingMessage) -> list[Any]:
    """Attempts as the dispatcher makes them, each from the last one's partial receipt;
    the outcomes (errors, then the receipt)."""
    outcomes: list[Any] = []
    previous = message.previous
    for _ in range(10):
        try:
            receipt = await adapter.send(_with(message, previous=previous))
        except TransientError as exc:
            outcomes.append(exc)
            previous = exc.partial or previous
            continue
        outcomes.append(receipt)
        return outcomes
    raise AssertionError(f"never posted: {outcomes}")


def _with(message: OutgoingMessage, **changes: Any) -> OutgoingMessage:
    from dataclasses import replace

    return replace(message, **changes)


# -- a post ----------------------------------------------------------------------------------


async def test_a_post_is_quota_container_status_publish_and_permalink(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    adapter = instagram(session, fake, cards.base_url)
    receipt = await adapter.send(message(mode="live", title="Großbrand", text="Fenster zu."))

    steps = [(r.method, r.path.removeprefix("/v21.0")) for r in fake.requests]
    [container] = fake.containers
    [post] = fake.media
    assert steps == [
        ("GET", f"/{IG_USER_ID}/content_publishing_limit"),
        ("POST", f"/{IG_USER_ID}/media"),
        ("GET", f"/{container}"),
        ("POST", f"/{IG_USER_ID}/media_publish"),
        ("GET", f"/{post['id']}"),
    ]
    create = fake.requests[1].params
    assert create["image_url"] == card_url(cards.base_url, "FW-DUS-2026-000123", "insta")
    assert create["caption"] == "Großbrand\n\nFenster zu."
    assert create["alt_text"] == "Großbrand. Fenster zu."
    assert fake.requests[3].params["creation_id"] == container
    # Meta fetched the card itself, and got a JPEG.
    assert [f.refused for f in fake.fetches] == [None]
    assert cards.paths == ["/media/FW-DUS-2026-000123/insta.jpg"]
    assert fake.images[container] == cards.body
    assert receipt.remote_id == post["id"]
    assert receipt.url == post["permalink"]
    assert (
        receipt.data["detail"]
        == "49 of 50 posts left in 24 h (10 kept for updates and corrections)"
    )


async def test_the_token_travels_in_the_authorization_header_only(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    await instagram(session, fake, cards.base_url).send(message())

    for request in fake.requests:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert "access_token" not in request.params
    with pytest.raises(PermanentError, match="code 190") as refused:
        await instagram(session, fake, cards.base_url, token="wrong-token-0000").send(message())
    assert "wrong-token-0000" not in refused.value.message


async def test_an_update_is_a_post_of_its_own_with_a_comment_under_the_first(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    adapter = instagram(session, fake, cards.base_url)
    first = await adapter.send(message())
    update = await adapter.send(
        message(alert_id="FW-2", stage="update", text="Lage stabil.", reply_to=first)
    )

    assert len(fake.media) == 2
    [comment] = fake.comments
    assert comment["media"] == first.remote_id
    assert comment["message"] == f"Lage stabil.\n\n{update.url}"
    assert update.data["comment"] == {"id": comment["id"]}
    assert update.url != first.url


async def test_a_failed_comment_leaves_the_post_standing(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    adapter = instagram(session, fake, cards.base_url)
    gone = Receipt(remote_id="17999999999999999", url="https://www.instagram.com/p/gone/")
    update = await adapter.send(message(stage="update", reply_to=gone))

    assert len(fake.media) == 1
    assert "code 100" in update.data["comment"]["error"]


# -- captions ---------------------------------------------------------------------------------


async def test_a_caption_over_2200_characters_is_refused_before_any_request(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    adapter = instagram(session, fake, cards.base_url)
    title = "Warnung"
    fits = "a" * (2200 - len(title) - 2)
    await adapter.send(message(title=title, text=fits))
    with pytest.raises(PermanentError, match="2201/2200 characters"):
        await adapter.send(message(title=title, text=fits + "b"))

    assert len(fake.requests_to("POST", "/media")) == 1


async def test_more_than_five_hashtags_are_refused_five_go(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    adapter = instagram(session, fake, cards.base_url)
    five = "Rauch #Düsseldorf #Feuer #Warnung #Flingern #NINA"
    await adapter.send(message(text=five))
    with pytest.raises(PermanentError, match="6/5 hashtags"):
        await adapter.send(message(text=five + " #mehr"))

    assert len(fake.media) == 1
    assert hashtags("C# and #1 and a#b and ##x") == 1  # only words that start with #
    assert measure_caption("x #a #b", 2200).detail == "2 of 5 hashtags"
    kind = KINDS["instagram"]
    assert not kind.measure_message("T", "a" * 2200).fits  # the title counts too
    assert not kind.measure_message("T", "#a #b #c #d #e #f").fits


# -- the quota -------------------------------------------------------------------------------


async def test_a_new_warning_is_refused_when_only_the_reserve_is_left(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    fake.used = 40  # 10 left: the reserve
    adapter = instagram(session, fake, cards.base_url, reserve=10)

    with pytest.raises(PermanentError) as refused:
        await adapter.send(message())
    assert refused.value.message == (
        "instagram insta: only 10 of 50 posts left in 24 h, 10 of them kept for updates "
        "and corrections: this new warning was not posted"
    )
    assert fake.containers == {}
    # A correction and an update may take the reserve.
    correction = await adapter.send(message(kind="retraction", retracts="FW-1"))
    update = await adapter.send(message(stage="update", reply_to=correction))
    assert len(fake.media) == 2
    assert correction.data["detail"].startswith("9 of 50 posts left in 24 h")
    assert update.data["detail"].startswith("8 of 50 posts left in 24 h")


async def test_with_no_post_left_even_a_correction_is_refused(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    fake.used = 50
    with pytest.raises(PermanentError, match="only 0 of 50 posts left in 24 h"):
        await instagram(session, fake, cards.base_url).send(message(kind="retraction"))
    assert fake.containers == {}


# -- containers ------------------------------------------------------------------------------


async def test_a_container_in_progress_is_polled_on_later_attempts_never_made_twice(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    fake.in_progress_polls = 2
    saved: list[Receipt] = []

    async def checkpoint(receipt: Receipt) -> None:
        saved.append(receipt)

    adapter = instagram(session, fake, cards.base_url)
    outcomes = await until_posted(adapter, message(checkpoint=checkpoint))

    *waits, receipt = outcomes
    assert len(waits) == 2
    assert all(w.busy and "still in progress" in w.message for w in waits)
    assert all(w.partial.data["container_id"] == receipt.data["container_id"] for w in waits)
    assert len(fake.containers) == 1
    assert len(fake.media) == 1
    assert len(fake.requests_to("GET", "/content_publishing_limit")) == 1
    # The container id was saved as soon as Meta gave it, then the media id.
    assert "container_id" in saved[0].data
    assert "media_id" not in saved[0].data
    assert saved[-1].data["media_id"] == receipt.remote_id


async def test_an_expired_container_is_made_anew(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    fake.in_progress_polls = 1
    adapter = instagram(session, fake, cards.base_url)
    with pytest.raises(TransientError) as waiting:
        await adapter.send(message())
    first = waiting.value.partial
    assert first is not None
    fake.expire(first.data["container_id"])

    outcomes = await until_posted(adapter, message(previous=first))

    receipt = outcomes[-1]
    assert len(fake.containers) == 2
    [post] = fake.media
    assert post["container"] != first.data["container_id"]
    assert receipt.data["container_id"] == post["container"]


async def test_publish_answering_2207020_makes_a_new_container_next_time(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    fake.fail_publish(
        -2, subcode=2207020, message="The media you are trying to access has expired."
    )
    adapter = instagram(session, fake, cards.base_url)

    outcomes = await until_posted(adapter, message())

    expired, receipt = outcomes
    assert isinstance(expired, TransientError)
    assert "2207020" in expired.message
    assert expired.partial is not None
    assert "container_id" not in expired.partial.data
    assert len(fake.containers) == 2
    assert receipt.data["container_id"] == fake.media[0]["container"]


async def test_a_lost_publish_answer_never_publishes_twice(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    fake.publish_delay = 3.0  # published at once, answered after the adapter gave up
    adapter = instagram(session, fake, cards.base_url, timeout=1.0)
    with pytest.raises(TransientError, match="no answer") as lost:
        await adapter.send(message())
    fake.publish_delay = 0.0

    receipt = await adapter.send(message(previous=lost.value.partial))

    [post] = fake.media
    assert len(fake.requests_to("POST", "/media_publish")) == 1
    assert receipt.remote_id == post["id"]
    assert receipt.url == post["permalink"]


async def test_a_container_meta_could_not_process_is_permanent(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    fake.in_progress_polls = 1
    adapter = instagram(session, fake, cards.base_url)
    with pytest.raises(TransientError) as waiting:
        await adapter.send(message())
    assert waiting.value.partial is not None
    fake.containers[waiting.value.partial.data["container_id"]]["status_code"] = "ERROR"

    with pytest.raises(PermanentError, match=r"could not process the card \(ERROR"):
        await adapter.send(message(previous=waiting.value.partial))
    assert fake.media == []


# -- the card as Meta fetches it ----------------------------------------------------------------


async def test_a_card_that_is_not_a_jpeg_is_refused(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    cards.body, cards.content_type = b"\x89PNG\r\n\x1a\n" + b"0" * 100, "image/png"
    with pytest.raises(PermanentError, match="code 9004/2207052") as refused:
        await instagram(session, fake, cards.base_url).send(message())
    assert "http.public_url must be reachable" in refused.value.message
    assert [f.refused for f in fake.fetches] == ["not a JPEG"]


async def test_an_unreachable_card_is_refused(
    session: aiohttp.ClientSession, fake: FakeInstagram, message: MakeMessage
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PermanentError, match="code 9004/2207052"):
        await instagram(session, fake, closed).send(message())
    assert fake.fetches[0].refused is not None
    assert fake.fetches[0].refused.startswith("unreachable")


async def test_a_card_that_answers_404_is_refused(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    cards.status = 404
    with pytest.raises(PermanentError, match="2207052"):
        await instagram(session, fake, cards.base_url).send(message())
    assert [f.refused for f in fake.fetches] == ["HTTP 404"]


async def test_a_card_over_8_mib_is_refused(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    cards.body = cards.body + b"\0" * (8 * 1024 * 1024)
    with pytest.raises(PermanentError, match="code 9004/2207004"):
        await instagram(session, fake, cards.base_url).send(message())


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "details", "transient"),
    [
        (-2, {"subcode": 2207003, "is_transient": True}, True),
        (-1, {"subcode": 2207001, "is_transient": True}, True),
        (9007, {"subcode": 2207027}, True),
        (2, {"is_transient": True, "status": 503}, True),
        (4, {}, True),
        (17, {}, True),
        (32, {}, True),
        (613, {}, True),
        (99999, {"is_transient": True}, True),
        (99999, {"status": 500}, True),
        (190, {}, False),
        (10, {}, False),
        (200, {"status": 403}, False),
        (9004, {"subcode": 2207004}, False),
        (9, {"subcode": 2207042}, False),
        (99999, {}, False),
    ],
)
async def test_errors_are_classified_by_subcode_then_code(
    session: aiohttp.ClientSession,
    fake: FakeInstagram,
    cards: CardServer,
    message: MakeMessage,
    code: int,
    details: dict[str, Any],
    transient: bool,
) -> None:
    fake.fail(code, **details)
    expected = TransientError if transient else PermanentError
    with pytest.raises(expected) as raised:
        await instagram(session, fake, cards.base_url).send(message())
    assert type(raised.value) is expected
    assert f"code {code}" in raised.value.message
    assert TOKEN not in raised.value.message


async def test_a_5xx_without_a_graph_error_is_transient(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    from tests.fakes.facebook import Answer

    fake.script(Answer(502, b"<html>Bad Gateway</html>"))
    with pytest.raises(TransientError, match="HTTP 502"):
        await instagram(session, fake, cards.base_url).send(message())


async def test_a_timeout_is_transient(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    fake.hold()
    with pytest.raises(TransientError, match=r"no answer within 0\.3s"):
        await instagram(session, fake, cards.base_url, timeout=0.3).send(message())
    fake.release()


async def test_instagram_cannot_delete_a_person_must(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    adapter = instagram(session, fake, cards.base_url)
    receipt = await adapter.send(message())

    assert adapter.can_delete is False
    assert KINDS["instagram"].capabilities.deleted_by_hand
    with pytest.raises(PermanentError, match=f"delete {receipt.url} by hand"):
        await adapter.delete(receipt)
    assert fake.requests_to("DELETE", "") == []


async def test_a_post_whose_permalink_cannot_be_read_is_delivered_without_a_link(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    adapter = instagram(session, fake, cards.base_url)
    fake.permalink_error = graph_error(100, subcode=33, message="Unsupported get request.")
    receipt = await adapter.send(message())

    [post] = fake.media
    assert receipt.remote_id == post["id"]
    assert receipt.url is None
    assert "its permalink was not read" in receipt.data["detail"]
    assert receipt.data["detail"].startswith("49 of 50 posts left")


async def test_a_published_post_not_found_again_is_delivered_without_an_id(
    session: aiohttp.ClientSession, fake: FakeInstagram, cards: CardServer, message: MakeMessage
) -> None:
    fake.publish_delay = 3.0
    adapter = instagram(session, fake, cards.base_url, timeout=1.0)
    with pytest.raises(TransientError) as lost:
        await adapter.send(message())
    fake.publish_delay = 0.0
    fake.media[0]["caption"] = "edited by hand on instagram.com"  # no longer ours to find

    receipt = await adapter.send(message(previous=lost.value.partial))

    assert len(fake.requests_to("POST", "/media_publish")) == 1
    assert receipt.remote_id is None
    assert receipt.url is None
    assert "its post was not found" in receipt.data["detail"]
