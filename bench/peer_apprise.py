"""The peer: Apprise sending one text to N json:// endpoints, in its own virtual
environment (bench/.peer-venv). Run by bench/fanout.py, not imported by it.

    bench/.peer-venv/bin/python bench/peer_apprise.py sync|async ROUNDS PREFIX URL ...

Prints one JSON list: per round, the seconds notify() took (it returns once every
endpoint has answered). The title carries `<PREFIX>-<round>` so the fake provider can
tell the rounds apart.
"""

import asyncio
import json
import sys
import time

import apprise


def main() -> None:
    mode, rounds, prefix, urls = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    asset = apprise.AppriseAsset(async_mode=mode == "async")
    notifier = apprise.Apprise(asset=asset)
    for url in urls:
        notifier.add(url)
    timings = []
    for n in range(rounds):
        start = time.perf_counter()
        if mode == "async":
            ok = asyncio.run(
                notifier.async_notify(body="Großbrand: Fenster schließen", title=f"{prefix}-{n}")
            )
        else:
            ok = notifier.notify(body="Großbrand: Fenster schließen", title=f"{prefix}-{n}")
        timings.append(time.perf_counter() - start)
        if not ok:
            sys.exit("apprise reported a failed notification")
    print(json.dumps({"timings": timings, "version": apprise.__version__}))


if __name__ == "__main__":
    main()
