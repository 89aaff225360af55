"""The spans of a request, with the OpenTelemetry SDK: loaded only when tracing is on.

``Tracing`` owns the SDK's ``TracerProvider`` (the sampler, span limits and batch
settings are the SDK's own, from ``OTEL_*``; the resource from ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` over Switchyard's defaults) and the W3C TraceContext
propagator. For each request the pipeline gets a ``RequestTrace``:

    request span   SERVER  "{gen_ai.operation.name} {binding}"   parent: the client's traceparent
      attempt span CLIENT  "{gen_ai.operation.name} {tier model}" one per tier tried, in order
      event "switchyard.tier.skipped" on the request span        one per tier passed over untried

An attempt span ends when the attempt does: after the last byte of a stream. The
attributes follow the GenAI semantic conventions (``gen_ai.provider.name``, the current
name; not the older ``gen_ai.system``) plus ``switchyard.*`` for the routing decision.
No span holds a prompt, a completion, a header value, a key or the client's own model
string: only what the log line and the metrics already tell (docs/tracing.md).

The hooks take the pipeline's objects (``Exchange``, ``Attempt``) without importing them
(this package sits below the pipeline): what they read is listed in each hook.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from switchyard import __version__
from switchyard.sidecar.routing.caller import metric_label
from switchyard.sidecar.tracing import TracingSettings

log = logging.getLogger("switchyard.sidecar")

SERVICE = "switchyard"
SCOPE = "switchyard.sidecar"

#: gen_ai.operation.name by wire protocol (the client's on the request span, the tier's
#: on an attempt span).
OPERATION = {
    "openai-chat": "chat",
    "anthropic-messages": "chat",
    "openai-responses": "chat",
    "gemini": "generate_content",
}

#: gen_ai.provider.name by ModelSource provider: the semantic conventions' well-known
#: values where there is one, else the provider's own name.
PROVIDER = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "openrouter": "openrouter",
    "openai-compatible": "openai_compatible",
}

#: Outcomes of a request that are the gateway's or the upstreams' failure (span status
#: ERROR, as any 5xx answer is); a 4xx (the request's fault) leaves the status unset.
FAILED_OUTCOMES = frozenset({"all-tiers-failed", "broken-stream", "drained"})


def exporter_for(name: str) -> SpanExporter:
    """The exporter ``OTEL_TRACES_EXPORTER`` names; it reads its own ``OTEL_EXPORTER_*``."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT, ...


def resource() -> Resource:
    """``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` (read by the SDK's detector),
    over Switchyard's defaults: service.name "switchyard", service.version."""
    res = Resource.create()
    defaults: dict[str, str] = {}
    if str(res.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        defaults[SERVICE_NAME] = SERVICE
    if SERVICE_VERSION not in res.attributes:
        defaults[SERVICE_VERSION] = __version__
    return res.merge(Resource(defaults)) if defaults else res


class Tracing:
    """The sidecar's tracer, its provider and the propagator. One per ``Runtime``."""

    def __init__(self, settings: TracingSettings, provider: TracerProvider) -> None:
        self.settings = settings
        self.provider = provider
        self.tracer = provider.get_tracer(SCOPE, __version__)
        self.propagator = TraceContextTextMapPropagator()  # W3C traceparent / tracestate only

    @classmethod
    def start(cls, settings: TracingSettings, *, exporter: SpanExporter | None = None) -> Tracing:
        """A provider with the settings' exporters behind a batch processor (its
        ``OTEL_BSP_*`` read by the SDK); ``exporter`` (tests: an in-memory one) is
        added behind a simple processor, so each span is there once it ends."""
        provider = TracerProvider(resource=resource())  # sampler: OTEL_TRACES_SAMPLER(_ARG); limits: OTEL_SPAN_*
        for name in settings.exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter_for(name)))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        names = ", ".join(settings.exporters) or "none"
        log.info("tracing on: exporter %s, W3C trace context%s", names, " passed upstream" if settings.propagate_upstream else "")
        return cls(settings, provider)

    def shutdown(self) -> None:
        """Export what is left (bounded by the exporter's own timeout). Blocking: call
        it off the event loop."""
        self.provider.shutdown()

    def request(self, headers: Mapping[str, str], protocol: str) -> RequestTrace | None:
        """The request span, child of the client's ``traceparent`` when it sent a valid
        one (a malformed one is ignored: a new trace). None if the span could not be
        made: tracing never fails a request."""
        try:
            parent = self.propagator.extract(headers)
            op = OPERATION.get(protocol, "chat")
            span = self.tracer.start_span(
                op,
                context=parent,
                kind=SpanKind.SERVER,
                attributes={"gen_ai.operation.name": op, "switchyard.ingress": protocol},
            )
            return RequestTrace(self, span, op)
        except Exception:
            log.exception("tracing: could not start the request span")
            return None


def _server(url: str) -> dict[str, Any]:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return {}
    return {"server.address": parts.hostname or "", "server.port": port}


class RequestTrace:
    """The spans of one request (``Exchange.trace``)."""

    __slots__ = ("tracing", "span", "op", "context", "attempted")

    def __init__(self, tracing: Tracing, span: Span, op: str) -> None:
        self.tracing = tracing
        self.span = span
        self.op = op
        self.context = trace.set_span_in_context(span)
        self.attempted: set[int] = set()

    def traced(self, run: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        """``run`` (``attempt.attempt``) made to run inside the tier's attempt span."""
        return functools.partial(self.attempt, run)

    async def attempt(self, run: Callable[[Any], Awaitable[Any]], at: Any) -> Any:
        """``run(at)`` (``attempt.attempt``) inside the tier's attempt span.

        Reads of ``at``: tier, binding, call (url, headers: the trace context is added
        when propagating), cross, decision.degraded, call.notes, broken; of ``at.ex``:
        started, ttft, usage, outcome. The result: a ``Miss`` (``failure``) or the
        client's response."""
        try:
            span = self._start_attempt(at)
        except Exception:  # a bug here never costs the client its answer
            log.exception("tracing: could not start the attempt span")
            return await run(at)
        started = time.monotonic()
        try:
            result = await run(at)
        except BaseException as exc:
            _end_attempt_raised(span, exc)
            raise
        try:
            _end_attempt(span, at, result, started)
        except Exception:  # a bug here never costs the client its answer
            log.exception("tracing: could not finish the attempt span")
            span.end()
        return result

    def _start_attempt(self, at: Any) -> Span:
        tier = at.tier
        self.attempted.add(tier.index)
        op = OPERATION.get(tier.protocol, "chat")
        attrs: dict[str, Any] | None = None
        if self.span.is_recording():  # sampled out: no attributes to clean, only the ids to pass on
            attrs = {
                "gen_ai.operation.name": op,
                "gen_ai.provider.name": PROVIDER.get(tier.provider, tier.provider),
                "gen_ai.request.model": tier.model,
                "gen_ai.request.stream": bool(at.call.stream),
                "switchyard.binding": at.binding.name,
                "switchyard.tier.index": tier.index,
                "switchyard.source": tier.source,
                "switchyard.tier.protocol": tier.protocol,
                "switchyard.translated": bool(at.cross),
                **_server(at.call.url),
            }
        span = self.tracing.tracer.start_span(f"{op} {tier.model}", context=self.context, kind=SpanKind.CLIENT, attributes=attrs)
        if self.tracing.settings.propagate_upstream:
            carrier: dict[str, str] = {}
            self.tracing.propagator.inject(carrier, context=trace.set_span_in_context(span))
            at.call.headers = {**at.call.headers, **carrier}
        return span

    def skipped(self, tier: Any, outcome: str, cls: str, reason: str) -> None:
        """A tier passed over (``chain._Tally.skip``): an event on the request span when
        it was never tried (breaker, rate limit, capability, deadline, unresolvable);
        a tier that was tried has its attempt span."""
        if tier.index in self.attempted or not self.span.is_recording():
            return
        self.span.add_event(
            "switchyard.tier.skipped",
            {
                "switchyard.tier.index": tier.index,
                "switchyard.source": tier.source,
                "gen_ai.request.model": tier.model,
                "switchyard.skipped.reason": reason,
                "switchyard.fallback.class": cls,
                "switchyard.tier.outcome": outcome,
            },
        )

    def end(self, ex: Any) -> None:
        """End the request span. Reads of ``ex``: binding, served_by, outcome, status,
        stream, caller, trail, degraded, usage, ttft."""
        span = self.span
        try:
            if span.is_recording():
                _end_request(span, self.op, ex)
        except Exception:
            log.exception("tracing: could not finish the request span")
        span.end()


def _usage(attrs: dict[str, Any], usage: Any) -> None:
    if usage is None:
        return
    attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
    attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
    if usage.cached_input_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cached_input_tokens
    if usage.cache_creation_tokens:
        attrs["gen_ai.usage.cache_write.input_tokens"] = usage.cache_creation_tokens
    if usage.reasoning_tokens:
        attrs["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens


def _end_attempt(span: Span, at: Any, result: Any, started: float) -> None:
    if not span.is_recording():
        span.end()
        return
    ex = at.ex
    failure = getattr(result, "failure", None)
    attrs: dict[str, Any] = {}
    if failure is not None:  # a Miss: this tier did not serve
        attrs["error.type"] = failure.reason
        attrs["switchyard.tier.outcome"] = failure.trail_text()
        attrs["switchyard.fallback.reason"] = failure.trail_text()
        attrs["switchyard.fallback.class"] = failure.cls
        if failure.status:
            attrs["http.response.status_code"] = failure.status
        span.set_attributes(attrs)
        span.set_status(Status(StatusCode.ERROR))
        span.end()
        return
    attrs["http.response.status_code"] = 200
    broken = getattr(at, "broken", None)
    degraded = [f"{f}={a}" for f, a in at.decision.degraded if a not in ("skip-tier", "reject")]
    degraded += [f"{f}={a}" for f, a in at.call.notes]
    if degraded:
        attrs["switchyard.degraded"] = degraded
    _usage(attrs, ex.usage)
    if ex.ttft is not None and at.call.stream:
        attrs["gen_ai.response.time_to_first_chunk"] = max(0.0, ex.started + ex.ttft - started)
    if broken is not None:  # content had started, then the upstream failed: the client got an error event
        attrs["error.type"] = broken.reason
        attrs["switchyard.tier.outcome"] = "broken-stream"
        span.set_status(Status(StatusCode.ERROR))
    elif ex.outcome != "success":  # ended early, not the tier's fault (drain deadline, a bug of ours)
        attrs["error.type"] = ex.outcome
        attrs["switchyard.tier.outcome"] = ex.outcome
        span.set_status(Status(StatusCode.ERROR))
    else:
        attrs["switchyard.tier.outcome"] = "success"
    span.set_attributes(attrs)
    span.end()


def _end_attempt_raised(span: Span, exc: BaseException) -> None:
    """The attempt ended by an exception: the client went away (cancelled), or a bug."""
    kind = "client-gone" if isinstance(exc, asyncio.CancelledError) else type(exc).__name__
    span.set_attributes({"error.type": kind, "switchyard.tier.outcome": kind})
    span.set_status(Status(StatusCode.ERROR))
    span.end()


def _end_request(span: Span, op: str, ex: Any) -> None:
    attrs: dict[str, Any] = {
        "switchyard.outcome": ex.outcome,
        "gen_ai.request.stream": bool(ex.stream),
    }
    if ex.status:
        attrs["http.response.status_code"] = ex.status
    b = ex.binding
    if b is not None:
        span.update_name(f"{op} {b.name}")
        attrs["gen_ai.request.model"] = b.name
        attrs["switchyard.binding"] = b.name
        attrs["switchyard.binding.namespace"] = b.namespace
    # As the metrics' caller label: a self-declared name (x-switchyard-caller) only when
    # the binding lists it; a known client by name; any other "other".
    attrs["switchyard.caller"] = metric_label(ex.caller, (b.callers or ()) if b is not None else ())
    t = ex.served_by
    if t is not None:
        attrs["gen_ai.provider.name"] = PROVIDER.get(t.provider, t.provider)
        attrs["switchyard.tier.index"] = t.index
        attrs["switchyard.source"] = t.source
        attrs["switchyard.model"] = t.model
    if ex.trail:
        attrs["switchyard.fallback.reason"] = ", ".join(tt.short() for tt in ex.trail)
    if ex.degraded:
        attrs["switchyard.degraded"] = [f"{f}={a}" for f, a in ex.degraded]
    _usage(attrs, ex.usage)
    if ex.ttft is not None and ex.stream:
        attrs["gen_ai.response.time_to_first_chunk"] = ex.ttft
    if ex.outcome != "success":
        attrs["error.type"] = ex.outcome
    span.set_attributes(attrs)
    if ex.outcome in FAILED_OUTCOMES or ex.status >= 500:
        span.set_status(Status(StatusCode.ERROR))
