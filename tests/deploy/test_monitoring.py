"""deploy/monitoring/: promtool accepts the rules and the scrape config, the rules' unit
tests pass (alerts_test.yml, alerts_weekly_test.yml), every rule tells the operator what
to do, the dashboard's panels have titles and valid queries, and every metric the files
use is one the daemon exports, with its labels."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from broadcaster.metrics import Metrics
from tests.integration.test_metrics import documented
from tests.servers import REPO

MONITORING = REPO / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yml"
DASHBOARD = MONITORING / "dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# Grafana's interval variables, as Prometheus would get them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h"}
# The runbook's sections (docs/operations.md) that a rule's description may point at.
RUNBOOK = (
    "a channel is failing during a real incident",
    "the dispatch system's triggers are refused",
    "Redis is down",
    "the broker is down",
    "a false alarm went out",
    "the duty officer does not answer",
)
# Their first step is in the description itself: restart the daemon.
OWN_FIRST_STEP = {"BroadcasterDaemonDown"}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
METRIC = re.compile(r"\b(broadcaster_\w+)\b")
SELECTOR = re.compile(r"\b(broadcaster_\w+|up)\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: run scripts/bootstrap.sh --test (Debian's prometheus)"
    done = subprocess.run(
        [tool, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def exported() -> dict[str, str]:
    """Each series name a daemon exposes, to its family: a fresh daemon's registry has no
    sample of a labelled metric yet, so the names come from each family's type."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix: family.name
        for family in Metrics().registry.collect()
        for suffix in suffixes[family.type]
    }


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def check_expression(expr: str) -> set[str]:
    """The series names `expr` uses; fails on a name the daemon does not export or on a
    label that none of its metrics has (labels as docs/metrics.md lists them, which
    tests/integration/test_metrics.py checks against a running daemon)."""
    names = exported()
    documented_labels = {name: labels for name, (_, labels) in documented().items()}

    def labels_of(series: str) -> set[str]:
        family = names[series]  # the table lists a counter with `_total`
        own = documented_labels.get(family, documented_labels.get(family + "_total"))
        assert own is not None, f"{family} is not in docs/metrics.md"
        return TARGET_LABELS | own | ({"le"} if series.endswith("_bucket") else set())

    used = set(METRIC.findall(expr))
    assert used <= names.keys(), f"not exported: {used - names.keys()} in {expr}"
    for name, matchers in SELECTOR.findall(expr):
        own = TARGET_LABELS if name == "up" else labels_of(name)
        assert set(MATCHER.findall(matchers)) <= own, f"{name}{{{matchers}}}: unknown label"
    known = set(TARGET_LABELS).union(*map(labels_of, used))
    for grouping in GROUPING.findall(expr):
        listed = {label.strip() for label in grouping.split(",") if label.strip()}
        assert listed <= known, f"({grouping}): unknown label in {expr}"
    return used


def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    assert "SUCCESS: 17 rules found" in promtool("check", "rules", str(ALERTS))
    checked = promtool("check", "config", str(MONITORING / "prometheus.yml"))
    assert "is valid prometheus config file syntax" in checked
    assert "SUCCESS: 1 rule files found" in checked


def test_the_rules_unit_tests_pass() -> None:
    """Among them: an alert unfinished for 2 minutes, a daemon down and no drill for 8 days
    fire, and nothing fires for a healthy deployment."""
    files = [MONITORING / "alerts_test.yml", MONITORING / "alerts_weekly_test.yml"]
    out = promtool("test", "rules", *map(str, files))
    assert out.count("SUCCESS") == 2, out
    tested = {
        test["alertname"]
        for path in files
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for test in group["alert_rule_test"]
        if test["exp_alerts"]
    }
    required = {"BroadcasterAlertUnfinished", "BroadcasterDaemonDown", "BroadcasterDrillOverdue"}
    assert required <= tested


def test_every_rule_waits_has_a_severity_and_says_what_to_do() -> None:
    found = rules()
    assert len(found) == 17
    for rule in found:
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        annotations = rule["annotations"]
        for text in annotations["summary"], annotations["description"]:
            assert text, rule["alert"]
            assert "\n" not in text, rule["alert"]
        named = [section for section in RUNBOOK if f'"{section}"' in annotations["description"]]
        assert named or rule["alert"] in OWN_FIRST_STEP, rule["alert"]


def test_the_rules_use_only_exported_metrics_and_labels() -> None:
    used = set().union(*(check_expression(rule["expr"]) for rule in rules()))
    assert len(used) == 12, used  # every metric but the histograms, takeovers


def test_the_checks_see_a_wrong_name_and_a_wrong_label() -> None:
    for wrong in (
        "rate(broadcaster_deliveries[5m])",  # the counter's family name, not its series
        "broadcaster_trigger_to_first_delivery_seconds > 1",  # a histogram's bare name
        'broadcaster_channel_circuit{state="open"}',
        "sum by (mode) (broadcaster_provider_quota_remaining)",
    ):
        try:
            check_expression(wrong)
        except AssertionError:
            continue
        raise AssertionError(f"not caught: {wrong}")


def panels() -> list[dict[str, Any]]:
    def walk(found: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in found:
            yield panel
            yield from walk(panel.get("panels", []))

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [panel for panel in walk(dashboard["panels"]) if panel["type"] != "row"]


def queries() -> list[str]:
    found = [target["expr"] for panel in panels() for target in panel["targets"]]
    for variable, value in GRAFANA_VARIABLES.items():
        found = [expr.replace(variable, value) for expr in found]
    return found


def test_the_dashboard_imports_with_a_prometheus_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert [(i["name"], i["type"], i["pluginId"]) for i in dashboard["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    assert dashboard["schemaVersion"] == 39
    found = panels()
    assert len(found) == 15
    assert len({panel["id"] for panel in found}) == len(found)
    for panel in found:
        assert panel["title"], panel["id"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"], panel["title"]
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_the_dashboard_queries_are_promql_and_show_every_metric(tmp_path: Path) -> None:
    """promtool parses each query (as a recording rule); together they show every metric
    the daemon exports."""
    rules_file = tmp_path / "dashboard-queries.yml"
    recorded = [{"record": f"dashboard:query{n}", "expr": e} for n, e in enumerate(queries())]
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": recorded}]}))
    assert f"SUCCESS: {len(recorded)} rules found" in promtool("check", "rules", str(rules_file))
    used = set().union(*map(check_expression, queries()))
    assert {exported()[name] for name in used} == set(exported().values())


def test_docs_monitoring_lists_every_alert() -> None:
    text = (REPO / "docs" / "monitoring.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `(Broadcaster\w+)` \|", text, re.MULTILINE)
    assert listed == [rule["alert"] for rule in rules()]
