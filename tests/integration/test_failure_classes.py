"""Failure classes against each provider's emulator, prompt-free recovery, the deadline.

Each binding here has one tier on the provider under test and a healthy fallback, so
every scenario checks both what the client saw and what the failing tier got after.
"""

from __future__ import annotations

import aiohttp
import openai
import pytest

from harness import CLIENT_KEY, KEYS, Gateway, GatewayFactory, binding, load, sources
from switchyard.compiler import compile_config
from switchyard.simulator import RawReply, Simulator

HI = [{"role": "user", "content": "hi"}]
MOUNTS = ["primary", "claude", "gem"]  # OpenAI, Anthropic and Gemini wire formats


async def chat(gw: Gateway, **kw):
    return await gw.openai().chat.completions.with_raw_response.create(model="helper", messages=HI, **kw)


def posts(sim: Simulator, mount: str) -> int:
    """User requests a mount received (recovery checks are GETs)."""
    return sum(1 for r in sim.requests(mount) if r.method == "POST")


@pytest.mark.parametrize("mount", MOUNTS)
@pytest.mark.parametrize("status", ["401", "403", "404"])
async def test_permanent_failures_disable_the_tier_until_its_config_changes(
    gateway: GatewayFactory, sim: Simulator, mount: str, status: str
) -> None:
    gw = await gateway(binding("helper", mount, "backup"))
    # The tier's key refused (or its model gone) everywhere: the prompt-free check agrees.
    sim.fault(mount, status, persistent=True, endpoint="any")
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"] == f"tier0={status}"
    await gw.runtime.prober.wait_idle()  # the confirming check
    for _ in range(3):
        raw = await chat(gw)
        assert raw.headers["x-switchyard-fallback-reason"] == f"tier0=disabled({status})"
    gw.clock.advance(3600)
    assert await gw.runtime.prober.run_due() == 0, "a disabled tier is not probed either"
    assert posts(sim, mount) == 1
    # The same config pushed again changes nothing; a rotated key re-enables the tier.
    gw.runtime.install(gw.runtime.snapshot.config.model_copy(update={"version": "same-content"}))
    assert (await chat(gw)).headers["x-switchyard-fallback-reason"] == f"tier0=disabled({status})"
    sim.clear_faults(mount)
    text = sources(sim).replace(KEYS[mount], KEYS[mount] + "-rotated") + "\n---\n" + binding("helper", mount, "backup")
    sim.mount(mount).api_key = KEYS[mount] + "-rotated"
    gw.runtime.install(compile_config(load(text)).config)
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "0"


@pytest.mark.parametrize("mount", MOUNTS)
@pytest.mark.parametrize("status", ["401", "403"])
async def test_a_refusal_the_check_does_not_confirm_leaves_the_tier_in_service(
    gateway: GatewayFactory, sim: Simulator, mount: str, status: str
) -> None:
    """Issue 15: one request's 401/403 disabled the tier for every caller; now the tier's
    key is checked without a prompt first, and a key that works keeps the tier."""
    gw = await gateway(binding("helper", mount, "backup"))
    sim.fault(mount, status)  # this one generation request only
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1" and raw.headers["x-switchyard-fallback-reason"] == f"tier0={status}"
    await gw.runtime.prober.wait_idle()
    assert (await chat(gw)).headers["x-switchyard-tier"] == "0"
    metrics = gw.runtime.metrics.registry.get_sample_value(
        "switchyard_probes_total", {"binding": "helper", "tier": "0", "source": mount, "outcome": "not-confirmed"})
    assert metrics == 1.0


@pytest.mark.parametrize("mount", MOUNTS)
async def test_one_clients_404_for_something_else_is_that_clients_error(gateway: GatewayFactory, sim: Simulator, mount: str) -> None:
    """Issue 15: a request naming a file id that does not exist got a 404, and every later
    request, from anyone, got tier0=disabled(404)."""
    gw = await gateway(binding("helper", mount, "backup"))
    sim.fault(mount, "404", message="No such File object: file-doesnotexist")
    with pytest.raises(openai.NotFoundError) as info:
        await chat(gw)
    assert "file-doesnotexist" in info.value.message
    assert sim.count("backup") == 0, "not a tier fault: no fallback either"
    await gw.runtime.prober.wait_idle()
    raw = await chat(gw)  # another client, a moment later
    assert raw.headers["x-switchyard-tier"] == "0" and "x-switchyard-fallback-reason" not in raw.headers
    assert gw.runtime.breakers.items()[0][1].state.value == "closed"


async def test_gemini_invalid_key_400_counts_as_the_tiers_key_not_the_client(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "gem", "backup"))
    sim.mount("gem").api_key = "some-other-key"  # Gemini answers a wrong key with 400 API_KEY_INVALID
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=400"
    await gw.runtime.prober.wait_idle()  # the check is refused too: confirmed
    assert (await chat(gw)).headers["x-switchyard-fallback-reason"] == "tier0=disabled(400)"


HINTS = {
    "retry-after": {"retry_after": 12},
    "retry-after-ms": {"retry_after_ms": 12000},
    "http-date": {"retry_after_date": 12},
    "native-hint": {"reset_after": 12},  # x-ratelimit-reset-*, anthropic-ratelimit-*-reset, Gemini RetryInfo
}
# Gemini states its wait only in the body (RetryInfo), so it has the native form only.
RATE_CASES = [(m, h) for m in MOUNTS for h in HINTS if m != "gem" or h == "native-hint"]


@pytest.mark.parametrize(("mount", "form"), RATE_CASES)
async def test_rate_limits_skip_the_tier_for_the_wait_asked(
    gateway: GatewayFactory, sim: Simulator, mount: str, form: str
) -> None:
    hint = HINTS[form]
    gw = await gateway(binding("helper", mount, "backup"))
    sim.fault(mount, "429", **hint)
    raw = await chat(gw)
    assert raw.headers["x-switchyard-fallback-reason"].startswith("tier0=429(retry in ")
    wait = int(raw.headers["x-switchyard-fallback-reason"].split("retry in ")[1].rstrip("s)"))
    assert 10 <= wait <= 13
    gw.clock.advance(6)
    raw = await chat(gw)
    assert raw.headers["x-switchyard-fallback-reason"].startswith("tier0=rate-limited(retry in ")
    health = gw.runtime.breakers.items()[0][1]
    assert health.state.value == "closed" and health.consecutive_failures == 0, "not counted toward the breaker"
    gw.clock.advance(8)
    assert (await chat(gw)).headers["x-switchyard-tier"] == "0"
    assert posts(sim, mount) == 2


async def test_quota_errors_are_rate_limits_and_the_wait_is_capped(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary", "backup", extra="  breaker: {maxRetryAfterSeconds: 60}"))
    quota = {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}
    sim.script("primary", RawReply(status=429, body=quota, headers={"retry-after": "86400"}))
    raw = await chat(gw)
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=429(retry in 86400s)"
    gw.clock.advance(59)
    assert (await chat(gw)).headers["x-switchyard-fallback-reason"] == "tier0=rate-limited(retry in 1s)"
    gw.clock.advance(2)
    assert (await chat(gw)).headers["x-switchyard-tier"] == "0"


@pytest.mark.parametrize("mount", MOUNTS)
@pytest.mark.parametrize(
    ("fault", "options", "trail"),
    [("500", {}, "500"), ("503", {}, "503"), ("reset", {}, "connect-error(reset)"), ("empty", {}, "empty-response(no content)")],
)
async def test_transient_failures_count_toward_the_breaker(
    gateway: GatewayFactory, sim: Simulator, mount: str, fault: str, options: dict, trail: str
) -> None:
    gw = await gateway(binding("helper", mount, "backup", extra="  breaker: {consecutiveFailures: 2}"))
    sim.fault(mount, fault, persistent=True, **options)
    assert (await chat(gw)).headers["x-switchyard-fallback-reason"] == f"tier0={trail}"
    assert (await chat(gw)).headers["x-switchyard-fallback-reason"] == f"tier0={trail}"
    assert (await chat(gw)).headers["x-switchyard-fallback-reason"] == "tier0=breaker-open(retry in 30s)"
    assert posts(sim, mount) == 2


@pytest.mark.parametrize("mount", MOUNTS)
async def test_recovery_checks_use_each_providers_model_endpoint_with_the_tiers_key(
    gateway: GatewayFactory, sim: Simulator, mount: str
) -> None:
    gw = await gateway(binding("helper", mount, "backup", extra="  breaker: {consecutiveFailures: 1}"))
    sim.fault(mount, "503")
    await chat(gw)
    gw.clock.advance(31)
    assert await gw.runtime.prober.run_due() == 1
    (check,) = [r for r in sim.requests(mount) if r.method == "GET"]
    expected = {"primary": "/v1/models", "claude": "/v1/models", "gem": "/v1beta/models/gem-model"}[mount]
    assert check.path.endswith(expected)
    assert KEYS[mount] in str(dict(check.headers))
    assert check.body is None or check.body == {}
    assert (await chat(gw)).headers["x-switchyard-tier"] == "0"


async def test_a_check_refused_for_the_key_disables_the_tier(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "claude", "backup", extra="  breaker: {consecutiveFailures: 1}"))
    sim.fault("claude", "503")
    await chat(gw)
    sim.fault("claude", "401", endpoint="models")
    gw.clock.advance(31)
    await gw.runtime.prober.run_due()
    health = gw.runtime.breakers.items()[0][1]
    assert health.state.value == "disabled" and health.last_failure == "check: 401"
    assert (await chat(gw)).headers["x-switchyard-fallback-reason"] == "tier0=disabled(401)"
    assert posts(sim, "claude") == 1


async def test_admin_reset_puts_a_disabled_tier_back(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary", "backup"))
    sim.fault("primary", "401", endpoint="any", times=2)  # the request, then the confirming check
    await chat(gw)
    await gw.runtime.prober.wait_idle()
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.admin + "/admin/status") as r:
            tier0 = (await r.json())["bindings"][0]["tiers"][0]["breaker"]
        assert tier0["state"] == "disabled" and tier0["disabled_reason"] == "401"
        async with s.post(gw.admin + "/admin/bindings/helper/reset?tier=0") as r:
            assert (await r.json())["reset"] == [0]
        async with s.get(gw.admin + "/metrics") as r:
            metrics = await r.text()
    assert 'switchyard_breaker_state{binding="helper",source="primary",state="closed",tier="0"} 1.0' in metrics
    assert 'switchyard_breaker_transitions_total{binding="helper",source="primary",tier="0",to_state="disabled"} 1.0' in metrics
    assert (await chat(gw)).headers["x-switchyard-tier"] == "0"


# ------------------------------------------------------------------------ deadline

SLOW = "{connectSeconds: 2, firstByteSeconds: 30, totalSeconds: 60}"


async def test_a_hang_on_tier0_leaves_time_for_the_healthy_tiers(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary", "backup", "claude", extra="  deadlineSeconds: 3"), timeouts=SLOW)
    sim.fault("primary", "hang")
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=deadline(share)"
    health = gw.runtime.breakers.items()[0][1]
    assert health.consecutive_failures == 0, "our own budget is not held against the tier"


async def test_a_spent_deadline_is_a_504_listing_tiers_tried_and_skipped(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary", "backup", "claude"), timeouts=SLOW)
    for m in ("primary", "backup", "claude"):
        sim.fault(m, "hang")
    client = openai.AsyncOpenAI(
        base_url=gw.api + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20,
        default_headers={"x-switchyard-deadline-seconds": "1.5"},
    )
    gw.clients.append(client)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="helper", messages=HI)
    body = info.value.response.json()
    assert info.value.status_code == 504 and body["error"]["code"] == "deadline_exceeded"
    outcomes = [t["outcome"] for t in body["switchyard"]["tiers"]]
    assert outcomes[0] == "deadline(share)" and outcomes[-1].startswith("deadline")


async def test_an_sdk_timeout_header_shortens_the_deadline(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary", "backup", extra="  deadlineSeconds: 60"), timeouts=SLOW)
    sim.fault("primary", "hang")
    async with aiohttp.ClientSession() as s:
        async with s.post(
            gw.api + "/v1/chat/completions", json={"model": "helper", "messages": HI}, headers={"x-stainless-read-timeout": "2"}
        ) as r:
            assert r.status == 200 and r.headers["x-switchyard-fallback-reason"] == "tier0=deadline(share)"


@pytest.mark.slow
async def test_an_sdk_read_timeout_does_not_cut_a_longer_stream(gateway: GatewayFactory, sim: Simulator) -> None:
    """Issue 17, defect 2: with OpenAI(timeout=2.5) the SDK sends x-stainless-read-timeout:
    2.5, its longest wait between bytes; the sidecar read it as a deadline for the whole
    answer and cut a 5-second stream after 7 of its 14 chunks."""
    gw = await gateway(binding("helper", "primary"))
    sim.configure("primary", chunks=14, chunk_delay_ms=350)
    client = openai.AsyncOpenAI(base_url=gw.api + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=2.5)
    gw.clients.append(client)
    stream = await client.chat.completions.create(model="helper", messages=HI, stream=True)
    chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 14


# ------------------------------------------------------------------------ requires

REQUIRES_VISION = """  requires: {vision: true, tools: true}"""


async def test_an_incompatible_tier_is_skipped_never_silently_degraded(gateway: GatewayFactory, sim: Simulator) -> None:
    local = """apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: local}
spec: {provider: openai-compatible, baseURL: "%s", defaultModel: small}
---
""" % sim.base_url("backup")
    gw = await gateway(local + binding("helper", "local", "primary", extra=REQUIRES_VISION))
    rep = gw.reports[("default", "helper")]
    assert rep.tiers[0].incompatible == ("vision",) and not rep.compatible
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=incompatible(vision)"
    assert sim.count("backup") == 0
