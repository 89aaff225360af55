"""The operator's own metrics: the families docs/metrics.md lists, served on their port,
counted by the reconciler (reconciles, pushes, refusals) with fixed label words only."""

from __future__ import annotations

import re

import aiohttp

from switchyard.operator.metrics import OperatorMetrics, serve

FAMILIES = {
    "switchyard_operator_reconciles_total", "switchyard_operator_reconcile_duration_seconds",
    "switchyard_operator_config_pushes_total", "switchyard_operator_credential_refusals_total",
    "switchyard_operator_webhook_requests_total", "switchyard_operator_webhook_duration_seconds",
    "switchyard_operator_queue_depth", "switchyard_operator_leader", "switchyard_operator_health_hints_sent_total",
}


async def test_served_on_their_own_port_with_live_gauges() -> None:
    m = OperatorMetrics()
    depth, leader = [3], [True]
    m.bind(lambda: depth[0], lambda: leader[0])
    m.reconciled("namespace", 0.2, ok=True)
    m.refusals.labels("SecretNotMarked").inc()
    runner, port = await serve("127.0.0.1", 0, m)
    try:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
    finally:
        await runner.cleanup()
    assert set(re.findall(r"^# TYPE (\S+) ", text, re.M)) == FAMILIES
    assert "switchyard_operator_queue_depth 3.0" in text and "switchyard_operator_leader 1.0" in text
    assert 'switchyard_operator_reconciles_total{kind="namespace",result="ok"} 1.0' in text
    assert 'switchyard_operator_credential_refusals_total{reason="SecretNotMarked"} 1.0' in text


def test_docs_list_every_operator_family() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "metrics.md").read_text()
    rows = set(re.findall(r"^\| `(switchyard_operator_[a-z_]+)` \|", doc, re.M))
    # ... and the admission guard's two counters (operator/admission.py, on the same registry)
    assert rows == FAMILIES | {"switchyard_operator_webhook_errors_total", "switchyard_operator_webhook_skipped_total"}


def test_secrets_and_optionally_pods_are_selected_server_side() -> None:
    """kopf sends these label selectors to the API server on every list and watch."""
    import kopf

    from switchyard.operator.main import kopf_settings
    from switchyard.operator.settings import Settings, WebhookSettings

    def selectors(env: dict[str, str]) -> dict[str, list[str]]:
        s = kopf_settings(Settings(webhook=WebhookSettings(enabled=False)), env)
        out = {}
        for plural in ("secrets", "pods"):
            res = kopf.Resource("", "v1", plural)
            out[plural] = list(s.watching.label_selectors.collect(res))
        return out

    assert selectors({}) == {"secrets": ["switchyard.dev/credential=true,app.kubernetes.io/part-of!=switchyard"], "pods": []}
    assert selectors({"SWITCHYARD_POD_LABEL_SELECTOR": "team=assistants"})["pods"] == ["team=assistants"]
