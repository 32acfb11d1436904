"""The figures measured when the speed work began (issue 11, same machine: 2 cores, ratios
from one run, 3 repeats), kept in docs/benchmarks.md as the reference "before"."""

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
