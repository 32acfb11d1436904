"""The figures measured when the speed work began (issue 11, same machine: 2 cores, ratios
from one run, 3 repeats), kept in docs/benchmarks.md as the reference "before"; and what
changed since."""

REFERENCE = """## Reference: measured when the speed work began

Measured on this project's machine (2 cores) before this suite existed, with 500
sequential triggers; kept as the starting point.

- **The floor.** A bare aiomqtt publish to a subscriber on the same mosquitto, then 10
  aiohttp POSTs at once to a local server: 1.5 ms p50 and 2.8 ms p99 with TCP_NODELAY;
  45 ms with mosquitto's default configuration and no TCP_NODELAY on the client (Nagle's
  algorithm and delayed ACKs).
- **Trigger to first request at the provider**, 10 webhook channels answering at once,
  confirmation none:

  | store | mosquitto | p50 | p99 | ratio to the floor |
  |---|---|---|---|---|
  | SQLite | default | 112–117 ms | 190–220 ms | |
  | Redis | default | 112 ms | 170–180 ms | |
  | SQLite | TCP_NODELAY in the daemon | 32–41 ms | 110 ms | about 20–50x |
  | Redis | TCP_NODELAY in the daemon | 22–28 ms | 43–50 ms | |

  CPU 50–70 ms per trigger (floor: 2–3.5 ms); 270–400 ms per alert at 50 channels.
  Per alert of 10 deliveries: 48 store write transactions, 67 store reads (about 156
  Redis round trips), 23 MQTT publishes, about 300 pydantic JSON parses.
  Profile (py-spy): store access 17% of busy CPU on SQLite, 44% on Redis; asyncio 24%;
  pydantic 14%; aiomqtt 12%; aiohttp client 14%; `Dispatcher.publish` alone 13–17%.
- **Fan-out**, N channels each answering in 200 ms, trigger to last answer:

  | N | plain aiohttp gather (the floor) | the daemon | Apprise 1.x async |
  |---|---|---|---|
  | 10 | 204 ms | 320 ms (1.56x) | 418 ms (2.05x) |
  | 50 | 215 ms | 503 ms (2.34x); 647 ms to `sent` on MQTT (3.0x) | 1.87 s (8.7x) |

  Without async mode, Apprise takes 10.2 s at N=50.
- **Burst** of 200 triggers x 10 channels (providers at 0–50 ms): 18.8 s to the last
  delivery on SQLite, 10.0 s on Redis; CPU 10–13 s (5–6 ms per delivery); order kept
  (0 inversions); peak RSS 80–92 MB. 1,000 triggers: 91 s on SQLite, 46 s on Redis. The
  floor: 0.7 s for 200, 3.2 s for 1,000.
- **SMS**: 1,000 recipients through a Twilio-style fake at 20 ms: 21.5 s, 46 messages per
  second; 10,000: 219 s. The plain aiohttp floor with 100 requests in flight: 2,900–4,100
  messages per second.
- **Idle**: 0.02% CPU, 79–90 MB RSS.
"""

RETRACTION = """## Fan-out and retraction (`scripts/bench.sh retraction`)

`bench/retraction.py`, run on its own (it prints its table rather than writing this
file): a real mosquitto, the SQLite store (WAL, `synchronous=FULL`), the daemon
in-process, ten webhook channels on local fake providers answering at once. Per round: a
live trigger (no confirmation) timed from publishing on MQTT to the last delivery
confirmed by its provider (seen in the retained alert state on MQTT); then a retraction
over HTTP, timed from the request to the last correction confirmed and every original
deleted and marked `retracted`.

Measured 2026-11-23 on the project's machine (2 cores, 24 GiB), 30 rounds:

| measure (10 channels, local fakes) | rounds | median | p95 | max |
|---|---|---|---|---|
| trigger published -> last delivery confirmed | 30 | 153 ms | 454 ms | 468 ms |
| retraction requested -> corrections done, originals retracted | 30 | 92 ms | 369 ms | 383 ms |
"""

CHANGES = """## What changed between before and after, and what is left

Each cause found, and what was done about it (the "after" column above). The results
labelled `after-bulk` are SMS and e-mail at the issue's 10,000 recipients, one repeat:

```sh
export BENCH_REPEATS=1 BENCH_SMS_RECIPIENTS=10000 BENCH_EMAIL_RECIPIENTS=10000
BENCH_SMS_SETTINGS='{"max_in_flight": 100}' scripts/bench.sh sms --label after-bulk
BENCH_EMAIL_SETTINGS='{"bcc_batch": 50}' scripts/bench.sh email --label after-bulk
```

- **Nagle's algorithm on the daemon's MQTT socket.** paho leaves it on (asyncio turns it
  off on every other socket the daemon opens), so each small packet (a trigger's PUBACK,
  a state) could wait about 40 ms for the broker's delayed ACK. The daemon now sets
  `TCP_NODELAY`; the sample `mosquitto.conf` sets `set_tcp_nodelay true`.
- **The whole alert republished after every change**, each publish awaited by the
  delivery that made the change and preceded by reading the alert and all its
  deliveries: 26 MQTT publishes per alert of 10 deliveries. Now a change is told from a
  task of the alert's own, 10 ms later, with the state as it is then; changes meanwhile
  are told together. Two or three publishes per alert, the last always the latest state,
  and no delivery waits for one.
- **48 store writes per alert** (the `counts` rows): every audit entry in a transaction of
  its own, and per delivery a claim and a "sending" save before its request. Now 16: on
  an alert's way out (received, released, each answer and retry, finished) an audit entry
  is written with the state change it records; one write claims an alert's
  whole fan-out (and finds a retracted alert); a first attempt that follows its claim
  within a second goes without another write; a Redis save checks its claim inside its
  script (one round trip instead of two).
- **SQLite: a thread hop per statement and a disk flush per write.** aiosqlite runs each
  statement as a hop to its thread (four to six per write). The store now has its own
  thread, which runs a whole transaction per hop, and writes that queue while one
  commits share the next commit (group commit). `synchronous=FULL` is kept everywhere: a
  trigger is on disk before its PUBACK and a provider's answer before the delivery counts.
- **SMS one recipient at a time** (46 messages per second, at most 1 request in flight):
  now up to `max_in_flight` at once, each message paced by the channel's `rate_limit` and
  `messages_per_second`, progress saved every 200 recipients or second.
- **E-mail:** one connection per delivery, and with `bcc_batch` many recipients a message.
- Smaller: thread roots read once per alert, not once per channel; approvers' names
  compared once per approval, not once per template per trigger; one task renews every
  lease in flight instead of one task per attempt.

Not met, and where the rest goes. The latency p99 is 12 to 13 ms, 7 times this run's
floor of 1.7 ms (goal 2x); CPU is about 1.35 ms per delivery (goal 1 ms), so the burst of
200 triggers takes about 5 s on Redis and 7 s on SQLite (goals 2 s and 4 s); fan-out at
N=50 is 1.10 to 1.12x the floor to the last answer (goal 1.1x) and 1.24 to 1.26x to `sent`
(goal 1.2x). The burst keeps the order of arrival (0 inversions at 200) because a release
returns to the intake only once its fan-out is claimed; that costs the SQLite burst about
2 s (5.1 s without it, with one inversion on Redis). The profile puts the rest in
per-delivery Python work: the retry object built for each delivery, building each aiohttp
request, pydantic dumps of each delivery with its receipt, the store round trip of each
answer, and the re-read of the alert after each publish that keeps the retained state
right when several daemons publish. The next steps would be an alert's answers saved in
one store call (a Redis pipeline like SQLite's group commit), a version read instead of
every delivery for that re-read, and retry settings built once per channel.

**Web Push** (`webpush`, new with issue 12; no "before"): 10,000 subscriptions through
the fake push service answering in 20 ms, 50 pushes in flight. Each push is encrypted on
its own (a fresh key pair and ECDH per push, as RFC 8291 asks), which is most of the
daemon's CPU here; one VAPID signature per push service origin is kept for 11 hours. The
floor encrypts the same way with 100 in flight. The fake shares the 2 cores: it checks
every push's headers and VAPID header but decrypts only every 100th.
"""
