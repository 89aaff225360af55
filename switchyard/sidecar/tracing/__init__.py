"""Traces, off by default: whether they are on, and the one place that loads OpenTelemetry.

Tracing is turned on by a setting (``--tracing`` / ``SWITCHYARD_TRACING``); everything
else is the standard ``OTEL_*`` environment, read by the OpenTelemetry SDK itself
(exporter endpoint and headers, service name, resource attributes, sampler, batch
sizes) or, for the two variables the bare SDK leaves to its auto-configuration
(``OTEL_TRACES_EXPORTER``, ``OTEL_SDK_DISABLED``), here, the way the SDK's
configurator reads them (docs/tracing.md).

This module imports no OpenTelemetry: ``start`` imports ``tracing.otel`` (the SDK, the
exporter, the span hooks) only when tracing is on. Off, the request path checks one
attribute (``Runtime.tracing is None``, then ``Exchange.trace is None``) and nothing of
OpenTelemetry is ever loaded: no memory, no instructions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Values of ``--tracing`` / ``SWITCHYARD_TRACING``: off, or on with this exporter
#: (``on``: the exporter ``OTEL_TRACES_EXPORTER`` names, else OTLP).
MODES = ("off", "on", "otlp", "console")

#: What ``OTEL_TRACES_EXPORTER`` may name here (comma-separated; ``none``: no exporter).
EXPORTERS = ("otlp", "otlp_proto_http", "console", "none")


class TracingConfigError(ValueError):
    """A tracing setting that cannot be honoured (refused at start, never mid-request)."""


@dataclass(frozen=True)
class TracingSettings:
    """What the sidecar's tracing does. ``exporters`` empty: spans are made (and the
    trace context is passed upstream) but not exported (``OTEL_TRACES_EXPORTER=none``)."""

    exporters: tuple[str, ...] = ("otlp",)
    # Send the W3C trace context (traceparent, tracestate) to the upstream with each
    # attempt, so a provider that traces (vLLM, a proxy) joins the trace.
    propagate_upstream: bool = True


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def settings_from(mode: str | None, environ: Mapping[str, str] | None = None) -> TracingSettings | None:
    """The tracing settings for ``mode`` (the flag, else ``SWITCHYARD_TRACING``) and the
    ``OTEL_*`` environment, or None when tracing is off.

    ``OTEL_SDK_DISABLED=true`` turns it off whatever the mode (as it turns off every
    OpenTelemetry SDK); ``OTEL_TRACES_EXPORTER``, when set, names the exporters (as it
    does for every SDK) and wins over the mode's own exporter."""
    env = os.environ if environ is None else environ
    raw = (mode if mode is not None else env.get("SWITCHYARD_TRACING", "")).strip().lower() or "off"
    if raw in ("0", "false", "no", "none"):
        raw = "off"
    if raw in ("1", "true", "yes"):
        raw = "on"
    if raw not in MODES:
        raise TracingConfigError(f"tracing must be one of {', '.join(MODES)}, not {raw!r}")
    if raw == "off" or _truthy(env.get("OTEL_SDK_DISABLED")):
        return None
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        names = tuple(dict.fromkeys(n.strip() for n in named.split(",") if n.strip()))
    else:
        names = ("console",) if raw == "console" else ("otlp",)
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}: this sidecar ships {', '.join(EXPORTERS)} "
            "(OTLP over HTTP/protobuf)"
        )
    exporters = tuple(n for n in names if n != "none")
    if "otlp" in exporters or "otlp_proto_http" in exporters:
        protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
        if protocol != "http/protobuf":
            raise TracingConfigError(
                f"OTLP protocol {protocol!r} is not shipped: this sidecar exports OTLP over http/protobuf "
                "(the OpenTelemetry default; a collector listens for it on port 4318)"
            )
    propagate = env.get("SWITCHYARD_TRACING_PROPAGATE_UPSTREAM", "true").strip().lower() not in ("0", "false", "no", "off")
    return TracingSettings(exporters=exporters, propagate_upstream=propagate)


def start(settings: TracingSettings | None, **kwargs: Any) -> Any:
    """The running ``otel.Tracing`` for these settings (None: tracing off). Imports the
    OpenTelemetry SDK, here and only here."""
    if settings is None:
        return None
    from switchyard.sidecar.tracing import otel

    return otel.Tracing.start(settings, **kwargs)
