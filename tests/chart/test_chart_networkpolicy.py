"""The NetworkPolicy options: the sidecars' admin port reachable only from the operator's
pods (and the peers the user adds), every other port left as it was; the operator's pods
reachable only on their health and webhook ports. Off by default."""

from __future__ import annotations

from typing import Any

from chart_helpers import Render, find, one


def _policies(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in find(docs, "NetworkPolicy")}


def test_off_by_default(render: Render) -> None:
    assert not find(render(), "NetworkPolicy")


def test_the_admin_port_admits_only_the_operator(render: Render) -> None:
    docs = render(None, "appNamespaces={team-a,team-b}", "networkPolicy.sidecarAdmin.enabled=true")
    pols = _policies(docs)
    assert set(pols) == {("team-a", "switchyard-sidecar-admin"), ("team-b", "switchyard-sidecar-admin")}
    spec = pols[("team-a", "switchyard-sidecar-admin")]["spec"]
    assert spec["policyTypes"] == ["Ingress"] and spec["podSelector"] == {}
    admin, rest = spec["ingress"]
    assert admin["ports"] == [{"protocol": "TCP", "port": 4001}]
    (peer,) = admin["from"]
    operator_labels = one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert peer["podSelector"]["matchLabels"] == operator_labels
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "switchyard-system"}
    # Every other port stays open (a policy is an allow-list): 1-4000, 4002-65535, UDP, SCTP.
    assert "from" not in rest
    assert rest["ports"] == [{"protocol": "TCP", "port": 1, "endPort": 4000},
                             {"protocol": "TCP", "port": 4002, "endPort": 65535},
                             {"protocol": "UDP"}, {"protocol": "SCTP"}]


def test_the_operator_admits_only_health_metrics_and_webhook(render: Render) -> None:
    docs = render(None, "networkPolicy.operator.enabled=true")
    pol = one(docs, "NetworkPolicy")
    assert pol["metadata"]["namespace"] == "switchyard-system"
    assert pol["spec"]["podSelector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    (rule,) = pol["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [8080, 8082, 8081, 9443]  # health, metrics, readiness, webhook


def test_the_operator_podmonitor_scrapes_the_metrics_port(render: Render) -> None:
    docs = render(None, "metrics.operatorPodMonitor.enabled=true")
    pm = one(docs, "PodMonitor")
    assert pm["spec"]["selector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert pm["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 8082, "protocol": "TCP"} in c["ports"]
    assert {"name": "SWITCHYARD_METRICS_PORT", "value": "8082"} in c["env"]
