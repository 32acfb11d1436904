"""docs/benchmarks.md from the result files in bench/results/ (no measuring here).

Every label found gets its own table; with both `before.json` and `after.json`, a table
of before against after follows. Pure functions of the result dicts, so a test can
render two small ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.harness import REPO, RESULTS
from bench.reference import CHANGES, REFERENCE, RETRACTION

DOC = REPO / "docs" / "benchmarks.md"
COLUMNS = (("floor", "floor"), ("peer", "peer"), ("sqlite", "SQLite"), ("redis", "Redis"))

INTRO = """# Benchmarks

How fast the broadcaster gets a warning out, measured against the floor (the least any
program could do on the same machine) and against a peer (Apprise, a widely used Python
notification library) in the same run, on the same local fakes. Nothing here is asserted
in the tests: timing is measured only by this suite.

Run the whole suite, or one measure:

```sh
scripts/bench.sh                         # every measure, writes bench/results/latest.json
scripts/bench.sh --label before          # or after: the result file's name
scripts/bench.sh latency --label after   # one measure; the others in the file stay
uv run python -m bench.report            # this file again from bench/results/*.json
scripts/bench.sh retraction              # the retraction benchmark (its own table, below)
```

It starts its own mosquitto (with `set_tcp_nodelay true`) and redis-server on free
loopback ports, writes a deployment with webhook channels pointing at a local fake
provider, and runs the real daemon (`python -m broadcaster run`) as a child process on
SQLite and on Redis. Apprise runs in its own virtual environment, `bench/.peer-venv`.

Each figure is measured `BENCH_REPEATS` times (default 3); a cell shows the best and the
median of the repeats, `best / median`. Ratio: the broadcaster's median against the
floor's (above 1 is slower than the floor; for a rate, floor divided by the broadcaster's).

At the defaults the whole suite took 16 minutes on the code measured as "before" (the
two 1,000-trigger bursts alone about 3 minutes); the faster the daemon, the shorter.

Sizes, with the environment variable that changes each (defaults are smaller than the
issue's where the full size would take the suite past about 15 minutes on 2 cores):

| measure | default | variable |
|---|---|---|
| sequential triggers (floor, latency) | 200 | `BENCH_TRIGGERS` (issue: 500) |
| fan-out rounds per repeat | 3 | `BENCH_FANOUT_ROUNDS` |
| burst (x 10 channels) | 200; 1,000 once per store | `BENCH_BURST`, `BENCH_BURST_LARGE` (0 skips) |
| SMS recipients | 1,000 | `BENCH_SMS_RECIPIENTS` (issue: 10,000) |
| e-mail recipients | 1,000 | `BENCH_EMAIL_RECIPIENTS` (issue: 10,000) |
| Web Push subscriptions | 10,000 | `BENCH_WEBPUSH_SUBSCRIPTIONS` |
| Web Push: the fake decrypts every n-th | 100 | `BENCH_WEBPUSH_CHECK_EVERY` |
| confirm rounds per repeat | 3 | `BENCH_CONFIRM_ROUNDS` |
| profiled triggers | 150 | `BENCH_PROFILE_TRIGGERS` |
| stores | both | `BENCH_STORES=sqlite` or `redis` |
"""


def number(value: float, unit: str) -> str:
    if unit == "ms" and value >= 1000:
        return f"{value / 1000:.2f} s"
    if unit in ("ms", "s", "MB", "x") and value < 10:
        text = f"{value:.2f}" if value < 1 else f"{value:.1f}"
    else:
        text = f"{value:,.0f}"
    return f"{text} {unit}".rstrip() if unit not in ("", "count") else text


def cell(row: dict[str, Any], column: str) -> str:
    found = row.get("cells", {}).get(column)
    if not found:
        return ""
    unit = str(row.get("unit", ""))
    best, median = number(found["min"], unit), number(found["median"], unit)
    return median if best == median else f"{best} / {median}"


def ratio(row: dict[str, Any]) -> str:
    cells = row.get("cells", {})
    base = cells.get("floor", {}).get("median")
    if not base:
        return ""
    parts = []
    for column, title in COLUMNS[1:]:
        found = cells.get(column)
        if found and found["median"]:
            value = found["median"] / base
            if row.get("better") == "higher":
                value = base / found["median"]
            parts.append(f"{title} {value:.2f}x")
    return ", ".join(parts)


def table(result: dict[str, Any]) -> list[str]:
    lines = [
        "| measure | floor | peer | broadcaster on SQLite | broadcaster on Redis | ratio "
        "| repeats (min / median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, measure in result.get("measures", {}).items():
        for row in measure.get("rows", []):
            title = f"{name}: {row['name']}"
            if row.get("peer_name"):
                title += f" (peer: {row['peer_name']})"
            lines.append(
                f"| {title} | "
                + " | ".join(cell(row, c) for c, _ in COLUMNS)
                + f" | {ratio(row)} | {row.get('repeats', measure.get('repeats', ''))} |"
            )
    return lines


def context(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, measure in result.get("measures", {}).items():
        box = measure.get("machine", {})
        notes = measure.get("notes", [])
        line = (
            f"- {name}: {measure.get('seconds', '?')} s, {box.get('nproc')} cores "
            f"({box.get('cpu')}), load average {box.get('loadavg')} at {measure.get('at')}"
        )
        lines.append(line)
        lines.extend(f"  - {note}" for note in notes)
    return lines


def medians(result: dict[str, Any]) -> dict[tuple[str, str, str], tuple[float, str]]:
    found: dict[tuple[str, str, str], tuple[float, str]] = {}
    for name, measure in result.get("measures", {}).items():
        for row in measure.get("rows", []):
            for column, _ in COLUMNS:
                if column in row.get("cells", {}):
                    key = (name, str(row["name"]), column)
                    found[key] = (row["cells"][column]["median"], str(row.get("unit", "")))
    return found


def comparison(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    old, new = medians(before), medians(after)
    lines = [
        "| measure | column | before (median) | after (median) | after / before |",
        "|---|---|---|---|---|",
    ]
    titles = dict(COLUMNS)
    for key in [*old, *(k for k in new if k not in old)]:
        name, row, column = key
        a, b = old.get(key), new.get(key)
        unit = (a or b or (0.0, ""))[1]
        change = f"{b[0] / a[0]:.2f}x" if a and b and a[0] else ""
        lines.append(
            f"| {name}: {row} | {titles[column]} | {number(a[0], unit) if a else ''} | "
            f"{number(b[0], unit) if b else ''} | {change} |"
        )
    return lines


def profile(result: dict[str, Any]) -> list[str]:
    data = result.get("measures", {}).get("profile", {})
    lines: list[str] = []
    for store, found in data.get("profiles", {}).items():
        lines += [
            "",
            f"On {store} ({found['samples']} samples of the daemon's busy time, "
            f"{found['triggers']} sequential triggers):",
            "",
            "| where | share of busy samples |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v:.1f}% |" for k, v in found["categories"].items()]
        lines += ["", "| function (own time) | share |", "|---|---|"]
        lines += [f"| `{k}` | {v:.1f}% |" for k, v in found["functions"].items()]
        lines += ["", "| function (including what it calls) | share |", "|---|---|"]
        lines += [f"| `{k}` | {v:.1f}% |" for k, v in found["inclusive"].items()]
    return lines


# The goals: (text, measure, row name ending, "ratio" to the floor or "value", limit;
# "min" for a lower bound, else an upper one).
GOALS: tuple[tuple[str, str, str, str, float, str], ...] = (
    (
        "trigger -> first request, p99 <= 2x the floor",
        "latency",
        "p99, trigger -> first request",
        "ratio",
        2.0,
        "max",
    ),
    ("CPU per delivery <= 1 ms", "latency", "CPU per delivery", "value", 1.0, "max"),
    (
        "fan-out N=10 to last answer <= 1.1x the floor",
        "fanout",
        "N=10, trigger -> last answer",
        "ratio",
        1.1,
        "max",
    ),
    (
        "fan-out N=10 to `sent` <= 1.2x the floor",
        "fanout",
        "N=10, trigger -> `sent` on MQTT",
        "ratio",
        1.2,
        "max",
    ),
    (
        "fan-out N=50 to last answer <= 1.1x the floor",
        "fanout",
        "N=50, trigger -> last answer",
        "ratio",
        1.1,
        "max",
    ),
    (
        "fan-out N=50 to `sent` <= 1.2x the floor",
        "fanout",
        "N=50, trigger -> `sent` on MQTT",
        "ratio",
        1.2,
        "max",
    ),
    (
        "burst of 200: delivered within 4 s (SQLite) / 2 s (Redis)",
        "burst",
        ": first publish -> last delivery",
        "burst",
        0.0,
        "max",
    ),
    (
        "burst: order of arrival kept (0 inversions)",
        "burst",
        ": order inversions",
        "value",
        0.0,
        "max",
    ),
    ("SMS >= 1,000 messages per second", "sms", "messages per second", "value", 1000.0, "min"),
    ("e-mail: one SMTP connection", "email", "SMTP connections", "value", 1.0, "max"),
    ("e-mail: many recipients per message", "email", "recipients per message", "value", 2.0, "min"),
    (
        "first provider request <= 50 ms after the undo window",
        "confirm",
        "undo window's end -> first provider request",
        "value",
        50.0,
        "max",
    ),
    (
        "release visible on the page <= 1 s after the click",
        "confirm",
        "the page's state shows it",
        "value",
        1000.0,
        "max",
    ),
)
BURST_LIMITS = {"sqlite": 4000.0, "redis": 2000.0}  # ms


def goals(result: dict[str, Any]) -> list[str]:
    """Each goal per store: the median (or its ratio to the floor) and whether it is met."""
    lines = ["| goal | SQLite | Redis |", "|---|---|---|"]
    for text, measure, ending, kind, limit, bound in GOALS:
        rows = result.get("measures", {}).get(measure, {}).get("rows", [])
        row = next((r for r in rows if str(r["name"]).endswith(ending)), None)
        if row is None:
            continue
        cells = row.get("cells", {})
        shown = []
        for store in ("sqlite", "redis"):
            found = cells.get(store)
            if not found:
                shown.append("")
                continue
            value, target = found["median"], BURST_LIMITS[store] if kind == "burst" else limit
            label = number(value, str(row.get("unit", "")))
            if kind == "ratio":
                value /= cells.get("floor", {}).get("median") or float("nan")
                label = f"{value:.2f}x"
            met = value >= target if bound == "min" else value <= target
            shown.append(f"{label}: {'met' if met else 'not met'}")
        lines.append(f"| {text} | {shown[0]} | {shown[1]} |")
    return lines


def render(results: dict[str, dict[str, Any]]) -> str:
    lines = [INTRO]
    order = [k for k in ("before", "after") if k in results] + sorted(
        k for k in results if k not in ("before", "after")
    )
    for label in order:
        result = results[label]
        box = result.get("machine", {})
        lines += [
            f"## Results: {label}",
            "",
            f"Machine: {box.get('nproc')} cores, {box.get('cpu')}; "
            f"load average {box.get('loadavg')} (1, 5, 15 min) when the last measure ended.",
            "",
            *table(result),
            "",
            "The issue's goals against this run (medians):",
            "",
            *goals(result),
            "",
            "Each measure's run:",
            "",
            *context(result),
            "",
        ]
        if "profile" in result.get("measures", {}):
            lines += [f"### Where the daemon's time goes ({label})", *profile(result), ""]
    if "before" in results and "after" in results:
        lines += [
            "## Before and after",
            "",
            *comparison(results["before"], results["after"]),
            "",
        ]
    lines += [CHANGES, REFERENCE, RETRACTION]
    return "\n".join(lines).rstrip() + "\n"


def read_results(folder: Path = RESULTS) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        found[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return found


def write_doc() -> Path:
    DOC.write_text(render(read_results()), encoding="utf-8")
    return DOC


if __name__ == "__main__":
    print(write_doc())
