"""The alert rules (charts/switchyard/files/switchyard.rules.yaml): `promtool check rules`,
`promtool test rules` with a unit test for every alert (tests/chart/promtool/), a real
Prometheus that loads them and evaluates them against a real sidecar without errors,
`promtool check metrics` on the sidecar's exposition, and the chart's PrometheusRule
equal to the file with default values."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

from chart_helpers import CHART, HERE, Render, one
from promql import exposition_names, metric_names

RULES = CHART / "files" / "switchyard.rules.yaml"
UNIT = HERE / "promtool" / "alerts_test.yaml"


def _alerts() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules(promtool: str) -> None:
    cp = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert f"{len(_alerts())} rules found" in cp.stdout


def test_promtool_unit_tests_cover_every_alert(promtool: str) -> None:
    unit = yaml.safe_load(UNIT.read_text())
    tested = {a["alertname"] for t in unit["tests"] for a in t.get("alert_rule_test", [])}
    assert tested == {a["alert"] for a in _alerts()}
    cp = subprocess.run([promtool, "test", "rules", str(UNIT)], capture_output=True, text=True, timeout=120, cwd=UNIT.parent)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "SUCCESS" in cp.stdout


def test_alerts_use_metrics_the_sidecar_exports(live_sidecar: Any) -> None:
    exported = exposition_names(live_sidecar.exposition())
    for rule in _alerts():
        names = metric_names(rule["expr"])
        assert names and names <= exported, (rule["alert"], names - exported)
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_promtool_check_metrics_on_a_real_sidecar(promtool: str, live_sidecar: Any) -> None:
    text = live_sidecar.exposition()
    cp = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_a_real_prometheus_evaluates_every_rule(prometheus: Any, live_sidecar: Any) -> None:
    import time

    deadline = time.monotonic() + 30
    delay = 0.1
    while True:
        groups = prometheus.api("/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("lastEvaluation", "").startswith("20") and not r["lastEvaluation"].startswith("0001") for r in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(delay)  # poll interval under a deadline
        delay = min(delay * 2, 0.5)
    assert {r["name"] for r in rules} == {a["alert"] for a in _alerts()}
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    # `doomed` fails on every tier while Prometheus watches: the condition of
    # SwitchyardAllTiersDown holds for it (and only for it) within a few scrapes.
    expr = next(a["expr"] for a in _alerts() if a["alert"] == "SwitchyardAllTiersDown")
    deadline = time.monotonic() + 30
    while True:
        assert all(s >= 500 for s in live_sidecar.requests("doomed", 2))
        status, result = prometheus.query(expr)
        assert status == "success", status
        if result:
            break
        assert time.monotonic() < deadline, "SwitchyardAllTiersDown never held for doomed"
        time.sleep(0.5)  # one scrape interval between rounds of failing requests
    assert {r["metric"]["binding"] for r in result} == {"doomed"}
    assert float(result[0]["value"][1]) == 1.0


def test_prometheusrule_with_default_values_is_the_rules_file(render: Render) -> None:
    docs = render(None, "prometheusRule.enabled=true")
    rule = one(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_prometheusrule_overrides(render: Render) -> None:
    docs = render(None, "prometheusRule.enabled=true", "prometheusRule.for.SwitchyardServingFromFallback=30m",
                  "prometheusRule.disabled={SwitchyardTierDisabled}", "prometheusRule.additionalAlertLabels.team=platform")
    rules = {r["alert"]: r for g in one(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    assert "SwitchyardTierDisabled" not in rules and len(rules) == len(_alerts()) - 1
    assert rules["SwitchyardServingFromFallback"]["for"] == "30m"
    assert rules["SwitchyardBreakerOpen"]["for"] == "5m"
    assert all(r["labels"]["team"] == "platform" and r["labels"]["severity"] for r in rules.values())
