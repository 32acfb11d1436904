"""docs/benchmarks.md is rendered from result files: a table per label and, with a
"before" and an "after", the two side by side (no timing measured here)."""

from __future__ import annotations

from typing import Any

from bench.report import render


def result(label: str, sqlite: float, redis: float) -> dict[str, Any]:
    cell = {"min": sqlite * 0.9, "median": sqlite, "values": [sqlite * 0.9, sqlite]}
    return {
        "label": label,
        "machine": {"nproc": 2, "cpu": "Test CPU", "loadavg": "0.10 0.20 0.30"},
        "measures": {
            "latency": {
                "repeats": 2,
                "rows": [
                    {
                        "name": "p99, trigger -> first request",
                        "unit": "ms",
                        "cells": {
                            "floor": {"min": 2.0, "median": 2.5, "values": [2.0, 2.5]},
                            "sqlite": cell,
                            "redis": {"min": redis, "median": redis, "values": [redis]},
                        },
                    }
                ],
            }
        },
    }


def test_two_result_files_give_before_after_and_their_comparison() -> None:
    doc = render({"before": result("before", 100.0, 50.0), "after": result("after", 4.0, 3.0)})

    lines = doc.splitlines()
    name = "| latency: p99, trigger -> first request |"
    rows = [line for line in lines if line.startswith(name) and line.count("|") == 8]
    assert len(rows) == 2
    before, after = rows
    assert before == (
        "| latency: p99, trigger -> first request | 2.0 ms / 2.5 ms |  | 90 ms / 100 ms "
        "| 50 ms | SQLite 40.00x, Redis 20.00x | 2 |"
    )
    assert after == (
        "| latency: p99, trigger -> first request | 2.0 ms / 2.5 ms |  | 3.6 ms / 4.0 ms "
        "| 3.0 ms | SQLite 1.60x, Redis 1.20x | 2 |"
    )
    assert lines.index("## Results: before") < lines.index("## Results: after")
    assert f"{name} floor | 2.5 ms | 2.5 ms | 1.00x |" in lines
    assert "| latency: p99, trigger -> first request | SQLite | 100 ms | 4.0 ms | 0.04x |" in lines
    assert "| latency: p99, trigger -> first request | Redis | 50 ms | 3.0 ms | 0.06x |" in lines
    assert "Machine: 2 cores, Test CPU; load average 0.10 0.20 0.30" in doc
    assert "## Reference: measured when the speed work began" in doc


def test_one_result_file_has_no_comparison() -> None:
    doc = render({"before": result("before", 100.0, 50.0)})

    assert "## Results: before" in doc
    assert "## Before and after" not in doc
