"""Several keys per ModelSource, end to end: the official openai SDK -> the sidecar ->
the simulator, whose `multi` mount accepts two keys and faults per key.

A 429 on one key moves the same request to the next key of the same tier (the fallback
tier is not called); the key waits out its window, skipped meanwhile; both keys out ->
the next tier; a refused key (401) is disabled after the prompt-free check confirms it,
for that key only. Status (GET /admin/status), metrics and logs tell keys by index and
never hold a key's value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
import yaml

from harness import CLIENT_KEY, FakeClock, Gateway, load
from switchyard.compiler import compile_config
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.simulator import Mount, Simulator

K0, K1, KB = "sk-multi-key-ZERO-0a1b2c", "sk-multi-key-ONE-3d4e5f", "sk-backup-only-KEY-9z8y"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(
        Mount("multi", flavour="openai", api_key=[K0, K1]), Mount("backup", flavour="openai", api_key=KB), port=0,
    ) as s:
        yield s


def manifests(sim: Simulator, refs: str = "[{name: keys, key: k0}, {name: keys, key: k1}]") -> str:
    secret = yaml.safe_dump({"k0": K0, "k1": K1, "kb": KB}, default_flow_style=True).strip()
    return f"""
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: multi}}
spec:
  provider: openai-compatible
  baseURL: {sim.base_url("multi")}
  defaultModel: multi-model
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRefs: {refs}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: backup}}
spec:
  provider: openai-compatible
  baseURL: {sim.base_url("backup")}
  defaultModel: backup-model
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRef: {{name: keys, key: kb}}
---
apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData: {secret}
---
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {{name: helper}}
spec:
  primary: {{sourceRef: {{name: multi}}}}
  fallbacks: [{{sourceRef: {{name: backup}}}}]
"""


@pytest.fixture
async def gw(sim: Simulator) -> AsyncIterator[Gateway]:
    result = compile_config(load(manifests(sim)))
    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=5)
    clock = FakeClock()
    sidecar.runtime.clock = clock
    sidecar.load(result.config)
    api, admin = await sidecar.start()
    g = Gateway(sidecar, f"http://127.0.0.1:{api}", f"http://127.0.0.1:{admin}", clock, result.reports)
    yield g
    for c in g.clients:
        await c.close()
    await sidecar.stop()


async def chat(gw: Gateway):
    return await gw.openai().chat.completions.with_raw_response.create(model="helper", messages=HI)


def posts(sim: Simulator, mount: str) -> list[int | None]:
    """Which of the source's keys (0: K0, 1: K1) each user request a mount received was
    sent with (checks are GETs); None for another key."""
    sent = {f"Bearer {K0}": 0, f"Bearer {K1}": 1}
    return [sent.get(r.headers.get("Authorization", "")) for r in sim.requests(mount) if r.method == "POST"]


async def admin_status(gw: Gateway) -> dict:
    token = gw.sidecar.admin_token if hasattr(gw.sidecar, "admin_token") else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(gw.admin + "/admin/status", headers=headers) as r:
        assert r.status == 200, await r.text()
        return orjson.loads(await r.read())


def keys_of(status: dict, tier: int = 0) -> list[dict]:
    (b,) = [b for b in status["bindings"] if b["name"] == "helper"]
    return b["tiers"][tier].get("keys")


async def test_a_429_on_key_0_is_served_by_key_1_of_the_same_tier(gw: Gateway, sim: Simulator) -> None:
    sim.fault("multi", 429, key_index=0, retry_after=30)
    raw = await chat(gw)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-switchyard-tier"] == "0" and raw.headers["x-switchyard-key"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0/key0=429(retry in 30s)"
    assert posts(sim, "multi") == [0, 1] and posts(sim, "backup") == []

    # Key 0 waits out its window: skipped (said so), key 1 serves, nothing sent with key 0.
    raw = await chat(gw)
    assert raw.headers["x-switchyard-key"] == "1"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0/key0=rate-limited(retry in 30s)"
    assert posts(sim, "multi") == [0, 1, 1]
    (k0, k1) = keys_of(await admin_status(gw))
    assert (k0["index"], k0["state"], k0["rate_limited_for_seconds"]) == (0, "rate-limited", 30)
    assert k0["rate_limited_until"] > 0
    assert (k1["index"], k1["state"]) == (1, "usable")
    assert keys_of(await admin_status(gw))[0]["last_failure"] == "429(retry in 30s)"
    assert (await admin_status(gw))["bindings"][0]["tiers"][0]["breaker"]["state"] == "closed"  # the tier is fine

    # The window over: key 0 first again (keys are tried in order, not round-robin).
    gw.clock.advance(31)
    raw = await chat(gw)
    assert raw.headers["x-switchyard-key"] == "0" and "x-switchyard-fallback-reason" not in raw.headers
    assert posts(sim, "multi") == [0, 1, 1, 0]


async def test_both_keys_rate_limited_moves_the_chain_to_the_next_tier(gw: Gateway, sim: Simulator) -> None:
    sim.fault("multi", 429, key_index=0, retry_after=20)
    sim.fault("multi", 429, key_index=1, retry_after=40)
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1" and raw.headers["x-switchyard-source"] == "backup"
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0/key0=429(retry in 20s), tier0/key1=429(retry in 40s)"
    assert "x-switchyard-key" not in raw.headers  # the backup has one key
    # Every key waits: the tier itself is rate-limited until the first key is back.
    raw = await chat(gw)
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=rate-limited(retry in 20s)"
    assert posts(sim, "multi") == [0, 1]
    tier0 = (await admin_status(gw))["bindings"][0]["tiers"][0]
    assert tier0["breaker"]["state"] == "rate-limited"
    assert [k["state"] for k in tier0["keys"]] == ["rate-limited", "rate-limited"]
    gw.clock.advance(21)
    raw = await chat(gw)
    assert (raw.headers["x-switchyard-tier"], raw.headers["x-switchyard-key"]) == ("0", "0")
    assert gw.runtime.metrics.registry.get_sample_value(
        "switchyard_fallbacks_total", {"binding": "helper", "from_tier": "0", "class": "rate-limited", "reason": "429"}
    ) == 1.0  # the tier passed over once for its keys' 429s; the hop from key 0 to key 1 is not a fallback


async def test_a_refused_key_is_disabled_after_the_check_for_that_key_only(gw: Gateway, sim: Simulator, logs) -> None:
    sim.mount("multi").api_keys = (K1,)  # key 0 revoked upstream
    raw = await chat(gw)
    assert (raw.headers["x-switchyard-tier"], raw.headers["x-switchyard-key"]) == ("0", "1")
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0/key0=401"
    await gw.runtime.prober.wait_idle()  # the confirming check, sent with key 0 only
    checks = [r for r in sim.requests("multi") if r.method == "GET"]
    assert len(checks) == 1 and checks[0].headers["Authorization"] == f"Bearer {K0}"
    for _ in range(2):
        raw = await chat(gw)
        assert raw.headers["x-switchyard-key"] == "1"
        assert raw.headers["x-switchyard-fallback-reason"] == "tier0/key0=disabled(401)"
    assert posts(sim, "multi") == [0, 1, 1, 1]  # key 0's one refused request, then key 1 only
    status = await admin_status(gw)
    tier0 = status["bindings"][0]["tiers"][0]
    assert tier0["breaker"]["state"] == "closed"  # the tier serves with its other key
    assert [(k["index"], k["state"], k.get("disabled_reason")) for k in tier0["keys"]] == [
        (0, "disabled", "401"), (1, "usable", None)]
    samples = {
        (s.labels["key"], s.labels["state"]): s.value
        for m in gw.runtime.metrics.registry.collect() if m.name == "switchyard_key_state" for s in m.samples
    }
    assert samples[("0", "disabled")] == 1.0 and samples[("1", "usable")] == 1.0 and samples[("0", "usable")] == 0.0

    # The last usable key refused too: the tier is disabled like a one-key tier.
    sim.mount("multi").api_keys = ("sk-someone-else-entirely",)
    raw = await chat(gw)
    assert raw.headers["x-switchyard-tier"] == "1"
    await gw.runtime.prober.wait_idle()
    raw = await chat(gw)
    assert raw.headers["x-switchyard-fallback-reason"] == "tier0=disabled(401)"
    assert (await admin_status(gw))["bindings"][0]["tiers"][0]["breaker"]["state"] == "disabled"

    # An admin reset puts the tier and its keys back.
    sim.mount("multi").api_keys = (K0, K1)
    gw.runtime.reset(gw.runtime.snapshot.config.bindings[0])
    raw = await chat(gw)
    assert (raw.headers["x-switchyard-tier"], raw.headers["x-switchyard-key"]) == ("0", "0")

    # No key value anywhere: status, metrics, logs.
    text = orjson.dumps(await admin_status(gw)).decode() + gw.runtime.metrics.exposition().decode()
    text += "\n".join(logs.lines)
    for key in (K0, K1, KB):
        assert key not in text and key[:12] not in text


async def test_a_rotated_key_is_enabled_again_and_the_others_stay_as_they_were(gw: Gateway, sim: Simulator) -> None:
    sim.mount("multi").api_keys = (K1,)
    await chat(gw)
    await gw.runtime.prober.wait_idle()
    assert keys_of(await admin_status(gw))[0]["state"] == "disabled"
    # The same config again: still disabled. Key 0's Secret value rotated: enabled.
    gw.runtime.install(gw.runtime.snapshot.config.model_copy(update={"version": "same-content"}))
    assert keys_of(await admin_status(gw))[0]["state"] == "disabled"
    rotated = manifests(sim).replace(K0, K0 + "-rotated")
    sim.mount("multi").api_keys = (K0 + "-rotated", K1)
    gw.runtime.install(compile_config(load(rotated)).config)
    assert [k["state"] for k in keys_of(await admin_status(gw))] == ["usable", "usable"]
    raw = await chat(gw)
    assert raw.headers["x-switchyard-key"] == "0"


async def test_an_unresolvable_key_is_skipped_and_reported_by_index(sim: Simulator) -> None:
    text = manifests(sim, "[{name: keys, key: missing}, {name: keys, key: k1}]")
    result = compile_config(load(text))
    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=5)
    sidecar.load(result.config)
    api, admin = await sidecar.start()
    g = Gateway(sidecar, f"http://127.0.0.1:{api}", f"http://127.0.0.1:{admin}", FakeClock())
    try:
        raw = await chat(g)
        assert raw.headers["x-switchyard-key"] == "1"
        assert raw.headers["x-switchyard-fallback-reason"] == "tier0/key0=unresolvable(SecretKeyMissing)"
        k0 = keys_of(await admin_status(g))[0]
        assert (k0["state"], k0["problem"]) == ("unresolvable", "SecretKeyMissing: Secret keys has no key missing")
    finally:
        for c in g.clients:
            await c.close()
        await sidecar.stop()
    assert CLIENT_KEY not in str(posts(sim, "multi"))


async def test_an_open_tier_is_checked_with_its_first_usable_key(gw: Gateway, sim: Simulator) -> None:
    """The tier's breaker stays per tier (5xx are not key-specific); its prompt-free
    recovery check is sent with the first key that is not disabled."""
    sim.mount("multi").api_keys = (K1,)  # key 0 refused upstream
    await chat(gw)
    await gw.runtime.prober.wait_idle()
    assert keys_of(await admin_status(gw))[0]["state"] == "disabled"
    sim.fault("multi", 503, times=3)  # three 5xx in a row (key 1 sent each time): the tier opens
    for _ in range(3):
        raw = await chat(gw)
        assert raw.headers["x-switchyard-tier"] == "1"
    tier0 = (await admin_status(gw))["bindings"][0]["tiers"][0]
    assert tier0["breaker"]["state"] == "open"
    assert [k["state"] for k in tier0["keys"]] == ["disabled", "usable"]  # a 5xx says nothing about a key
    before = len([r for r in sim.requests("multi") if r.method == "GET"])
    gw.clock.advance(31)
    assert await gw.runtime.prober.run_due() == 1
    checks = [r for r in sim.requests("multi") if r.method == "GET"][before:]
    assert [c.headers["Authorization"] for c in checks] == [f"Bearer {K1}"]
    assert (await admin_status(gw))["bindings"][0]["tiers"][0]["breaker"]["state"] == "half-open"
    raw = await chat(gw)
    assert (raw.headers["x-switchyard-tier"], raw.headers["x-switchyard-key"]) == ("0", "1")
