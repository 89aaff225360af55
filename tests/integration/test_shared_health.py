"""Shared tier health (docs/shared-health.md), end to end over real HTTP on loopback.

Several real sidecars share one simulator. The operator's side is driven by calling its
functions directly (``operator.sharing``: what to tell each pod; ``operator.push``: the
signed ``PUT /admin/health``), as a reconcile pass would after reading every pod's
``GET /admin/status``.

- a hint is hostile input: bad shapes answer 400 in the plain JSON problem form, an
  unsigned or badly signed one 401, an oversized one 413; unknown sources are ignored,
  windows beyond the tier's cap are clamped;
- a rate-limited hint makes the pod skip the tier with no upstream call; the clearing
  hint (an empty set) brings it back, and never drops what the pod learned itself;
- a disabled hint is only a suspicion: the pod runs the prompt-free check before any
  user request, and disables the tier only when the check agrees;
- the measurement: N=5 pods, the primary answers 429: user requests spent on it before
  every pod skips it, without sharing and with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from harness import CLIENT_KEY, FakeClock, binding, load, sources
from switchyard.compiler import compile_config
from switchyard.operator import sharing
from switchyard.operator.push import AdminTimeouts, put_health
from switchyard.operator.selection import PodInfo
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.sidecar.contract.health import HEALTH_PATH, SIGNATURE_HEADER, MAX_HINT_BYTES, sign
from switchyard.sidecar.contract.report import parse_report
from switchyard.simulator import Simulator

TOKEN = "admin-token-shared-7f3a"
HI = [{"role": "user", "content": "hi"}]


class Pod:
    def __init__(self, sidecar: Sidecar, api: str, admin: str, clock: FakeClock, name: str) -> None:
        self.sidecar, self.api, self.admin, self.clock, self.name = sidecar, api, admin, clock, name

    @property
    def rt(self) -> Any:
        return self.sidecar.runtime

    def info(self) -> PodInfo:
        return PodInfo("team-a", self.name, f"uid-{self.name}", {}, "Running", "127.0.0.1", self.admin, f"inc-{self.name}")

    async def chat(self) -> tuple[int, dict[str, str]]:
        body = {"model": "helper", "messages": HI}
        async with aiohttp.ClientSession() as s, s.post(
            self.api + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {CLIENT_KEY}"}
        ) as r:
            await r.read()
            return r.status, dict(r.headers)

    async def report(self) -> Any:
        async with aiohttp.ClientSession() as s, s.get(self.admin + "/admin/status") as r:
            return parse_report(orjson.loads(await r.read()))


async def start_pods(sim: Simulator, n: int, extra: str = "") -> list[Pod]:
    config = compile_config(load(sources(sim) + "\n---\n" + binding("helper", "primary", "backup", extra=extra))).config
    pods = []
    for i in range(n):
        sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=5, admin_token=TOKEN)
        clock = FakeClock()
        sidecar.runtime.clock = clock
        sidecar.load(config)
        api, admin = await sidecar.start()
        pods.append(Pod(sidecar, f"http://127.0.0.1:{api}", f"http://127.0.0.1:{admin}", clock, f"app-{i}"))
    return pods


@pytest.fixture
async def pods(sim: Simulator) -> AsyncIterator[list[Pod]]:
    started = await start_pods(sim, 5)
    yield started
    for p in started:
        await p.sidecar.stop()


async def put(pod: Pod, body: Any, *, token: str | None = TOKEN, at: float | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any, str]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    h = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        h[SIGNATURE_HEADER] = sign(token, int(at if at is not None else time.time()), raw)
    async with aiohttp.ClientSession() as s, s.put(pod.admin + HEALTH_PATH, data=raw, headers=h) as r:
        text = await r.text()
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            data = None
        return r.status, data, r.headers.get("Content-Type", "")


def rl(until: float, source: str = "primary", model: str = "primary-model", key: int = 0) -> dict[str, Any]:
    return {"source": source, "model": model, "key": key, "rate_limited_until": until, "reason": "429(retry in 60s)"}


def posts(sim: Simulator, mount: str) -> int:
    return sum(1 for r in sim.requests(mount) if r.method == "POST")


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("body", [
    [],                                                          # not an object
    {"hints_version": 2, "hints": []},                           # a version it does not read
    {"hints_version": 1, "hints": "x"},                          # wrong type
    {"hints_version": 1, "hints": [{"source": "primary"}]},      # neither kind
    {"hints_version": 1, "hints": [{**rl(1.0), "disabled": "401"}]},  # both kinds
    {"hints_version": 1, "hints": [rl(-5.0)]},                   # negative time
    {"hints_version": 1, "hints": [{**rl(1e10), "key": -1}]},    # negative key
    {"hints_version": 1, "hints": [{**rl(1e10), "key": 8}]},     # beyond the 8 keys a source may hold
    {"hints_version": 1, "hints": [{**rl(1e10), "key": "0"}]},   # a string for a number
    {"hints_version": 1, "hints": [{**rl(1e10), "key": True}]},  # a bool for a number
    {"hints_version": 1, "hints": [{"source": "primary", "model": "primary-model", "disabled": "<script>"}]},
    {"hints_version": 1, "hints": [{**rl(1e10), "source": "x" * 300}]},
    {"hints_version": 1, "hints": [rl(1e10)] * 257},             # too many
])
async def test_a_malformed_hint_is_refused_400_in_the_plain_problem_form(pods: list[Pod], body: Any) -> None:
    status, data, ctype = await put(pods[0], body)
    assert status == 400, data
    assert ctype.startswith("application/json")
    assert set(data) == {"error"} and isinstance(data["error"]["message"], str)
    assert "Traceback" not in data["error"]["message"] and TOKEN not in data["error"]["message"]


async def test_not_json_oversized_unsigned_stale_or_forged_hints_are_refused(pods: list[Pod]) -> None:
    p = pods[0]
    assert (await put(p, b"{not json"))[0] == 400
    big = orjson.dumps({"hints_version": 1, "hints": [], "pad": "x" * MAX_HINT_BYTES})
    assert (await put(p, big))[0] == 413
    assert (await put(p, {"hints_version": 1, "hints": []}, token=None))[0] == 401
    assert (await put(p, {"hints_version": 1, "hints": []}, token="not-the-token"))[0] == 401
    assert (await put(p, {"hints_version": 1, "hints": []}, at=time.time() - 3600))[0] == 401
    status, data, _ = await put(p, {"hints_version": 1, "hints": []}, token=None,
                                headers={SIGNATURE_HEADER: "t=1,v1=" + "0" * 64})
    assert status == 401 and TOKEN not in str(data)
    # The bearer token (a person with kubectl port-forward) works too.
    async with aiohttp.ClientSession() as s, s.put(
        p.admin + HEALTH_PATH, data=b'{"hints_version": 1, "hints": []}',
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    ) as r:
        assert r.status == 200


async def test_unknown_sources_models_and_keys_are_ignored_and_windows_clamped_to_the_tier_cap(
    pods: list[Pod], sim: Simulator
) -> None:
    p = pods[0]
    far = time.time() + 100_000  # far beyond maxRetryAfterSeconds (300 by default)
    status, data, _ = await put(p, {"hints_version": 1, "hints": [
        rl(far), rl(far, source="nope"), rl(far, model="other-model"), rl(far, key=3), rl(time.time() - 10, source="backup",
                                                                                          model="backup-model"),
    ]})
    assert status == 200, data
    assert data["applied"] == 1 and data["clamped"] == 1 and data["ignored"] == 4
    tier0 = (await p.report()).bindings[0].tiers[0]
    assert tier0.breaker.state == "rate-limited" and tier0.breaker.shared
    assert 0 < tier0.breaker.rate_limited_for_seconds <= 300
    text = p.rt.metrics.exposition().decode()
    assert 'switchyard_health_hints_total{kind="rate-limited",result="clamped"} 1.0' in text
    assert 'switchyard_health_hints_total{kind="rate-limited",result="ignored"} 4.0' in text


async def test_an_older_message_than_the_last_accepted_changes_nothing(pods: list[Pod]) -> None:
    p = pods[0]
    now = time.time()
    assert (await put(p, {"hints_version": 1, "hints": [rl(now + 60)]}, at=now))[0] == 200
    status, data, _ = await put(p, {"hints_version": 1, "hints": []}, at=now - 5)  # a replayed older clear
    assert status == 409, data
    assert (await p.report()).bindings[0].tiers[0].breaker.state == "rate-limited"


# --------------------------------------------------------------------------- behaviour


async def test_a_rate_limited_hint_skips_the_tier_with_no_upstream_call_and_the_clear_brings_it_back(
    pods: list[Pod], sim: Simulator
) -> None:
    p = pods[0]
    assert (await put(p, {"hints_version": 1, "hints": [rl(time.time() + 60)]}))[0] == 200
    status, headers = await p.chat()
    assert status == 200 and headers["x-switchyard-tier"] == "1"
    assert "tier0=rate-limited(retry in" in headers["x-switchyard-fallback-reason"]
    assert posts(sim, "primary") == 0
    assert (await put(p, {"hints_version": 1, "hints": []}))[0] == 200  # the clearing hint
    status, headers = await p.chat()
    assert headers["x-switchyard-tier"] == "0" and posts(sim, "primary") == 1


async def test_a_clearing_hint_never_drops_what_the_pod_learned_itself(pods: list[Pod], sim: Simulator) -> None:
    p = pods[0]
    sim.fault("primary", 429, retry_after=60)
    status, headers = await p.chat()
    assert headers["x-switchyard-tier"] == "1" and posts(sim, "primary") == 1
    assert (await put(p, {"hints_version": 1, "hints": []}))[0] == 200
    await p.chat()
    assert posts(sim, "primary") == 1  # still waiting out its own 429
    assert not (await p.report()).bindings[0].tiers[0].breaker.shared


async def test_a_disabled_hint_runs_the_check_first_and_a_failed_check_disables_with_no_user_request(
    pods: list[Pod], sim: Simulator
) -> None:
    p = pods[0]
    sim.fault("primary", 401, endpoint="models", persistent=True)
    status, data, _ = await put(p, {"hints_version": 1, "hints": [
        {"source": "primary", "model": "primary-model", "disabled": "401"}]})
    assert status == 200 and data["applied"] == 1
    _, headers = await p.chat()  # while the check runs (or after): never the primary
    assert headers["x-switchyard-tier"] == "1"
    await p.rt.prober.wait_idle()
    assert p.rt.prober.checks == 1
    tier0 = (await p.report()).bindings[0].tiers[0]
    assert tier0.breaker.state == "disabled" and not tier0.breaker.shared
    _, headers = await p.chat()
    assert headers["x-switchyard-tier"] == "1" and "tier0=disabled(" in headers["x-switchyard-fallback-reason"]
    assert posts(sim, "primary") == 0


async def test_a_false_disabled_hint_costs_one_check_and_changes_nothing(pods: list[Pod], sim: Simulator) -> None:
    p = pods[0]
    assert (await put(p, {"hints_version": 1, "hints": [
        {"source": "primary", "model": "primary-model", "disabled": "401"}]}))[0] == 200
    await p.rt.prober.wait_idle()
    assert p.rt.prober.checks == 1
    assert (await p.report()).bindings[0].tiers[0].breaker.state == "closed"
    _, headers = await p.chat()
    assert headers["x-switchyard-tier"] == "0"
    text = p.rt.metrics.exposition().decode()
    assert 'switchyard_health_hints_total{kind="disabled",result="applied"} 1.0' in text


# --------------------------------------------------------------------------- the measurement


async def operator_pass(pods: list[Pod], session: aiohttp.ClientSession, memory: sharing.HintMemory) -> tuple[int, float]:
    """What the operator does in one poll for shared health: read every pod's report, plan
    each pod's hints, send those that changed. (sends, seconds from the first read to the
    last hint applied)"""
    t0 = time.perf_counter()
    reports = dict(zip([p.info().key for p in pods], await asyncio.gather(*(p.report() for p in pods)), strict=True))
    planned = sharing.plan_hints(reports, now=time.time())
    sends = 0
    for p in pods:
        hints = planned.get(p.info().key, sharing.EMPTY)
        if not memory.needs_send(p.info(), hints, time.time()):
            continue
        problem = await put_health(session, p.info(), p.admin, TOKEN, hints, AdminTimeouts())
        assert problem is None, problem
        memory.sent(p.info(), hints)
        sends += 1
    return sends, time.perf_counter() - t0


async def test_requests_spent_before_every_pod_skips_a_rate_limited_tier(pods: list[Pod], sim: Simulator) -> None:
    sim.fault("primary", 429, retry_after=120, persistent=True)
    n = len(pods)

    # Without sharing: each pod learns alone, one user request each.
    for p in pods:
        _, headers = await p.chat()
        assert headers["x-switchyard-tier"] == "1"
    without = posts(sim, "primary")
    for p in pods:
        await p.chat()
    assert posts(sim, "primary") == without == n

    # With sharing: the same, on a fresh fleet (the windows above are each pod's own).
    for p in pods:
        p.rt.reset(p.rt.snapshot.config.bindings[0])
    sim.reset("primary")
    sim.fault("primary", 429, retry_after=120, persistent=True)
    memory = sharing.HintMemory()
    async with aiohttp.ClientSession() as session:
        await operator_pass(pods, session, memory)  # a quiet poll: nothing to tell
        _, headers = await pods[0].chat()  # the first pod to get a request spends it
        sends, seconds = await operator_pass(pods, session, memory)  # the next poll
        for p in pods:
            _, headers = await p.chat()
            assert headers["x-switchyard-tier"] == "1"
        with_sharing = posts(sim, "primary")
        quiet, _ = await operator_pass(pods, session, memory)  # nothing changed: nothing sent
    assert with_sharing == 1 and sends == n - 1 and quiet == 0
    print(f"\nshared health, N={n} pods, primary answers 429 (Retry-After 120 s): user requests spent on it "
          f"before every pod skips it: without sharing {without}, with sharing {with_sharing}; "
          f"hint pass (read {n} reports, plan, {sends} signed PUTs): {seconds * 1000:.1f} ms")


# --------------------------------------------------------------------------- several keys


async def test_keys_by_index_a_waiting_key_is_skipped_and_a_refused_key_checked_with_that_key() -> None:
    from switchyard.simulator import Mount

    k0, k1, kb = "sk-multi-ZERO-aa11", "sk-multi-ONE-bb22", "sk-backup-cc33"
    async with Simulator(Mount("multi", flavour="openai", api_key=[k0, k1]),
                         Mount("backup", flavour="openai", api_key=kb), port=0) as s:
        text = f"""
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: multi}}
spec:
  provider: openai-compatible
  baseURL: {s.base_url("multi")}
  defaultModel: multi-model
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRefs: [{{name: keys, key: k0}}, {{name: keys, key: k1}}]
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: backup}}
spec:
  provider: openai-compatible
  baseURL: {s.base_url("backup")}
  defaultModel: backup-model
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRef: {{name: keys, key: kb}}
---
apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData: {{k0: {k0}, k1: {k1}, kb: {kb}}}
---
""" + binding("helper", "multi", "backup")
        sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=5, admin_token=TOKEN)
        sidecar.runtime.clock = FakeClock()
        sidecar.load(compile_config(load(text)).config)
        api, admin = await sidecar.start()
        p = Pod(sidecar, f"http://127.0.0.1:{api}", f"http://127.0.0.1:{admin}", sidecar.runtime.clock, "app-k")  # type: ignore[arg-type]
        try:
            sent = lambda: [r.headers.get("Authorization") for r in s.requests("multi") if r.method == "POST"]  # noqa: E731
            assert (await put(p, {"hints_version": 1, "hints": [
                rl(time.time() + 60, source="multi", model="multi-model", key=0)]}))[0] == 200
            _, headers = await p.chat()
            assert headers["x-switchyard-tier"] == "0" and headers["x-switchyard-key"] == "1"
            assert "tier0/key0=rate-limited(retry in" in headers["x-switchyard-fallback-reason"]
            assert sent() == [f"Bearer {k1}"]  # key 0 never sent
            [tier] = [t for b in (await p.report()).bindings for t in b.tiers if t.source == "multi"]
            assert tier.keys[0].state == "rate-limited" and tier.keys[0].shared and tier.breaker.state == "closed"

            s.fault("multi", 401, endpoint="models", key_index=1, persistent=True)
            assert (await put(p, {"hints_version": 1, "hints": [
                {"source": "multi", "model": "multi-model", "key": 1, "disabled": "401"}]}))[0] == 200
            await sidecar.runtime.prober.wait_idle()  # key 0's hint is dropped (not in the set), key 1 checked
            checks = [r.headers.get("Authorization") for r in s.requests("multi") if r.method == "GET"]
            assert checks == [f"Bearer {k1}"]  # the check is sent with the key under suspicion
            [tier] = [t for b in (await p.report()).bindings for t in b.tiers if t.source == "multi"]
            assert [k.state for k in tier.keys] == ["usable", "disabled"] and not tier.keys[1].shared
            _, headers = await p.chat()
            assert headers["x-switchyard-key"] == "0" and sent() == [f"Bearer {k1}", f"Bearer {k0}"]
            body = (await p.report()).model_dump_json()
            assert k0 not in body and k1 not in body
        finally:
            await sidecar.stop()


async def wait_for(done: Any, limit: float = 10.0, step: float = 0.005) -> None:
    for _ in range(int(limit / step)):
        if done():
            return
        await asyncio.sleep(step)
    raise AssertionError("not within the limit")


async def test_propagation_delay_is_at_most_one_poll_interval_and_one_pass(pods: list[Pod], sim: Simulator) -> None:
    """Timed: a poll loop runs every INTERVAL seconds as the operator's does; from the
    moment pod 0 has its 429 until every pod skips the tier. Five rounds, each started at
    another point of the poll cycle."""
    interval = 1.0
    memory = sharing.HintMemory()
    delays: list[float] = []
    clears: list[float] = []
    async with aiohttp.ClientSession() as session:
        async def poll() -> None:
            while True:
                await operator_pass(pods, session, memory)
                await asyncio.sleep(interval)

        loop = asyncio.create_task(poll())
        try:
            for round_ in range(5):
                sim.reset("primary")
                sim.fault("primary", 429, retry_after=120, persistent=True)
                await asyncio.sleep(0.23 * round_ + 0.05)  # another phase of the poll cycle each round
                _, headers = await pods[0].chat()
                t0 = time.perf_counter()
                assert headers["x-switchyard-tier"] == "1"

                def all_skip() -> bool:
                    out = []
                    for p in pods:
                        b = p.rt.snapshot.config.bindings[0]
                        out.append(p.rt.health(b, b.tiers[0]).rate_limited_until > p.rt.clock())
                    return all(out)

                await wait_for(all_skip)
                delays.append(time.perf_counter() - t0)
                pods[0].rt.reset(pods[0].rt.snapshot.config.bindings[0])  # the pod that saw it is reset: a recovery
                await wait_for(lambda: not any(  # the next poll clears the hints
                    p.rt.health(p.rt.snapshot.config.bindings[0], p.rt.snapshot.config.bindings[0].tiers[0])
                    .rate_limited_until for p in pods))
                clears.append(time.perf_counter() - t0 - delays[-1])
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
    assert max(delays) <= interval + 0.5, delays
    assert max(clears) <= interval + 0.5, clears
    assert posts(sim, "primary") == 1  # the last round's: one user request, by pod 0
    print(f"\nshared health, N={len(pods)}, poll every {interval:g} s: from pod 0's 429 to every pod skipping: "
          + ", ".join(f"{d * 1000:.0f}" for d in delays) + " ms; from its reset to every pod cleared: "
          + ", ".join(f"{d * 1000:.0f}" for d in clears) + " ms")
