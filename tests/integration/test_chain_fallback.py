"""The chain, fallback and breaker, driven by the official `openai` SDK over real HTTP.

Upstreams are the simulator's mounts (see conftest.py); every scenario checks what the
client got AND what each upstream received (or did not).
"""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from harness import CLIENT_KEY, KEYS, Gateway, GatewayFactory, binding
from openapi_spec import assert_openapi
from switchyard.simulator import Simulator

CHAIN = binding("helper", "primary", "backup", "claude", extra="  breaker: {consecutiveFailures: 2, cooldownSeconds: 30}")
HI = [{"role": "user", "content": "hi"}]


def client(gw: Gateway) -> AsyncOpenAI:
    return gw.openai()


async def post(gw: Gateway, body: dict, path: str = "/v1/chat/completions") -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as h:
        async with h.post(gw.api + path, json=body) as r:
            return r.status, dict(r.headers), await r.text()


async def chat(gw: Gateway, **kw):
    return await client(gw).chat.completions.with_raw_response.create(model="helper", messages=HI, **kw)


async def test_primary_serves_with_its_own_key_and_model(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    raw = await chat(gw)
    completion = raw.parse()
    assert raw.headers["x-switchyard-binding"] == "helper"
    assert raw.headers["x-switchyard-tier"] == "0"
    assert raw.headers["x-switchyard-source"] == "primary"
    assert raw.headers["x-switchyard-model"] == "primary-model"
    assert "x-switchyard-fallback-reason" not in raw.headers
    assert completion.choices[0].message.content
    assert_openapi("CreateChatCompletionResponse", json.loads(raw.content))
    (seen,) = sim.requests("primary")
    assert seen.body["model"] == "primary-model"
    assert seen.body["messages"] == HI
    assert seen.headers["authorization"] == f"Bearer {KEYS['primary']}"
    assert CLIENT_KEY not in json.dumps(dict(seen.headers))
    assert sim.count("backup") == 0


async def test_unknown_fields_survive_the_same_protocol_path(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    await chat(gw, extra_body={"vendor_knob": {"deep": [1, 2]}, "store": False})
    (seen,) = sim.requests("primary")
    assert seen.body["vendor_knob"] == {"deep": [1, 2]} and seen.body["store"] is False


async def test_429_falls_through_to_fallback_1(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "429", retry_after=5)
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-source"] == "backup"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=429(retry in 5s)"
    assert raw.parse().choices[0].message.content
    assert sim.requests("backup")[0].headers["authorization"] == f"Bearer {KEYS['backup']}"


async def test_500_then_429_reach_fallback_2_translated_to_anthropic(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "500")
    sim.fault("backup", "429")
    raw = await client(gw).chat.completions.with_raw_response.create(
        model="helper",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_tokens=50,
        temperature=1.5,
        stop=["END"],
    )
    assert raw.headers["x-switchyard-tier"] == "2"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=500, tier1=429"
    body = json.loads(raw.content)
    assert_openapi("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["content"].startswith("Simulated anthropic")
    (seen,) = sim.requests("claude")
    assert seen.path.endswith("/v1/messages")
    assert seen.headers["x-api-key"] == KEYS["claude"]
    assert seen.headers["anthropic-version"]
    assert seen.body["model"] == "claude-model"
    assert seen.body["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    assert seen.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}] or seen.body[
        "messages"
    ] == [{"role": "user", "content": "hi"}]
    assert seen.body["max_tokens"] == 50
    assert seen.body["temperature"] == 1.0  # clamped to Anthropic's range
    assert seen.body["stop_sequences"] == ["END"]


async def test_a_hang_times_out_and_falls_back(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN, timeouts="{connectSeconds: 1, firstByteSeconds: 0.5, totalSeconds: 5}")
    sim.fault("primary", "hang")
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=timeout(first-byte)"


async def test_a_stream_that_hangs_before_content_times_out_and_falls_back(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN, timeouts="{connectSeconds: 1, firstByteSeconds: 0.5, totalSeconds: 5}")
    sim.fault("primary", "hang", after_chunks=0)
    stream = await client(gw).chat.completions.create(model="helper", messages=HI, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "Simulated" in text
    assert sim.count("backup") == 1


@pytest.mark.parametrize("mode", ["zero", "envelope"])
async def test_an_empty_200_stream_is_never_a_success(gateway: GatewayFactory, sim: Simulator, mode: str) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "empty", mode=mode)
    raw = await client(gw).chat.completions.with_raw_response.create(model="helper", messages=HI, stream=True)
    assert raw.headers["x-switchyard-tier"] == "1"
    reason = raw.headers["x-switchyard-fallback-reason"]
    assert reason.startswith("tier0=empty-response(")
    chunks = [c async for c in raw.parse()]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("mode", ["zero", "envelope"])
async def test_an_empty_200_body_is_never_a_success(gateway: GatewayFactory, sim: Simulator, mode: str) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "empty", mode=mode)
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"].startswith("tier0=empty-response(")


async def test_malformed_json_from_upstream_falls_back(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "malformed")
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=empty-response(malformed)"


async def test_connection_refused_falls_back(gateway: GatewayFactory, sim: Simulator) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = f"""apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: dead}}
spec: {{provider: openai-compatible, baseURL: "http://127.0.0.1:{port}/v1", defaultModel: m}}
---
"""
    gw = await gateway(dead + binding("helper", "dead", "backup"))
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=connect-error(refused)"


async def test_breaker_opens_and_the_primary_gets_no_traffic_during_cooldown(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "503", persistent=True)
    for _ in range(2):
        assert (await chat(gw)).headers["x-switchyard-tier"] == "1"
    assert sim.count("primary") == 2
    for _ in range(5):
        raw = await chat(gw)
        assert raw.headers["x-switchyard-tier"] == "1"
        assert raw.headers["x-switchyard-fallback-reason"] == "tier0=breaker-open(retry in 30s)"
    assert sim.count("primary") == 2, "an open breaker sends nothing to its tier"
    async with aiohttp.ClientSession() as h:
        async with h.get(gw.admin + "/admin/status") as r:
            status = await r.json()
        async with h.get(gw.admin + "/metrics") as r:
            metrics = await r.text()
    tier0 = status["bindings"][0]["tiers"][0]
    assert tier0["breaker"]["state"] == "open"
    assert 'switchyard_breaker_state{binding="helper",source="primary",state="open",tier="0"} 1.0' in metrics
    assert 'switchyard_breaker_transitions_total{binding="helper",source="primary",tier="0",to_state="open"} 1.0' in metrics
    assert status["bindings"][0]["last_used"]["tier"] == 1


async def test_recovery_is_checked_without_a_prompt_then_a_trial_closes_the_breaker(
    gateway: GatewayFactory, sim: Simulator
) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "503", times=2)
    await chat(gw)
    await chat(gw)
    gw.clock.advance(31)  # cooldown over
    assert await gw.runtime.prober.run_due() == 1
    (check,) = [r for r in sim.requests("primary") if r.method == "GET"]
    assert check.path.endswith("/v1/models") and check.headers["authorization"] == f"Bearer {KEYS['primary']}"
    health = gw.runtime.breakers.items()[0][1]
    assert health.state.value == "half-open"
    raw = await chat(gw)  # the trial
    assert raw.headers["x-switchyard-tier"] == "0"
    assert health.state.value == "closed"
    assert [t.to_state for t in health.transitions] == ["open", "half-open", "closed"]


async def test_a_failed_recovery_check_costs_no_user_request(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "503", persistent=True, endpoint="any")
    await chat(gw)
    await chat(gw)
    prompts = sum(1 for r in sim.requests("primary") if r.method == "POST")
    gw.clock.advance(31)
    raw = await chat(gw)  # finds the check due: kicks it and goes on to the next tier
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=breaker-probing"
    await gw.runtime.prober.wait_idle()
    health = gw.runtime.breakers.items()[0][1]
    assert health.state.value == "open" and health.open_until == gw.clock.now + 60  # re-armed, doubled
    gw.clock.advance(61)
    assert await gw.runtime.prober.run_due() == 1
    assert health.open_until == gw.clock.now + 120  # doubled again: 30 * 2**2
    assert sum(1 for r in sim.requests("primary") if r.method == "POST") == prompts, "no user request spent"


async def test_a_failed_trial_reopens_the_breaker_with_backoff(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "503", times=3)
    await chat(gw)
    await chat(gw)
    gw.clock.advance(31)
    await gw.runtime.prober.run_due()
    raw = await chat(gw)  # the trial fails
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=503"
    raw = await chat(gw)
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=breaker-open(retry in 60s)"
    assert sum(1 for r in sim.requests("primary") if r.method == "POST") == 3


async def test_probe_none_sends_the_trial_straight_after_the_cooldown(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary", "backup", extra="  breaker: {consecutiveFailures: 1, probe: none}"))
    sim.fault("primary", "503")
    await chat(gw)
    gw.clock.advance(31)
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "0"
    assert not [r for r in sim.requests("primary") if r.method == "GET"]


async def test_retry_after_keeps_the_tier_out_for_that_long(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "429", retry_after=20)
    await chat(gw)
    gw.clock.advance(10)
    raw = await chat(gw)
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=rate-limited(retry in 10s)"
    assert sim.count("primary") == 1
    gw.clock.advance(11)
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "0"
    assert sim.count("primary") == 2


async def test_all_tiers_down_is_a_protocol_shaped_error_listing_each_tier(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "503")
    sim.fault("backup", "500")
    sim.fault("claude", "529")
    with pytest.raises(openai.APIStatusError) as info:
        await chat(gw)
    err = info.value
    assert err.status_code == 503
    body = err.response.json()
    assert body["error"]["code"] == "all_tiers_failed"
    assert body["error"]["type"] == "server_error"
    assert "tier0=503; tier1=500; tier2=529" in body["error"]["message"]
    assert [t["outcome"] for t in body["switchyard"]["tiers"]] == ["503", "500", "529"]
    assert err.response.headers["x-switchyard-fallback-reason"] == "tier0=503, tier1=500, tier2=529"


async def test_all_tiers_rate_limited_answers_429_with_the_shortest_wait(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary", "backup"))
    sim.fault("primary", "429", retry_after=30)
    sim.fault("backup", "429", retry_after=7)
    with pytest.raises(openai.RateLimitError) as info:
        await chat(gw)
    assert info.value.response.headers["retry-after"] == "7"


async def test_unbound_binding_is_a_clear_error_and_calls_nobody(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", None, "backup"))
    with pytest.raises(openai.APIStatusError) as info:
        await chat(gw)
    assert info.value.status_code == 503
    assert info.value.response.json()["error"]["code"] == "binding_unbound"
    assert sum(sim.count(m) for m in KEYS) == 0


async def test_mid_stream_reset_ends_with_an_error_event_never_done(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    sim.configure("primary", chunks=6)
    sim.fault("primary", "reset", after_chunks=2)
    status, headers, text = await post(gw, {"model": "helper", "messages": HI, "stream": True})
    assert status == 200 and headers["x-switchyard-tier"] == "0"
    events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert last["error"]["type"] == "server_error"
    assert any(json.loads(e).get("choices") for e in events[:-1]), "content came first"
    for e in events[:-1]:
        assert_openapi("CreateChatCompletionStreamResponse", json.loads(e))
    # the official SDK surfaces it as an error, not as a finished answer
    sim.fault("primary", "reset", after_chunks=2)
    stream = await client(gw).chat.completions.create(model="helper", messages=HI, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


async def test_streaming_answers_validate_against_the_spec(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "429")  # served by backup: same protocol, raw bytes relayed
    sim.fault("backup", "429")  # ... then by claude: translated
    _, headers, text = await post(
        gw, {"model": "helper", "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert headers["x-switchyard-tier"] == "2"
    events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for c in chunks:
        assert_openapi("CreateChatCompletionStreamResponse", c)
    assert chunks[-1]["usage"]["completion_tokens"] > 0 and chunks[-1]["choices"] == []
    assert any(c["choices"] and c["choices"][0]["finish_reason"] == "stop" for c in chunks)


async def test_an_upstream_400_is_passed_back_not_fallen_back(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(CHAIN)
    sim.fault("primary", "400", message="context too long")
    with pytest.raises(openai.BadRequestError) as info:
        await chat(gw)
    assert "context too long" in info.value.response.json()["error"]["message"]
    assert sim.count("backup") == 0
    assert gw.runtime.breakers.items()[0][1].consecutive_failures == 0


async def test_a_401_on_our_key_falls_back_and_is_never_shown_as_the_clients(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary", "backup"))
    sim.fault("primary", "401", endpoint="any", times=2)  # the request, then the check that confirms it
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=401"
    await gw.runtime.prober.wait_idle()
    sim.fault("backup", "401")
    with pytest.raises(openai.APIStatusError) as info:
        await chat(gw)
    assert info.value.status_code == 502
    assert info.value.response.headers["x-switchyard-fallback-reason"] == "tier0=disabled(401), tier1=401"


async def test_a_tier_whose_call_cannot_be_sent_is_passed_over(gateway: GatewayFactory, sim: Simulator) -> None:
    """Issue 15, attack 6: a control character in a source's headers passed the checks of
    the day, then every request was a 500 and the healthy fallback was never tried. The
    CRD and the compiler refuse it now; a pushed config is hostile all the same, so a
    call that cannot be sent is a connect error of that tier and the chain goes on."""
    gw = await gateway(binding("helper", "primary", "backup"))
    config = gw.runtime.snapshot.config
    b = config.bindings[0]
    bad = b.tiers[0].model_copy(update={"headers": {"X-Team": "a\r\nX-Injected: 1"}})
    gw.runtime.install(config.model_copy(update={"bindings": [b.model_copy(update={"tiers": [bad, b.tiers[1]]})]}).with_version())
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"].startswith("tier0=connect-error(")
    assert sim.count("primary") == 0


async def test_a_full_connection_pool_is_not_the_tiers_fault(gateway: GatewayFactory, sim: Simulator) -> None:
    """Issue 15, attack 4: 290 concurrent streams to one origin (pool of 256) gave 34 x 504
    timeout(connect) and opened the breaker on a healthy upstream. The pool is a setting
    per ModelSource (spec.network.maxConnections); waiting for a slot is not a tier
    fault: the request moves on (here to the fallback), the breaker stays closed."""
    gw = await gateway(binding("helper", "primary", "backup"))
    config = gw.runtime.snapshot.config
    b = config.bindings[0]
    small = b.tiers[0].model_copy(update={"max_connections": 2})
    gw.runtime.install(config.model_copy(update={"bindings": [b.model_copy(update={"tiers": [small, b.tiers[1]]})]}).with_version())
    sim.configure("primary", chunks=4, chunk_delay_ms=700)  # each primary stream holds its slot ~3 s
    client = gw.openai()

    async def one() -> tuple[str, str]:
        raw = await client.chat.completions.with_raw_response.create(model="helper", messages=HI, stream=True)
        async for _ in raw.parse():
            pass
        return raw.headers["x-switchyard-tier"], raw.headers.get("x-switchyard-fallback-reason", "")

    served = await asyncio.gather(*(one() for _ in range(6)))
    assert sorted(t for t, _ in served) == ["0", "0", "1", "1", "1", "1"], served
    assert all(reason.startswith("tier0=busy(") for t, reason in served if t == "1"), served
    health = gw.runtime.breakers.items()[0][1]
    assert health.state.value == "closed" and health.consecutive_failures == 0


async def test_every_tier_busy_is_a_retryable_503_in_the_callers_protocol(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary"))
    config = gw.runtime.snapshot.config
    b = config.bindings[0]
    gw.runtime.install(config.model_copy(update={"bindings": [b.model_copy(update={
        "tiers": [b.tiers[0].model_copy(update={"max_connections": 1})]})]}).with_version())
    sim.configure("primary", chunks=4, chunk_delay_ms=900)  # the one slot is held ~3.6 s > the 2 s wait

    async def one() -> tuple[int, dict[str, str], bytes]:
        async with aiohttp.ClientSession() as s:
            async with s.post(gw.api + "/v1/chat/completions", json={"model": "helper", "messages": HI, "stream": True}) as r:
                return r.status, dict(r.headers), await r.read()

    results = await asyncio.gather(*(one() for _ in range(2)))
    statuses = sorted(s for s, _, _ in results)
    assert statuses == [200, 503], statuses
    _, headers, body = next(r for r in results if r[0] == 503)
    assert json.loads(body)["error"]["code"] == "gateway_busy" and headers["Retry-After"] == "1"
    assert gw.runtime.breakers.items()[0][1].consecutive_failures == 0


@pytest.mark.parametrize("limit", ["tier", "request"])
async def test_a_deadline_during_a_stream_ends_it_with_an_error_event(gateway: GatewayFactory, sim: Simulator, limit: str) -> None:
    """The stream's total time limit (the tier's totalSeconds, or the request's deadline)
    passing after content started: the client gets the content so far and a timeout
    error event, never a clean end; the tier's own limit is held against it."""
    gw = await gateway(CHAIN, timeouts="{connectSeconds: 1, firstByteSeconds: 0.5, totalSeconds: %s}" % (
        "0.8" if limit == "tier" else "30"))
    sim.configure("primary", chunks=6)
    sim.fault("primary", "hang", after_chunks=2)
    body = {"model": "helper", "messages": HI, "stream": True}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as h:
        headers = {"x-switchyard-deadline-seconds": "0.8"} if limit == "request" else {}
        async with h.post(gw.api + "/v1/chat/completions", json=body, headers=headers) as r:
            status, text = r.status, await r.text()
    assert status == 200
    events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert last["error"]["type"] == "timeout_error"
    assert ("deadline ran out" if limit == "request" else "exceeded its time limit") in last["error"]["message"]
    assert any(json.loads(e).get("choices") for e in events[:-1]), "content came first"
    health = gw.runtime.breakers.items()[0][1]
    assert health.consecutive_failures == (1 if limit == "tier" else 0), "a spent request deadline is nobody's fault"
