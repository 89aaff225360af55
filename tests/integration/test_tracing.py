"""Traces, span by span: the real sidecar over real HTTP, the official SDKs as clients,
the OpenTelemetry SDK's in-memory exporter as the collector (and, once, a collector
that reads the OTLP/HTTP protobuf the real exporter sends).

One SERVER span per request (the client's traceparent as parent), one CLIENT span per
tier attempt, a ``switchyard.tier.skipped`` event on the request span per tier passed
over untried (docs/tracing.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import asyncio
import openai
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from harness import Gateway, GatewayFactory, binding
from switchyard.sidecar.tracing import TracingSettings, settings_from
from switchyard.sidecar.tracing.otel import Tracing
from switchyard.simulator import Simulator

CHAIN = binding("helper", "primary", "backup", "claude", extra="  breaker: {consecutiveFailures: 2, cooldownSeconds: 30}")
HI = [{"role": "user", "content": "hi"}]
SECRET_PROMPT = "the-prompt-must-not-be-traced-7d1f"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


async def traced(gateway: GatewayFactory, bindings: str = CHAIN, **kw) -> tuple[Gateway, InMemorySpanExporter]:
    gw = await gateway(bindings, **kw)
    mem = InMemorySpanExporter()
    gw.runtime.tracing = Tracing.start(TracingSettings(exporters=()), exporter=mem)
    return gw, mem


def spans(mem: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """(the request span, its attempt spans in order)."""
    done = mem.get_finished_spans()
    (req,) = [s for s in done if s.kind == SpanKind.SERVER]
    attempts = sorted((s for s in done if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time)
    assert len(done) == 1 + len(attempts)
    for a in attempts:
        assert a.parent is not None and a.parent.span_id == req.context.span_id
        assert a.context.trace_id == req.context.trace_id
    return req, attempts


def nothing_secret(mem: InMemorySpanExporter) -> None:
    text = "".join(s.to_json() for s in mem.get_finished_spans())
    for secret in (SECRET_PROMPT, "sk-primary-KEY", "sk-backup-KEY", "sk-ant-claude-KEY", "client-side-key"):
        assert secret not in text


async def test_one_request_span_and_one_attempt_span_with_genai_attributes(gateway: GatewayFactory, sim: Simulator) -> None:
    gw, mem = await traced(gateway)
    raw = await gw.openai().chat.completions.with_raw_response.create(model="helper", messages=[{"role": "user", "content": SECRET_PROMPT}])
    assert raw.headers["x-switchyard-tier"] == "0"
    req, (att,) = spans(mem)
    assert req.name == "chat helper"
    assert req.parent is None  # the SDK sent no traceparent: a new trace
    assert req.status.status_code == StatusCode.UNSET
    r = dict(req.attributes)
    assert r["gen_ai.operation.name"] == "chat"
    assert r["gen_ai.request.model"] == "helper"
    assert r["gen_ai.provider.name"] == "openai_compatible"
    assert r["switchyard.binding"] == "helper"
    assert r["switchyard.tier.index"] == 0 and r["switchyard.source"] == "primary" and r["switchyard.model"] == "primary-model"
    assert r["switchyard.outcome"] == "success" and r["http.response.status_code"] == 200
    assert r["gen_ai.usage.input_tokens"] > 0 and r["gen_ai.usage.output_tokens"] > 0
    assert "error.type" not in r and "switchyard.fallback.reason" not in r
    assert att.name == "chat primary-model"
    a = dict(att.attributes)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "primary-model"
    assert a["gen_ai.provider.name"] == "openai_compatible"
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == sim.port
    assert a["switchyard.tier.index"] == 0 and a["switchyard.tier.outcome"] == "success"
    assert a["gen_ai.request.stream"] is False and a["switchyard.translated"] is False
    assert att.status.status_code == StatusCode.UNSET
    assert req.start_time <= att.start_time and att.end_time <= req.end_time
    assert not req.events
    nothing_secret(mem)


async def test_429_fallback_gives_two_attempt_spans_the_first_with_its_error_and_reason(gateway: GatewayFactory, sim: Simulator) -> None:
    gw, mem = await traced(gateway)
    sim.fault("primary", "429", retry_after=5)
    raw = await gw.openai().chat.completions.with_raw_response.create(model="helper", messages=HI)
    assert raw.headers["x-switchyard-tier"] == "1"
    req, (first, second) = spans(mem)
    f = dict(first.attributes)
    assert f["switchyard.tier.index"] == 0 and f["switchyard.source"] == "primary"
    assert f["error.type"] == "429"
    assert f["switchyard.fallback.reason"] == "429(retry in 5s)"
    assert f["switchyard.fallback.class"] == "rate-limited"
    assert f["http.response.status_code"] == 429
    assert first.status.status_code == StatusCode.ERROR
    s = dict(second.attributes)
    assert second.name == "chat backup-model"
    assert s["switchyard.tier.index"] == 1 and s["switchyard.tier.outcome"] == "success" and "error.type" not in s
    assert first.end_time <= second.start_time
    r = dict(req.attributes)
    assert r["switchyard.fallback.reason"] == raw.headers["x-switchyard-fallback-reason"] == "tier0=429(retry in 5s)"
    assert r["switchyard.tier.index"] == 1 and r["switchyard.outcome"] == "success"
    assert req.status.status_code == StatusCode.UNSET
    assert not req.events  # the tier was tried: its span tells it, no skip event


async def test_a_tier_skipped_by_its_open_breaker_is_an_event_on_the_request_span(gateway: GatewayFactory, sim: Simulator) -> None:
    gw, mem = await traced(gateway)
    sim.fault("primary", "503", persistent=True)
    for _ in range(2):  # two failures open the breaker
        await gw.openai().chat.completions.create(model="helper", messages=HI)
    mem.clear()
    raw = await gw.openai().chat.completions.with_raw_response.create(model="helper", messages=HI)
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=breaker-open(retry in 30s)"
    req, (att,) = spans(mem)  # no attempt span for the tier that was not tried
    assert att.attributes["switchyard.tier.index"] == 1
    (ev,) = req.events
    assert ev.name == "switchyard.tier.skipped"
    e = dict(ev.attributes)
    assert e["switchyard.tier.index"] == 0 and e["switchyard.source"] == "primary"
    assert e["switchyard.skipped.reason"] == "breaker-open"
    assert e["switchyard.fallback.class"] == "breaker"
    assert e["switchyard.tier.outcome"] == "breaker-open(retry in 30s)"
    assert req.attributes["switchyard.fallback.reason"] == "tier0=breaker-open(retry in 30s)"


async def test_a_stream_attempt_span_ends_after_the_last_chunk(gateway: GatewayFactory, sim: Simulator) -> None:
    gw, mem = await traced(gateway)
    sim.configure("primary", chunks=5, chunk_delay_ms=60)
    stream = await gw.openai().chat.completions.create(
        model="helper", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    first_chunk_ns = last_chunk_ns = 0
    async for chunk in stream:
        last_chunk_ns = time.time_ns()
        if not first_chunk_ns and chunk.choices and chunk.choices[0].delta.content:
            first_chunk_ns = last_chunk_ns
    req, (att,) = spans(mem)
    assert att.end_time >= first_chunk_ns + 3 * 60_000_000 * 0.9, "the span covers the stream, not just its first byte"
    assert att.end_time <= last_chunk_ns
    a = dict(att.attributes)
    assert a["gen_ai.request.stream"] is True and a["switchyard.tier.outcome"] == "success"
    assert 0 < a["gen_ai.response.time_to_first_chunk"] < (att.end_time - att.start_time) / 1e9
    assert a["gen_ai.usage.output_tokens"] > 0
    assert req.attributes["gen_ai.request.stream"] is True
    assert att.status.status_code == StatusCode.UNSET


async def test_a_stream_broken_after_content_sets_error_status(gateway: GatewayFactory, sim: Simulator) -> None:
    gw, mem = await traced(gateway)
    sim.configure("primary", chunks=6)
    sim.fault("primary", "reset", after_chunks=2)
    stream = await gw.openai().chat.completions.create(model="helper", messages=HI, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    req, (att,) = spans(mem)
    assert att.status.status_code == StatusCode.ERROR
    assert att.attributes["switchyard.tier.outcome"] == "broken-stream"
    assert att.attributes["error.type"] == "connect-error"
    assert req.status.status_code == StatusCode.ERROR
    assert req.attributes["switchyard.outcome"] == "broken-stream"
    assert req.attributes["error.type"] == "broken-stream"


async def test_the_request_span_continues_the_clients_trace_and_the_upstream_joins_it(gateway: GatewayFactory, sim: Simulator) -> None:
    gw, mem = await traced(gateway)
    await gw.openai().chat.completions.create(
        model="helper", messages=HI, extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "vendor=x"}
    )
    req, (att,) = spans(mem)
    assert format(req.context.trace_id, "032x") == TRACE_ID
    assert req.parent is not None and req.parent.is_remote
    assert format(req.parent.span_id, "016x") == PARENT_ID
    (seen,) = sim.requests("primary")
    # the upstream gets the attempt span as its parent: only the W3C headers
    assert seen.headers["traceparent"] == f"00-{TRACE_ID}-{format(att.context.span_id, '016x')}-01"
    assert seen.headers["tracestate"] == "vendor=x"
    assert "baggage" not in {k.lower() for k in seen.headers}


async def test_the_anthropic_sdk_through_a_translated_tier(gateway: GatewayFactory, sim: Simulator) -> None:
    import anthropic

    gw, mem = await traced(gateway, binding("helper", "gem", "primary"))
    sim.fault("gem", "500")
    client = anthropic.AsyncAnthropic(base_url=gw.api, api_key="client-side-key", max_retries=0)
    gw.clients.append(client)
    msg = await client.messages.create(
        model="helper", max_tokens=50, messages=[{"role": "user", "content": SECRET_PROMPT}],
        extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
    )
    assert msg.content
    req, (gem, prim) = spans(mem)
    assert format(req.context.trace_id, "032x") == TRACE_ID
    assert req.attributes["switchyard.ingress"] == "anthropic-messages"
    assert gem.name == "generate_content gem-model"
    assert gem.attributes["gen_ai.provider.name"] == "gcp.gemini" and gem.attributes["switchyard.translated"] is True
    assert gem.attributes["error.type"] == "5xx" and gem.attributes["http.response.status_code"] == 500
    assert prim.attributes["switchyard.translated"] is True and prim.attributes["switchyard.tier.outcome"] == "success"
    nothing_secret(mem)


async def test_a_client_that_sampled_out_its_trace_gets_no_spans_and_the_upstream_keeps_the_decision(
    gateway: GatewayFactory, sim: Simulator
) -> None:
    gw, mem = await traced(gateway)
    sim.fault("primary", "429")
    raw = await gw.openai().chat.completions.with_raw_response.create(
        model="helper", messages=HI, extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"}
    )
    assert raw.headers["x-switchyard-tier"] == "1"
    assert mem.get_finished_spans() == ()  # the SDK's default sampler follows the parent's flag
    (seen,) = sim.requests("backup")
    version, trace_id, _, flags = seen.headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "00")


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        f"00-{'0' * 32}-{PARENT_ID}-01",  # all-zero trace id: invalid
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id: invalid
        f"ff-{TRACE_ID}-{PARENT_ID}-01",  # version ff: invalid
        f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",
    ],
)
async def test_a_malformed_traceparent_starts_a_new_trace_and_is_no_error(gateway: GatewayFactory, sim: Simulator, value: str) -> None:
    gw, mem = await traced(gateway)
    raw = await gw.openai().chat.completions.with_raw_response.create(model="helper", messages=HI, extra_headers={"traceparent": value})
    assert raw.http_response.status_code == 200
    req, (att,) = spans(mem)
    assert req.parent is None
    assert format(req.context.trace_id, "032x") != TRACE_ID
    assert sim.requests("primary")[0].headers["traceparent"].split("-")[1] == format(req.context.trace_id, "032x")


async def test_a_rejected_request_has_its_span_without_a_model_and_no_attempt(gateway: GatewayFactory, sim: Simulator) -> None:
    gw, mem = await traced(gateway)
    with pytest.raises(openai.NotFoundError):
        await gw.openai().chat.completions.create(model="no-such-binding", messages=HI)
    (req,) = mem.get_finished_spans()
    assert req.name == "chat"  # the client's unknown model string is never recorded
    assert "no-such-binding" not in req.to_json()
    assert req.attributes["switchyard.outcome"] == "rejected" and req.attributes["http.response.status_code"] == 404
    assert req.status.status_code == StatusCode.UNSET  # the request's fault, not the gateway's


async def test_the_caller_is_named_as_the_metrics_name_it(gateway: GatewayFactory, sim: Simulator) -> None:
    gw, mem = await traced(gateway)
    await gw.openai().chat.completions.create(model="helper", messages=HI)
    req, _ = spans(mem)
    assert req.attributes["switchyard.caller"] == "openai-sdk"  # known by its User-Agent
    mem.clear()
    # a self-declared name the binding does not list in `callers` is not recorded
    await gw.openai().chat.completions.create(model="helper", messages=HI, extra_headers={"x-switchyard-caller": "my-private-app"})
    req, _ = spans(mem)
    assert req.attributes["switchyard.caller"] == "other"
    assert "my-private-app" not in req.to_json()


async def test_propagation_upstream_can_be_turned_off(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    mem = InMemorySpanExporter()
    gw.runtime.tracing = Tracing.start(TracingSettings(exporters=(), propagate_upstream=False), exporter=mem)
    await gw.openai().chat.completions.create(model="helper", messages=HI, extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert "traceparent" not in {k.lower() for k in sim.requests("primary")[0].headers}
    req, _ = spans(mem)
    assert format(req.context.trace_id, "032x") == TRACE_ID


async def test_spans_reach_an_otlp_http_collector_configured_by_the_standard_env(
    gateway: GatewayFactory, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real OTLP/HTTP exporter, configured only by OTEL_* variables, to a collector
    that decodes what it receives with the OTLP protobuf definitions."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[ExportTraceServiceRequest] = []

    async def collect(request: web.Request) -> web.Response:
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(await request.read())
        received.append(msg)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-under-test")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test,k8s.pod.name=pod-1")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        gw = await gateway(CHAIN)
        gw.runtime.tracing = Tracing.start(settings_from("otlp"))
        await gw.openai().chat.completions.create(model="helper", messages=HI)
        for _ in range(100):
            if sum(len(ss.spans) for m in received for rs in m.resource_spans for ss in rs.scope_spans) >= 2:
                break
            await asyncio.sleep(0.05)
        names = {}
        for m in received:
            for rs in m.resource_spans:
                res = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
                assert res["service.name"] == "gateway-under-test"
                assert res["deployment.environment.name"] == "test" and res["k8s.pod.name"] == "pod-1"
                assert res["service.version"]
                for ss in rs.scope_spans:
                    assert ss.scope.name == "switchyard.sidecar"
                    for s in ss.spans:
                        names[s.name] = s
        assert set(names) == {"chat helper", "chat primary-model"}
        assert names["chat primary-model"].parent_span_id == names["chat helper"].span_id
    finally:
        await runner.cleanup()


OFF_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path.insert(0, "tests")
    import aiohttp
    from harness import KEYS, Mount, binding, load, sources
    from switchyard.compiler import compile_config
    from switchyard.sidecar.app import Listen, Sidecar
    from switchyard.simulator import Simulator

    async def main():
        mounts = [Mount(n, flavour={"claude": "anthropic", "gem": "gemini"}.get(n, "openai"), api_key=k) for n, k in KEYS.items()]
        async with Simulator(*mounts, port=0) as sim:
            config = compile_config(load(sources(sim) + "\\n---\\n" + binding("helper", "primary", "backup"))).config
            sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0))
            sidecar.load(config)
            api, _ = await sidecar.start()
            sim.fault("primary", "429")
            async with aiohttp.ClientSession() as h:
                headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
                for stream in (False, True):
                    body = {"model": "helper", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
                    async with h.post(f"http://127.0.0.1:{api}/v1/chat/completions", json=body, headers=headers) as r:
                        assert r.status == 200, r.status
                        await r.read()
            upstream = [dict(r.headers) for r in sim.requests("backup")]
            await sidecar.stop()
        loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry", "switchyard.sidecar.tracing.")))
        print(json.dumps({"loaded": loaded, "tracing": sidecar.runtime.tracing is None,
                          "upstream_traceparent": [h.get("traceparent") for h in upstream]}))

    asyncio.run(main())
    """
)


def test_tracing_off_loads_no_opentelemetry_and_sends_no_trace_context() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SWITCHYARD_TRACING"))}
    env["PYTHONPATH"] = str(root)
    out = subprocess.run([sys.executable, "-c", OFF_SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["tracing"] is True
    assert result["loaded"] == [], "the request path imported OpenTelemetry with tracing off"
    # off, the client's traceparent is not passed on either (it never was)
    assert result["upstream_traceparent"] == [None, None]
