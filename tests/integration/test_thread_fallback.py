"""A later stage of an incident replies under its first post; when that post is gone at
the provider (deleted by hand), the update must still go out, on its own."""

from __future__ import annotations

from tests.fakes import mastodon
from tests.fakes.mastodon import FakeMastodon
from tests.integration.harness import (
    FIRE,
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    write_deployment,
)
from tests.servers import MosquittoServer


async def test_an_update_whose_first_post_was_deleted_goes_out_on_its_own(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher
):
    async with FakeMastodon.start() as fake:
        channel = {"type": "mastodon", "base_url": fake.base_url, "access_token": mastodon.TOKEN}
        config = write_deployment(
            tmp_path, mqtt_url=mosquitto.url, channels={"mastodon_city": channel}
        )
        async with running_daemon(config) as daemon:
            await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-TF-1", incident="E-TF"))
            await watcher.alert_in("FW-TF-1", "sent")
            first = fake.posts[0]
            fake.remove(first["id"])  # the press office deleted it in the web interface
            update = signed_trigger(
                "FW-TF-2", incident="E-TF", stage="update", params={**FIRE, "district": "Oberbilk"}
            )
            await publish(mosquitto.url, "bc/trigger", update)
            alert = await watcher.alert_in("FW-TF-2", "sent", "partially_failed", "failed")
            trail = await daemon.store.audit_trail("FW-TF-2")

    assert alert["state"] == "sent", alert
    posts = [r for r in fake.requests if r.method == "POST"]
    # The reply was tried once, refused as the provider refuses it, then sent standalone.
    assert [(r.params.get("in_reply_to_id"), r.status) for r in posts] == [
        (None, 200),
        (first["id"], 404),
        (None, 200),
    ]
    assert len(fake.posts) == 2
    assert fake.posts[1]["in_reply_to_id"] is None
    assert "Oberbilk" in fake.posts[1]["text"]
    assert alert["deliveries"]["mastodon_city"]["remote_id"] == fake.posts[1]["id"]
    fallbacks = [e for e in trail if e.event == "thread_fallback"]
    assert len(fallbacks) == 1
    assert fallbacks[0].detail["channel"] == "mastodon_city"
    assert "does not appear to exist" in fallbacks[0].detail["error"]
