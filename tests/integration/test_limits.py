"""spec.limits over real HTTP: the official SDKs get a 429 they read as a RateLimitError,
with Retry-After; no upstream is called and no tier's health moves; per-caller limits;
a token limit refuses the request after the one that crossed it; several sidecars share
one limit through the config bundle's pod count (docs/limits.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from harness import CLIENT_KEY, Gateway, GatewayFactory, binding
from switchyard.operator.health import aggregate_limits
from switchyard.sidecar.contract.delivery import BUNDLE_KEY, BundleEntry, ConfigBundle, Selector
from switchyard.sidecar.contract.report import parse_report
from switchyard.sidecar.files import ConfigFiles
from switchyard.sidecar.state import binding_key
from switchyard.simulator import Simulator

T0 = 1_700_000_040.0  # a UTC minute boundary


class Wall:
    def __init__(self) -> None:
        self.now = T0 + 1

    def __call__(self) -> float:
        return self.now


def limited(name: str, limits: str) -> str:
    return binding(name, "primary", "backup", extra=f"  limits: {limits}")


async def start(gateway: GatewayFactory, bindings: str) -> Gateway:
    gw = await gateway(bindings)
    gw.runtime.limits.clock = Wall()
    return gw


def posts(sim: Simulator, mount: str) -> int:
    return sum(1 for r in sim.requests(mount) if r.method == "POST")


def untouched(gw: Gateway, name: str) -> None:
    """No tier of the binding has any breaker record: nothing was counted against a tier."""
    snap = gw.runtime.snapshot
    assert snap is not None
    b = snap.by_name[name]
    for t in b.tiers:
        h = gw.runtime.breakers.peek(binding_key(b), t.key)
        assert h is None or (h.state.value == "closed" and h.consecutive_failures == 0 and not h.transitions), h


async def test_openai_sdk_gets_a_rate_limit_error_with_retry_after_and_no_tier_is_tried(
    gateway: GatewayFactory, sim: Simulator, logs: Any
) -> None:
    gw = await start(gateway, limited("metered", "{requestsPerMinute: 2}"))
    client = gw.openai()
    for _ in range(2):
        await client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "hi"}])
    assert posts(sim, "primary") == 2
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "hi"}])
    resp = info.value.response
    assert resp.status_code == 429
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.headers["x-switchyard-binding"] == "metered"
    assert resp.headers["x-switchyard-limited"] == "requestsPerMinute"
    assert "x-switchyard-tier" not in resp.headers
    body = resp.json()
    assert body["error"]["type"] == "rate_limit_error" and body["error"]["code"] == "rate_limited"
    assert "requestsPerMinute" in body["error"]["message"] and CLIENT_KEY not in resp.text
    # Nothing sent upstream, no tier touched, no fallback counted.
    assert posts(sim, "primary") == 2 and posts(sim, "backup") == 0
    untouched(gw, "metered")
    async with aiohttp.ClientSession() as s, s.get(gw.admin + "/metrics") as r:
        text = await r.text()
    assert 'switchyard_limited_requests_total{binding="metered",limit="requestsPerMinute"} 1.0' in text
    assert 'switchyard_fallbacks_total{binding="metered"' not in text
    assert 'outcome="limited"' in text
    (line,) = [r.switchyard for r in logs.records if getattr(r, "switchyard", {}).get("outcome") == "limited"]
    assert line["limit"] == "requestsPerMinute" and line["status"] == 429 and line["tier"] is None


async def test_anthropic_sdk_gets_a_rate_limit_error_in_its_own_shape(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await start(gateway, limited("metered", "{requestsPerMinute: 1}"))
    client = anthropic.AsyncAnthropic(base_url=gw.api, api_key=CLIENT_KEY, max_retries=0, timeout=20)
    gw.clients.append(client)
    await client.messages.create(model="metered", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as info:
        await client.messages.create(model="metered", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    resp = info.value.response
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert posts(sim, "primary") == 1
    untouched(gw, "metered")


async def test_per_caller_limit_refuses_one_caller_and_serves_another(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await start(gateway, limited("metered", "{requestsPerMinute: 10, perCaller: {requestsPerMinute: 1}}"))
    async with aiohttp.ClientSession() as s:
        async def call(caller: str) -> aiohttp.ClientResponse:
            async with s.post(gw.api + "/v1/chat/completions", headers={"x-switchyard-caller": caller},
                              json={"model": "metered", "messages": [{"role": "user", "content": "hi"}]}) as r:
                await r.read()
                return r

        assert (await call("batch-job")).status == 200
        r = await call("batch-job")
        assert r.status == 429 and r.headers["x-switchyard-limited"] == "perCaller.requestsPerMinute"
        assert (await call("codex")).status == 200
        # Made-up names no binding lists share one allowance ("other"): batch-job had it.
        assert (await call("another-made-up-name")).status == 429
    assert posts(sim, "primary") == 2


async def test_token_limit_is_enforced_on_the_next_request(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await start(gateway, limited("metered", "{tokensPerMinute: 5}"))
    client = gw.openai()
    first = await client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "hello there"}])
    assert first.usage is not None and first.usage.total_tokens > 5  # served: its tokens were not known before
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "hi"}])
    assert info.value.response.headers["x-switchyard-limited"] == "tokensPerMinute"
    assert posts(sim, "primary") == 1
    # A minute and more later the window has forgotten them.
    gw.runtime.limits.clock.now += 125  # type: ignore[attr-defined]
    await client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "hi"}])


async def test_daily_budget_refusal_says_budget_exhausted(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await start(gateway, limited("metered", "{tokensPerDay: 3}"))
    client = gw.openai()
    await client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "hello"}])
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "hi"}])
    body = info.value.response.json()
    assert body["error"]["code"] == "budget_exhausted" and "00:00 UTC" in body["error"]["message"]


async def test_three_sidecars_share_a_30_rpm_limit_and_admit_at_most_30(
    gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    """Each pod reads the bundle's pod count (3) and enforces 30 / 3; 45 requests spread
    evenly get 30 answers; the operator's sum of the three reports says 30 used."""
    text = limited("metered", "{requestsPerMinute: 30}")
    gws = [await start(gateway, text) for _ in range(3)]
    config = gws[0].runtime.snapshot.config  # type: ignore[union-attr]
    bundle = ConfigBundle(namespace="default", pods={"metered": 3}, bindings=[
        BundleEntry(selector=Selector(match_labels={"app": "metered"}), binding=b) for b in config.bindings
    ]).with_version()
    (tmp_path / BUNDLE_KEY).write_bytes(bundle.to_file())
    (tmp_path / "labels").write_text('app="metered"\n')
    for gw in gws:
        ConfigFiles(gw.runtime, tmp_path, tmp_path / "labels").load()
        assert gw.runtime.snapshot.config.version == config.version  # type: ignore[union-attr]  # pods is not in it

    statuses: list[int] = []
    async with aiohttp.ClientSession() as s:
        for i in range(45):
            gw = gws[i % 3]
            async with s.post(gw.api + "/v1/chat/completions",
                              json={"model": "metered", "messages": [{"role": "user", "content": "hi"}]}) as r:
                await r.read()
                statuses.append(r.status)
        reports = []
        for gw in gws:
            async with s.get(gw.admin + "/admin/status") as r:
                reports.append(parse_report(await r.json()))
    assert statuses.count(200) == 30 and statuses.count(429) == 15
    assert posts(sim, "primary") == 30
    usage = aggregate_limits("default", "metered", reports, now=T0 + 2)
    rpm = usage.windows["requestsPerMinute"]
    assert (rpm.limit, rpm.used, rpm.reporting_pods) == (30, 30, 3)


async def test_uneven_traffic_admits_less_than_the_limit(gateway: GatewayFactory, sim: Simulator) -> None:
    """A pod's unused share is not lent: all traffic on one of three pods gets its 10."""
    gws = [await start(gateway, limited("metered", "{requestsPerMinute: 30}")) for _ in range(3)]
    for gw in gws:
        gw.runtime.limits.share("default", {"metered": 3})
    client = gws[0].openai()
    ok = 0
    for _ in range(15):
        try:
            await client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "hi"}])
            ok += 1
        except openai.RateLimitError:
            pass
    assert ok == 10


async def test_embeddings_requests_count_against_the_same_limit(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await start(gateway, limited("metered", "{requestsPerMinute: 1}"))
    client = gw.openai()
    await client.embeddings.create(model="metered", input="hello")
    with pytest.raises(openai.RateLimitError) as info:
        await client.embeddings.create(model="metered", input="hello")
    assert info.value.response.headers["x-switchyard-limited"] == "requestsPerMinute"
    assert posts(sim, "primary") == 1


async def test_google_genai_gets_resource_exhausted(gateway: GatewayFactory, sim: Simulator) -> None:
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types

    gw = await start(gateway, limited("metered", "{requestsPerMinute: 1}"))
    client = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(
        base_url=gw.api, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)))
    await client.aio.models.generate_content(model="metered", contents="hi")
    with pytest.raises(genai_errors.ClientError) as info:
        await client.aio.models.generate_content(model="metered", contents="hi")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    assert posts(sim, "primary") == 1


async def test_tokens_of_a_streamed_answer_count_too(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await start(gateway, limited("metered", "{tokensPerMinute: 5}"))
    client = gw.openai()
    # OpenAI chat to an OpenAI tier is relayed as is: the upstream reports usage in a
    # stream only when the client asks for it (docs/limits.md, "Not done").
    stream = await client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "hello there"}],
                                                  stream=True, stream_options={"include_usage": True})
    async for _ in stream:
        pass
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="metered", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert posts(sim, "primary") == 1


async def test_embeddings_input_tokens_count_against_a_token_limit(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await start(gateway, limited("metered", "{tokensPerMinute: 1}"))
    client = gw.openai()
    first = await client.embeddings.create(model="metered", input="hello there, general kenobi")
    assert first.usage.prompt_tokens > 1
    with pytest.raises(openai.RateLimitError) as info:
        await client.embeddings.create(model="metered", input="hello")
    assert info.value.response.headers["x-switchyard-limited"] == "tokensPerMinute"
