"""A `kill -9` of the daemon in the middle of an SMS send to many numbers: the restarted
daemon resumes from the progress saved during the send, looks up the numbers whose answer
was lost, and every number gets the warning exactly once."""

from __future__ import annotations

from collections import Counter

from tests.fakes.sms import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.integration.harness import publish, signed_trigger, write_deployment
from tests.integration.test_crash import onlines, start_daemon

SENDER = "+4921155550000"
NUMBERS = [f"+49151{index:08d}" for index in range(1, 13)]


def sms_delivered(watcher, alert_id: str) -> int:
    alert = watcher.alert(alert_id)
    if not alert:
        return 0
    recipients = alert["deliveries"]["sms"].get("recipients") or {}
    return int(recipients.get("delivered", 0))


async def test_kill_9_mid_sms_send_then_restart_messages_every_number_once(
    tmp_path, mosquitto, watcher
):
    async with FakeTwilio.start(senders={SENDER}) as twilio:
        channel = {
            "type": "sms",
            "base_url": twilio.base_url,
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from": SENDER,
            "to": NUMBERS,
            "max_in_flight": 4,
            "drill": "send",
        }
        config = write_deployment(
            tmp_path,
            mqtt_url=mosquitto.url,
            channels={"sms": channel},
            client_id="broadcaster-sms-crash-test",
        )
        log = tmp_path / "daemon.log"
        # Six answered; the next four created at "Twilio" with their answers held; two
        # numbers waiting for a free slot when the daemon dies.
        twilio.hold_answers(after=6)
        daemon = start_daemon(config, log)
        try:
            await watcher.wait_for(lambda: onlines(watcher) >= 1, 30)
            await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-SMS-KILL9"))
            # The six answers are saved while the send runs (the checkpoint's timer), and
            # published after the store has them.
            await watcher.wait_for(lambda: sms_delivered(watcher, "FW-SMS-KILL9") == 6, 30)
            await twilio.wait_for_requests(10)
            assert len(twilio.messages) == 10
            daemon.kill()  # SIGKILL: no shutdown code runs
            daemon.wait(10)
            twilio.release()  # the held answers go to a dead process

            before = onlines(watcher)
            daemon = start_daemon(config, log)
            await watcher.wait_for(lambda: onlines(watcher) > before, 30)
            alert = await watcher.alert_in(
                "FW-SMS-KILL9", "sent", "partially_failed", "failed", timeout=30
            )
        finally:
            daemon.kill()
            daemon.wait(10)

        assert alert["state"] == "sent", log.read_text()
        assert alert["deliveries"]["sms"]["recipients"] == {
            "total": 12,
            "delivered": 12,
            "failed": 0,
        }
        # Every number got the warning exactly once, the four unsure ones included.
        assert Counter(m["to"] for m in twilio.messages) == Counter(NUMBERS)
        # Only the six numbers in flight at the kill were looked up, each once.
        assert sorted(q["To"] for q in twilio.lists) == NUMBERS[6:]
        posts = Counter(r.form["To"] for r in twilio.requests if r.method == "POST")
        assert posts == Counter(NUMBERS)
