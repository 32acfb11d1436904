"""Facebook with `media: card`: a photo post of the share-pic card, which the fake Graph
API fetches itself; threading and deletion work on it as on a text post."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from broadcaster.channels.base import OutgoingMessage, PermanentError
from broadcaster.channels.facebook import FacebookAdapter
from broadcaster.channels.settings import FacebookChannel
from broadcaster.sharepic import card_url
from tests.fakes.cards import CardServer, serving_cards
from tests.fakes.facebook import PAGE_ID, PAGE_TOKEN, FakeGraph

MakeMessage = Callable[..., OutgoingMessage]


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph.start() as server:
        yield server


@pytest.fixture
async def cards() -> AsyncIterator[CardServer]:
    async with serving_cards() as server:
        yield server


def facebook(
    session: aiohttp.ClientSession, fake: FakeGraph, public_url: str | None
) -> FacebookAdapter:
    config = FacebookChannel(
        type="facebook",
        base_url=f"{fake.base_url}/v21.0",
        page_id=PAGE_ID,
        page_access_token=PAGE_TOKEN,
        media="card",
    )
    return FacebookAdapter("fb", config, session, public_url=public_url)


async def test_a_photo_post_of_the_card_with_the_text_as_caption(
    session: aiohttp.ClientSession,
    fake: FakeGraph,
    cards: CardServer,
    message: MakeMessage,
) -> None:
    receipt = await facebook(session, fake, cards.base_url).send(message(text="Fenster zu."))

    [request] = fake.requests
    assert request.path == f"/v21.0/{PAGE_ID}/photos"
    assert request.params["url"] == card_url(cards.base_url, "FW-DUS-2026-000123", "fb")
    assert request.params["caption"] == "Fenster zu."
    [post] = fake.posts
    assert post["image"] == cards.body  # Facebook fetched the card
    assert receipt.remote_id == post["id"]
    assert receipt.data == {"post_id": post["id"], "photo_id": post["photo_id"]}


async def test_a_later_stage_comments_under_the_photo_post_and_delete_removes_it(
    session: aiohttp.ClientSession,
    fake: FakeGraph,
    cards: CardServer,
    message: MakeMessage,
) -> None:
    adapter = facebook(session, fake, cards.base_url)
    first = await adapter.send(message())
    update = await adapter.send(message(stage="update", text="Lage stabil", reply_to=first))
    correction = await adapter.send(message(kind="retraction", text="Fehlalarm", reply_to=first))

    [comment] = fake.comments
    assert comment["parent"] == first.remote_id
    assert update.data["comment_id"] == comment["id"]
    assert len(fake.posts) == 2  # the correction is a photo post of its own card
    assert fake.posts[1]["photo_id"] == correction.data["photo_id"]
    await adapter.delete(first)
    assert first.remote_id is not None
    assert correction.remote_id is not None
    assert fake.live(first.remote_id) is None  # the post went with its photo
    assert fake.live(comment["id"]) is None
    assert fake.live(correction.remote_id) is not None
    await adapter.delete(first)  # gone already: counts as done


async def test_a_card_facebook_cannot_fetch_is_refused(
    session: aiohttp.ClientSession,
    fake: FakeGraph,
    cards: CardServer,
    message: MakeMessage,
) -> None:
    cards.status = 404
    with pytest.raises(PermanentError, match="code 324"):
        await facebook(session, fake, cards.base_url).send(message())
    assert fake.posts == []
