"""Tracing's settings: off by default, on by ``--tracing`` / ``SWITCHYARD_TRACING``, and the
standard ``OTEL_*`` variables honoured as every OpenTelemetry SDK honours them (the SDK
reads most itself; ``OTEL_TRACES_EXPORTER`` and ``OTEL_SDK_DISABLED`` are read here)."""

from __future__ import annotations

import pytest

from switchyard.cli import build_parser
from switchyard.sidecar.tracing import TracingConfigError, TracingSettings, settings_from


def test_off_unless_a_setting_turns_it_on() -> None:
    assert settings_from(None, {}) is None
    assert settings_from(None, {"SWITCHYARD_TRACING": "off"}) is None
    assert settings_from(None, {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) is None
    assert settings_from(None, {"SWITCHYARD_TRACING": "otlp"}) == TracingSettings(exporters=("otlp",))
    assert settings_from("on", {}) == TracingSettings(exporters=("otlp",))
    assert settings_from("console", {}) == TracingSettings(exporters=("console",))
    assert settings_from("off", {"SWITCHYARD_TRACING": "otlp"}) is None  # the flag wins over the variable


def test_otel_sdk_disabled_turns_it_off() -> None:
    assert settings_from("otlp", {"OTEL_SDK_DISABLED": "true"}) is None
    assert settings_from("otlp", {"OTEL_SDK_DISABLED": "false"}) is not None


def test_otel_traces_exporter_names_the_exporters() -> None:
    assert settings_from("on", {"OTEL_TRACES_EXPORTER": "none"}) == TracingSettings(exporters=())
    assert settings_from("otlp", {"OTEL_TRACES_EXPORTER": "console"}).exporters == ("console",)
    assert settings_from("on", {"OTEL_TRACES_EXPORTER": "otlp, console"}).exporters == ("otlp", "console")
    with pytest.raises(TracingConfigError, match="zipkin"):
        settings_from("on", {"OTEL_TRACES_EXPORTER": "zipkin"})


def test_only_otlp_over_http_protobuf_is_shipped() -> None:
    assert settings_from("otlp", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}) is not None
    with pytest.raises(TracingConfigError, match="grpc"):
        settings_from("otlp", {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(TracingConfigError, match="http/json"):
        settings_from("otlp", {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"})
    assert settings_from("console", {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) is not None  # no OTLP exporter asked


def test_a_bad_mode_is_refused() -> None:
    with pytest.raises(TracingConfigError):
        settings_from("jaeger", {})


def test_propagation_upstream_can_be_turned_off() -> None:
    assert settings_from("on", {"SWITCHYARD_TRACING_PROPAGATE_UPSTREAM": "false"}).propagate_upstream is False
    assert settings_from("on", {}).propagate_upstream is True


def test_the_cli_takes_the_flag_for_the_sidecar_and_standalone_mode() -> None:
    for cmd in (["sidecar"], ["run", "-f", "x"]):
        args = build_parser().parse_args([*cmd, "--tracing", "otlp"])
        assert args.tracing == "otlp"
        assert build_parser().parse_args(cmd).tracing is None


def test_the_sdk_reads_the_service_name_resource_attributes_and_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from switchyard.sidecar.tracing.otel import Tracing

    monkeypatch.setenv("OTEL_SERVICE_NAME", "my-gateway")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.namespace.name=apps,service.version=9.9")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    mem = InMemorySpanExporter()
    tr = Tracing.start(TracingSettings(exporters=()), exporter=mem)
    attrs = tr.provider.resource.attributes
    assert attrs["service.name"] == "my-gateway"
    assert attrs["k8s.namespace.name"] == "apps" and attrs["service.version"] == "9.9"
    assert tr.provider.sampler.get_description() == "AlwaysOffSampler"
    tr.request({}, "openai-chat").span.end()
    assert mem.get_finished_spans() == ()  # sampled out by the SDK, from OTEL_TRACES_SAMPLER


def test_defaults_without_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from switchyard.sidecar.tracing.otel import Tracing

    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER"):
        monkeypatch.delenv(name, raising=False)
    tr = Tracing.start(TracingSettings(exporters=()))
    assert tr.provider.resource.attributes["service.name"] == "switchyard"
    assert tr.provider.resource.attributes["service.version"]
    # OTEL_TRACES_EXPORTER=none: no span processor, nothing exported anywhere
    assert tr.provider._active_span_processor._span_processors == ()


def test_the_otlp_exporter_reads_its_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from switchyard.sidecar.tracing.otel import exporter_for

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector.example:4318/custom/traces")
    assert exporter_for("otlp")._endpoint == "http://collector.example:4318/custom/traces"
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.example:4318")
    assert exporter_for("otlp")._endpoint == "http://collector.example:4318/v1/traces"
