"""Operator settings from SWITCHYARD_* variables (how the chart configures it)."""

from __future__ import annotations

import pytest

from switchyard.operator.main import kopf_settings, settings_from_env


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


def test_delivery_is_the_secret_unless_push_is_asked_for() -> None:
    assert settings_from_env({}).push.delivery == "secret" and settings_from_env({}).sidecar.delivery == "secret"
    s = settings_from_env({"SWITCHYARD_CONFIG_DELIVERY": "push"})
    assert s.push.delivery == "push" and s.sidecar.delivery == "push"
    with pytest.raises(SystemExit, match="secret' or 'push"):
        settings_from_env({"SWITCHYARD_CONFIG_DELIVERY": "carrier-pigeon"})


def test_the_operator_manages_no_webhook_configuration(tmp_path) -> None:
    """The chart owns them (release-named); kopf only serves, and reloads a renewed cert."""
    (tmp_path / "c").write_text("x")
    s = settings_from_env({"SWITCHYARD_WEBHOOK_CERT_FILE": str(tmp_path / "c"), "SWITCHYARD_WEBHOOK_KEY_FILE": str(tmp_path / "c")})
    import kopf

    registry, previous = kopf.OperatorRegistry(), kopf.get_default_registry()
    kopf.set_default_registry(registry)
    try:
        ks = kopf_settings(s, {})
    finally:
        kopf.set_default_registry(previous)
    assert ks.admission.managed is None
    assert ks.admission.server.file_check_interval == 10.0


def test_sidecar_shape_from_the_environment() -> None:
    s = settings_from_env({})
    assert s.sidecar.native is None  # auto: decided from the API server's version at start
    s = settings_from_env({"SWITCHYARD_SIDECAR_NATIVE": "false", "SWITCHYARD_SIDECAR_CPU_LIMIT": "1",
                           "SWITCHYARD_SIDECAR_IMAGE_PULL_SECRETS": "a, b,"})
    assert s.sidecar.native is False and s.sidecar.cpu_limit == "1" and s.sidecar.image_pull_secrets == ("a", "b")
    assert settings_from_env({"SWITCHYARD_SIDECAR_NATIVE": "true"}).sidecar.native is True


def test_the_config_owner_is_a_role_binding_or_a_cluster_role_binding() -> None:
    assert settings_from_env({}).push.config_owner == ""
    assert settings_from_env({"SWITCHYARD_CONFIG_OWNER": "RoleBinding/op"}).push.config_owner == "RoleBinding/op"
    assert settings_from_env({"SWITCHYARD_CONFIG_OWNER": "ClusterRoleBinding/op"}).push.config_owner == "ClusterRoleBinding/op"
    for bad in ("Secret/op", "RoleBinding/", "RoleBinding/a/b", "op"):
        with pytest.raises(SystemExit, match="SWITCHYARD_CONFIG_OWNER"):
            settings_from_env({"SWITCHYARD_CONFIG_OWNER": bad})


def test_sidecar_tracing_from_the_environment() -> None:
    s = settings_from_env({})
    assert s.sidecar.tracing is False and s.sidecar.tracing_env == ()
    s = settings_from_env({
        "SWITCHYARD_SIDECAR_TRACING": "true",
        "SWITCHYARD_SIDECAR_TRACING_ENV": '{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER_ARG": 0.1, "OTEL_X": ""}',
    })
    assert s.sidecar.tracing is True
    assert s.sidecar.tracing_env == (("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_TRACES_SAMPLER_ARG", "0.1"))
    for bad in ('{"PATH": "/x"}', '["OTEL_A"]', "{not json"):
        with pytest.raises(SystemExit):
            settings_from_env({"SWITCHYARD_SIDECAR_TRACING": "true", "SWITCHYARD_SIDECAR_TRACING_ENV": bad})
