"""The Facebook Page adapter against a fake Graph API over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from multidict import CIMultiDict

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.facebook import FacebookAdapter, usage_wait
from broadcaster.channels.settings import FacebookChannel
from broadcaster.models import Receipt
from tests.fakes.facebook import PAGE_ID, PAGE_TOKEN, USAGE_HEADER, Answer, FakeGraph, usage
from tests.servers import free_port

MakeMessage = Callable[..., OutgoingMessage]
GERMAN = "Großbrand in Düsseldorf-Flingern, Ackerstraße <12> & Co: Fenster schließen!"


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph.start() as server:
        yield server


def facebook(
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    version: str = "v21.0",
    token: str = PAGE_TOKEN,
    timeout: float = 10.0,
) -> FacebookAdapter:
    config = FacebookChannel(
        type="facebook",
        base_url=f"{base_url}/{version}" if version else base_url,
        page_id=PAGE_ID,
        page_access_token=token,
    )
    return FacebookAdapter("fb", config, session, timeout=timeout)


# -- the request ---------------------------------------------------------------------------


async def test_posts_the_text_to_the_page_feed(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    await facebook(session, fake.base_url).send(message(text=GERMAN))

    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == f"/v21.0/{PAGE_ID}/feed"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body.decode("ascii"), strict_parsing=True) == {
        "message": [GERMAN],  # as written: Page posts are plain text, nothing to escape
        "access_token": [PAGE_TOKEN],
    }
    assert "access_token" not in request.path
    assert fake.posts[0]["message"] == GERMAN
    assert request.status == 200


@pytest.mark.parametrize("version", ["v19.0", "v23.0", ""])
async def test_any_version_prefix_is_served(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage, version: str
) -> None:
    receipt = await facebook(session, fake.base_url, version=version).send(message())

    assert receipt.remote_id is not None
    assert fake.requests[0].version == (version or None)


async def test_receipt_names_the_post(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    receipt = await facebook(session, fake.base_url).send(message())

    post_id = fake.posts[0]["id"]
    assert post_id.startswith(f"{PAGE_ID}_")
    assert receipt == Receipt(
        remote_id=post_id,
        url=f"https://www.facebook.com/{post_id}",
        data={"post_id": post_id},
    )


async def test_no_idempotency_but_the_same_text_twice_is_refused(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    adapter = facebook(session, fake.base_url)
    await adapter.send(message())

    with pytest.raises(PermanentError, match=r"code 506: \(#506\) Duplicate status message") as e:
        await adapter.send(message())

    assert "earlier attempt may have been posted" in e.value.message
    assert len(fake.posts) == 1


# -- threading -----------------------------------------------------------------------------


async def test_update_is_a_comment_under_the_first_post(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    adapter = facebook(session, fake.base_url)
    first = await adapter.send(message())

    update = await adapter.send(message(stage="update", text="Lage stabil", reply_to=first))

    assert adapter.can_thread
    request = fake.requests[1]
    assert request.path == f"/v21.0/{first.remote_id}/comments"
    assert request.params == {"message": "Lage stabil", "access_token": PAGE_TOKEN}
    [comment] = fake.comments
    assert comment["parent"] == first.remote_id
    assert update.remote_id == comment["id"]
    assert update.url == f"https://www.facebook.com/{comment['id']}"
    assert update.data == {"post_id": first.remote_id, "comment_id": comment["id"]}


async def test_a_later_comment_still_goes_under_the_post(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    adapter = facebook(session, fake.base_url)
    first = await adapter.send(message())
    comment = await adapter.send(message(text="Update 1", reply_to=first))

    await adapter.send(message(text="Update 2", reply_to=comment))

    assert [c["parent"] for c in fake.comments] == [first.remote_id, first.remote_id]


async def test_retraction_is_a_post_of_its_own(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    """The original is deleted after the correction, and its comments go with it."""
    adapter = facebook(session, fake.base_url)
    original = await adapter.send(message())

    correction = await adapter.send(
        message(kind="retraction", text="Fehlalarm: keine Gefahr.", reply_to=original)
    )
    await adapter.delete(original)

    assert fake.requests[1].path == f"/v21.0/{PAGE_ID}/feed"
    assert correction.remote_id is not None
    assert fake.live(correction.remote_id) is not None
    assert fake.comments == []


async def test_comment_under_a_removed_post_is_permanent(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    adapter = facebook(session, fake.base_url)
    first = await adapter.send(message())
    assert first.remote_id is not None
    fake.remove(first.remote_id)

    with pytest.raises(PermanentError, match="code 100/33: Unsupported post request"):
        await adapter.send(message(text="Lage stabil", reply_to=first))


# -- deletion ------------------------------------------------------------------------------


async def test_delete_removes_the_post(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    adapter = facebook(session, fake.base_url)
    receipt = await adapter.send(message())

    await adapter.delete(receipt)

    assert adapter.can_delete
    deletion = fake.requests[-1]
    assert deletion.method == "DELETE"
    assert deletion.path == f"/v21.0/{receipt.remote_id}"
    assert deletion.params == {"access_token": PAGE_TOKEN}
    assert deletion.status == 200
    assert fake.deleted == {receipt.remote_id}


async def test_delete_of_a_comment(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    adapter = facebook(session, fake.base_url)
    first = await adapter.send(message())
    comment = await adapter.send(message(text="Lage stabil", reply_to=first))

    await adapter.delete(comment)

    assert fake.deleted == {comment.remote_id}
    assert first.remote_id is not None
    assert fake.live(first.remote_id) is not None


async def test_delete_of_a_post_already_gone_succeeds(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    adapter = facebook(session, fake.base_url)
    receipt = await adapter.send(message())
    assert receipt.remote_id is not None
    fake.remove(receipt.remote_id)

    await adapter.delete(receipt)

    assert fake.requests[-1].status == 400  # code 100: does not exist


async def test_delete_that_is_not_confirmed_is_permanent(
    session: aiohttp.ClientSession, fake: FakeGraph
) -> None:
    fake.script(Answer(200, b'{"success":false}'))

    with pytest.raises(PermanentError, match="not confirmed"):
        await facebook(session, fake.base_url).delete(Receipt(remote_id=f"{PAGE_ID}_1"))


async def test_delete_without_a_graph_id_sends_nothing(
    session: aiohttp.ClientSession, fake: FakeGraph
) -> None:
    with pytest.raises(PermanentError, match="no post id"):
        await facebook(session, fake.base_url).delete(Receipt(remote_id="../me/feed"))

    assert fake.requests == []


async def test_delete_while_throttled_is_transient(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    adapter = facebook(session, fake.base_url)
    receipt = await adapter.send(message())
    fake.throttle(32, minutes=2)

    with pytest.raises(TransientError) as caught:
        await adapter.delete(receipt)

    assert caught.value.retry_after == 120
    assert fake.deleted == set()


# -- answers: classified by error code -----------------------------------------------------


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001])
async def test_throttling_codes_are_transient_with_the_usage_wait(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage, code: int
) -> None:
    fake.throttle(code, minutes=7)

    with pytest.raises(TransientError, match=f"code {code}: ") as caught:
        await facebook(session, fake.base_url).send(message())

    assert caught.value.retry_after == 7 * 60
    assert fake.posts == []


async def test_throttled_without_a_usage_wait_leaves_the_wait_open(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    fake.fail(4)  # the usage header says 0 minutes, as when Graph gives no estimate

    with pytest.raises(TransientError, match="Application request limit reached") as caught:
        await facebook(session, fake.base_url).send(message())

    assert caught.value.retry_after is None


@pytest.mark.parametrize("code", [1, 2])
async def test_unknown_and_service_errors_are_transient_and_a_retry_succeeds(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage, code: int
) -> None:
    adapter = facebook(session, fake.base_url)
    fake.fail(code)

    with pytest.raises(TransientError, match=f"code {code}: "):
        await adapter.send(message())
    receipt = await adapter.send(message())

    assert receipt.remote_id == fake.posts[0]["id"]


@pytest.mark.parametrize("code", [3, 10, 190, 200, 230, 299, 368])
async def test_auth_permission_and_policy_codes_are_permanent(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage, code: int
) -> None:
    fake.fail(code)

    with pytest.raises(PermanentError, match=f"code {code}: ") as caught:
        await facebook(session, fake.base_url).send(message())

    assert not isinstance(caught.value, TransientError)


async def test_code_decides_not_the_http_status(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    adapter = facebook(session, fake.base_url)
    fake.fail(190, status=500)
    fake.fail(4, status=400)

    with pytest.raises(PermanentError, match="HTTP 500, code 190"):
        await adapter.send(message())
    with pytest.raises(TransientError, match="HTTP 400, code 4"):
        await adapter.send(message())


@pytest.mark.parametrize(
    ("details", "transient"),
    [
        ({"is_transient": True}, True),
        ({"status": 503}, True),
        ({"status": 400}, False),
        ({"status": 400, "is_transient": False}, False),
    ],
)
async def test_other_codes_follow_is_transient_then_status(
    session: aiohttp.ClientSession,
    fake: FakeGraph,
    message: MakeMessage,
    details: dict[str, Any],
    transient: bool,
) -> None:
    fake.fail(12345, **details)

    with pytest.raises(PermanentError if not transient else TransientError):
        await facebook(session, fake.base_url).send(message())


async def test_wrong_token_is_permanent_and_not_repeated(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    wrong = "EAAG-some-user-token"

    with pytest.raises(PermanentError, match="code 190: Invalid OAuth access token") as caught:
        await facebook(session, fake.base_url, token=wrong).send(message())

    assert wrong not in caught.value.message
    assert fake.requests[0].status == 400  # Graph answers a bad token with 400, not 401


async def test_empty_text_is_permanent(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match=r"code 100: \(#100\) Missing message"):
        await facebook(session, fake.base_url).send(message(text=" "))


async def test_non_graph_answers_fall_back_to_the_status(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    adapter = facebook(session, fake.base_url)
    fake.script(Answer(502, b"<html>Bad Gateway</html>"), Answer(404, b"<html>Not here</html>"))

    with pytest.raises(TransientError, match="HTTP 502"):
        await adapter.send(message())
    with pytest.raises(PermanentError, match="HTTP 404"):
        await adapter.send(message())


async def test_success_without_an_id_is_permanent(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    fake.script(Answer(200, b'{"success":true}'))

    with pytest.raises(PermanentError, match="without an id"):
        await facebook(session, fake.base_url).send(message())


def test_usage_wait_takes_the_longest_estimate() -> None:
    header = (
        '{"1":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":3}],'
        '"2":[{"type":"pages","estimated_time_to_regain_access":12},'
        '{"type":"pages","estimated_time_to_regain_access":"9"}]}'
    )

    assert usage_wait(CIMultiDict({USAGE_HEADER: header})) == 12 * 60
    assert usage_wait(CIMultiDict({USAGE_HEADER: usage(PAGE_ID, minutes=0)})) is None
    assert usage_wait(CIMultiDict({USAGE_HEADER: "not json"})) is None
    assert usage_wait(CIMultiDict()) is None


# -- no answer -----------------------------------------------------------------------------


async def test_no_answer_within_the_timeout_is_transient(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    fake.hold()

    with pytest.raises(TransientError, match=r"no answer within 0\.05s"):
        await facebook(session, fake.base_url, timeout=0.05).send(message())

    assert len(fake.requests) == 1


async def test_connection_refused_is_transient(
    session: aiohttp.ClientSession, message: MakeMessage
) -> None:
    with pytest.raises(TransientError, match="facebook fb"):
        await facebook(session, f"http://127.0.0.1:{free_port()}").send(message())


async def test_invalid_url_on_delete_does_not_reveal_the_token(
    session: aiohttp.ClientSession,
) -> None:
    adapter = facebook(session, "graph.facebook.com")

    with pytest.raises(PermanentError, match="invalid URL") as caught:
        await adapter.delete(Receipt(remote_id=f"{PAGE_ID}_1"))

    assert PAGE_TOKEN not in caught.value.message


async def test_held_request_completes_on_release(
    session: aiohttp.ClientSession, fake: FakeGraph, message: MakeMessage
) -> None:
    fake.hold()
    sending = asyncio.create_task(facebook(session, fake.base_url).send(message()))
    await fake.wait_for_requests(1)
    assert not sending.done()

    fake.release()
    receipt = await sending

    assert receipt.remote_id == fake.posts[0]["id"]
