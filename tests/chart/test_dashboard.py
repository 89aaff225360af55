"""The Grafana dashboard (charts/switchyard/dashboards/switchyard.json) asks only for what
the sidecar and the operator really export: every query's metric names are in a real
sidecar's /metrics after scripted traffic, or in the operator's exposition
(switchyard/operator/metrics.py; the e2e tier scrapes a running operator's), every
query parses (promtool, as recording rules) and a real Prometheus scraping that sidecar
evaluates each sidecar query to at least one series (the Operator row's queries need a
running operator, which this tier has not)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from chart_helpers import CHART, Render, one
from promql import dashboard_queries, exposition_names, fill, metric_names, variable_queries

DASHBOARD = json.loads((CHART / "dashboards" / "switchyard.json").read_text())
QUERIES = dashboard_queries(DASHBOARD)
PANEL_TYPES = {"row", "stat", "timeseries", "state-timeline", "table"}


def test_dashboard_shape() -> None:
    assert DASHBOARD["uid"] == "switchyard" and DASHBOARD["title"] == "Switchyard"
    names = [v["name"] for v in DASHBOARD["templating"]["list"]]
    assert names == ["datasource", "namespace", "binding"]
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    assert {p["type"] for p in DASHBOARD["panels"]} <= PANEL_TYPES
    for p in DASHBOARD["panels"]:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["description"], p["title"]
    # Every binding-level query is filtered by the binding variable.
    for where, expr in QUERIES:
        if metric_names(expr) & {"switchyard_requests_total", "switchyard_breaker_state", "switchyard_active_tier",
                                 "switchyard_usage_tokens_total", "switchyard_cost_total"}:
            assert 'binding=~"$binding"' in expr, where


def test_the_usage_and_cost_row() -> None:
    """Tokens/s by binding and kind, cost per hour by binding (per currency: amounts in two
    currencies never add up), and the top callers (docs/usage-and-cost.md)."""
    panels = DASHBOARD["panels"]
    row = next(i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == "Usage and cost")
    end = next((i for i, p in enumerate(panels) if i > row and p["type"] == "row"), len(panels))
    exprs = [t["expr"] for p in panels[row + 1:end] for t in p["targets"]]
    assert any("sum by (binding, kind)" in e and "switchyard_usage_tokens_total" in e for e in exprs), exprs
    cost = [e for e in exprs if "switchyard_cost_total" in e]
    assert cost and all("currency" in e.split("(rate(")[0] for e in cost), cost
    assert any("sum by (binding, currency)" in e and e.endswith("* 3600") for e in cost), cost
    assert any(e.startswith("topk(") and "caller" in e for e in exprs), exprs
    # panels below the row do not overlap it
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels[row:end])
    assert all(p["gridPos"]["y"] >= bottom for p in panels[end:])


def test_breaker_timeline_works_for_any_state() -> None:
    """No state is spelled out in the query: rate-limited, disabled or a future state shows up."""
    panel = next(p for p in DASHBOARD["panels"] if p["type"] == "state-timeline")
    (target,) = panel["targets"]
    assert "switchyard_breaker_state" in target["expr"] and "state=" not in target["expr"]
    assert "{{state}}" in target["legendFormat"]


def _operator_exposition() -> set[str]:
    from switchyard.operator.metrics import OperatorMetrics

    m = OperatorMetrics()
    m.bind(lambda: 0, lambda: True)
    m.refusals.labels("SecretNotMarked").inc()
    return exposition_names(m.exposition().decode())


def _is_operator(expr: str) -> bool:
    return any(n.startswith("switchyard_operator_") for n in metric_names(expr))


def test_the_operator_row_shows_every_operator_metric() -> None:
    exported = _operator_exposition()
    used: set[str] = set()
    for where, expr in QUERIES:
        if _is_operator(expr):
            names = metric_names(expr)
            assert names <= exported, f"{where}: {sorted(names - exported)} not in the operator's /metrics"
            used |= names
    families = {n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for n in exported}
    shown = {n.removesuffix("_bucket") for n in used}
    assert families - shown == set(), f"operator metrics the dashboard does not show: {sorted(families - shown)}"


def test_every_query_uses_metrics_the_sidecar_exports(live_sidecar: Any) -> None:
    exported = exposition_names(live_sidecar.exposition())
    used: set[str] = set()
    for where, expr in QUERIES:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr}"
        if _is_operator(expr):
            continue  # test_the_operator_row_shows_every_operator_metric
        missing = names - exported
        assert not missing, f"{where}: {sorted(missing)} not in the sidecar's /metrics"
        used |= names
    for var, selector, _label in variable_queries(DASHBOARD):
        assert metric_names(selector) <= exported, var
    # The dashboard covers the whole exposition, families the dashboard leaves to the
    # alerts or to docs/metrics.md aside.
    families = {n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for n in exported}
    shown = {n.removesuffix("_bucket") for n in used}
    assert families - shown == set(), f"metrics the dashboard does not show: {sorted(families - shown)}"


def test_every_query_parses_with_promtool(promtool: str, tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:query_{i}", "expr": fill(expr, namespace=".*", binding=".*")}
             for i, (_, expr) in enumerate(QUERIES)]
    path = tmp_path / "dashboard-queries.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    cp = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert f"{len(rules)} rules found" in cp.stdout


def test_every_query_returns_series_from_a_real_prometheus(prometheus: Any) -> None:
    empty, errors = [], []
    for where, expr in QUERIES:
        if _is_operator(expr):
            continue  # no operator behind this Prometheus
        status, result = prometheus.query(fill(expr, namespace="team-a", binding="assistant|to-claude|doomed|billed|keyed"))
        if status != "success":
            errors.append(f"{where}: {status}")
        elif not result:
            empty.append(f"{where}: {expr}")
    assert not errors, "\n".join(errors)
    assert not empty, "queries without a series after the scripted traffic:\n" + "\n".join(empty)
    for var, selector, label in variable_queries(DASHBOARD):
        body = prometheus.api("/api/v1/series", **{"match[]": fill(selector or "{__name__=~'.+'}", namespace="team-a")})
        values = {s.get(label) for s in body["data"]}
        assert values - {None}, f"variable {var}: no {label} values"
    status, result = prometheus.query('max by (binding, tier, state) (switchyard_breaker_state{binding="assistant"}) == 1')
    states = {(r["metric"]["tier"], r["metric"]["state"]) for r in result}
    assert ("0", "closed") in states  # the trial request closed it again


def test_dashboard_configmap_carries_the_file(render: Render) -> None:
    docs = render(None, "grafana.dashboard.enabled=true")
    cm = one(docs, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["switchyard.json"]) == DASHBOARD
