"""Operator settings from SWITCHYARD_* variables (how the chart configures it)."""

from __future__ import annotations

from switchyard.operator.main import _service, settings_from_env


def test_defaults() -> None:
    s = settings_from_env({})
    assert s.namespaces == () and s.webhook.enabled and s.leader.enabled
    assert s.push.allow_admin_url_annotation is False  # test/debug only, off unless asked
    assert s.sidecar.admin_token_secret == "switchyard-admin-token"
    assert s.leader.lease_namespace == "switchyard-system"


def test_overrides() -> None:
    s = settings_from_env({
        "SWITCHYARD_WEBHOOK": "off", "SWITCHYARD_LEADER_ELECTION": "false", "SWITCHYARD_ALLOW_ADMIN_URL_ANNOTATION": "1",
        "SWITCHYARD_HEALTH_INTERVAL_SECONDS": "2.5", "SWITCHYARD_SIDECAR_IMAGE": "img:1", "POD_NAMESPACE": "ops",
        "POD_NAME": "op-7", "SWITCHYARD_CATALOG_TTL_SECONDS": "60",
    }, ("team-a",))
    assert not s.webhook.enabled and not s.leader.enabled and s.push.allow_admin_url_annotation
    assert s.push.health_interval_seconds == 2.5 and s.sidecar.image == "img:1"
    assert (s.leader.lease_namespace, s.leader.identity) == ("ops", "op-7")
    assert s.catalog.ttl_seconds == 60 and s.namespaces == ("team-a",)


def test_webhook_service_reference() -> None:
    assert _service({}) is None
    assert _service({"SWITCHYARD_WEBHOOK_SERVICE": "switchyard-system/switchyard-operator"}) == ("switchyard-system", "switchyard-operator", 443)
    assert _service({"SWITCHYARD_WEBHOOK_SERVICE": "ops/op:9443"}) == ("ops", "op", 9443)
