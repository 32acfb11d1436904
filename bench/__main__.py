"""The whole benchmark suite, or the measures named, then docs/benchmarks.md.

    uv run python -m bench [MEASURE ...] [--label before|after|NAME]

Results go to bench/results/<label>.json (a measure run alone replaces only its own part)
and docs/benchmarks.md is written from every result file there.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.harness import RESULTS, machine, repeats
from bench.report import write_doc

MEASURES = (
    "floor",
    "latency",
    "counts",
    "fanout",
    "burst",
    "sms",
    "email",
    "webpush",
    "confirm",
    "profile",
)


def load(label: str) -> dict[str, Any]:
    path = RESULTS / f"{label}.json"
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    return {"label": label, "measures": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description="broadcaster benchmark suite")
    parser.add_argument("measures", nargs="*", help=f"default all: {' '.join(MEASURES)}")
    parser.add_argument("--label", default="latest", help="result file name (before, after)")
    args = parser.parse_args()
    unknown = [m for m in args.measures if m not in MEASURES]
    if unknown:
        sys.exit(f"unknown measure {unknown}; choose from {', '.join(MEASURES)}")
    results = load(args.label)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in args.measures or MEASURES:
        module = importlib.import_module(f"bench.{name}")
        started = time.monotonic()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        result: dict[str, Any] = asyncio.run(module.measure())
        result["seconds"] = round(time.monotonic() - started, 1)
        result["machine"] = machine()
        result["repeats"] = repeats()
        result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
        results["measures"][name] = result
        results["machine"] = result["machine"]
        (RESULTS / f"{args.label}.json").write_text(
            json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"bench: {name} done in {result['seconds']} s", file=sys.stderr, flush=True)
    print(f"bench: wrote {write_doc()}", file=sys.stderr)


if __name__ == "__main__":
    main()
