"""Graceful lifecycle: drain on SIGTERM, config swaps under a running stream, life without
an operator, readiness.

The SIGTERM tests run the real command (`switchyard run` / `switchyard sidecar`) as a
child process (bench/soak.py's SidecarProcess: OS-chosen ports, stderr collected); the
rest use the in-process sidecar of tests/harness.py. Streams are made long with the
simulator's per-chunk delay; every wait is an event or a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from harness import KEYS, GatewayFactory, binding, load, sources
from switchyard.compiler import compile_config
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.simulator import Simulator

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("switchyard_soak", REPO / "bench" / "soak.py")
assert _spec is not None and _spec.loader is not None
soak = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("switchyard_soak", soak)
_spec.loader.exec_module(soak)

TOKEN = "lifecycle-admin-token"
CHAT = {"model": "helper", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "helper", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def request_for(ingress: str, api: str, *, stream: bool) -> tuple[str, dict[str, Any], dict[str, str]]:
    if ingress == "openai-chat":
        return api + "/v1/chat/completions", {**CHAT, "stream": stream}, {}
    if ingress == "anthropic-messages":
        return api + "/v1/messages", {**MESSAGES, "stream": stream}, {"anthropic-version": "2023-06-01"}
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{api}/v1beta/models/helper:{method}", GEMINI, {}


async def send(session: aiohttp.ClientSession, ingress: str, api: str, *, stream: bool) -> tuple[int, dict[str, str], bytes]:
    url, body, headers = request_for(ingress, api, stream=stream)
    async with session.post(url, json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


def classify(ingress: str, stream: bool, status: int, headers: dict[str, str], raw: bytes) -> str:
    cls, why = soak.classify(soak.Call(ingress, stream, "helper"), status, headers.get("Content-Type", ""), raw)
    return cls if cls != soak.LOST else f"lost: {why}"


def write_manifests(folder: Path, sim: Simulator, bindings: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all.yaml").write_text(sources(sim) + "\n---\n" + bindings)


async def wait_until(what: str, probe: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        got = await probe()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(delay)  # poll interval under a deadline
        delay = min(delay * 2, 0.2)


async def get(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, str]:
    async with session.get(url, **kw) as r:
        return r.status, await r.text()


# ----------------------------------------------------------------------------- SIGTERM


@pytest.mark.slow
async def test_sigterm_drains_streams_and_refuses_new_requests(sim: Simulator, tmp_path: Path) -> None:
    # One binding, one OpenAI-style tier: the Anthropic and Gemini clients are translated.
    write_manifests(tmp_path / "m", sim, binding("helper", "primary"))
    sim.configure("primary", chunks=8, chunk_delay_ms=120)  # about 1 s per answer
    proc = await soak.SidecarProcess(["run", "-f", str(tmp_path / "m"), "--log-level", "warning"],
                                     {"XDG_STATE_HOME": str(tmp_path / "state")}).start()
    try:
        async with aiohttp.ClientSession() as s:
            inflight = [
                asyncio.create_task(send(s, ingress, proc.api, stream=stream))
                for ingress in ("openai-chat", "anthropic-messages", "gemini")
                for stream in (True, False)
            ]
            await sim.wait_for_requests("primary", 6)
            t0 = time.monotonic()
            proc.signal(signal.SIGTERM)

            async def draining() -> bool:
                status, text = await get(s, proc.admin + "/readyz")
                return status == 503 and text == "draining"

            await wait_until("readyz to say draining", draining)
            # New requests, on a fresh connection, get a retryable error in their own protocol.
            async with aiohttp.ClientSession() as fresh:
                for ingress in ("openai-chat", "anthropic-messages", "gemini"):
                    status, headers, raw = await send(fresh, ingress, proc.api, stream=True)
                    assert status == 503 and headers.get("Retry-After") == "1", (ingress, status, raw)
                    assert soak.error_body_ok(ingress, status, raw), raw
                    assert b"draining" in raw or b"shutting down" in raw
            # Everything in flight finishes normally: content, clean end markers.
            results = await asyncio.gather(*inflight)
        for (ingress, stream), (status, headers, raw) in zip(
            [(i, st) for i in ("openai-chat", "anthropic-messages", "gemini") for st in (True, False)], results, strict=True
        ):
            assert status == 200 and classify(ingress, stream, status, headers, raw) == soak.CONTENT, (ingress, stream, raw[-200:])
        assert await proc.wait(25) == 0  # the one SIGTERM above: no second one
        assert time.monotonic() - t0 < 20, "the drain took longer than its deadline"
        assert not [ln for ln in proc.lines if "Traceback" in ln], proc.lines
    finally:
        await proc.stop()


async def test_streams_still_running_at_the_drain_deadline_end_with_an_error_event(sim: Simulator) -> None:
    """Past drain_seconds a stream is not cut: it ends with its protocol's error event (and no
    clean end marker); a request still waiting for its upstream gets a retryable 503."""
    result = compile_config(load(sources(sim) + "\n---\n" + binding("helper", "primary")))
    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=0.5)
    sidecar.load(result.config)
    api, _ = await sidecar.start()
    base = f"http://127.0.0.1:{api}"
    sim.configure("primary", chunks=40, chunk_delay_ms=200)  # 8 s: far past the deadline
    tasks_before = len(asyncio.all_tasks())
    async with aiohttp.ClientSession() as s:
        streams = [asyncio.create_task(send(s, ingress, base, stream=True)) for ingress in ("openai-chat", "anthropic-messages", "gemini")]
        await sim.wait_for_requests("primary", 3)
        sim.fault("primary", "hang", max_seconds=10)
        waiting = asyncio.create_task(send(s, "openai-chat", base, stream=False))
        await sim.wait_for_requests("primary", 4)
        t0 = time.monotonic()
        await sidecar.stop()
        stop_took = time.monotonic() - t0
        results = await asyncio.gather(*streams)
        status, headers, raw = await waiting
    assert stop_took < 0.5 + 2.0 + 2.0 + 1.0, f"stop() took {stop_took:.1f}s"
    for ingress, (st, h, body) in zip(("openai-chat", "anthropic-messages", "gemini"), results, strict=True):
        assert st == 200
        assert classify(ingress, True, st, h, body) == soak.PROTOCOL_ERROR, (ingress, body[-300:])
        assert b"shutting down" in body
    assert status == 503 and soak.error_body_ok("openai-chat", status, raw) and b"draining" in raw
    assert headers.get("Retry-After") == "1"
    await wait_until("no task left behind", _tasks_back_to(tasks_before))
    sim.clear_faults()


@pytest.mark.slow
@pytest.mark.parametrize("ingress", ["anthropic-messages", "gemini"])
async def test_the_drain_waits_for_token_counts_too(sim: Simulator, ingress: str) -> None:
    """A token count in flight when the drain starts is answered: the drain waits for it
    like an API request (the listener's close alone would cut it after CLOSE_SECONDS)."""
    from switchyard.sidecar.app import CLOSE_SECONDS

    mount = "claude" if ingress == "anthropic-messages" else "gem"
    slow_ok = "{connectSeconds: 2, firstByteSeconds: 10, totalSeconds: 20}"
    result = compile_config(load(sources(sim, slow_ok) + "\n---\n" + binding("helper", mount)))
    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=CLOSE_SECONDS + 5)
    sidecar.load(result.config)
    api, _ = await sidecar.start()
    base = f"http://127.0.0.1:{api}"
    sim.fault(mount, "slow", delay_ms=(CLOSE_SECONDS + 1) * 1000, endpoint="count_tokens")
    if ingress == "anthropic-messages":
        url, body, headers = base + "/v1/messages/count_tokens", {"model": "helper", "messages": MESSAGES["messages"]}, {"anthropic-version": "2023-06-01"}
    else:
        url, body, headers = base + "/v1beta/models/helper:countTokens", GEMINI, {}
    async with aiohttp.ClientSession() as s:
        async def count() -> tuple[int, bytes]:
            async with s.post(url, json=body, headers=headers) as r:
                return r.status, await r.read()

        counting = asyncio.create_task(count())
        await sim.wait_for_requests(mount, 1)
        await sidecar.stop()
        status, raw = await counting
    assert status == 200, raw
    assert orjson.loads(raw).get("input_tokens" if ingress == "anthropic-messages" else "totalTokens", 0) > 0
    sim.clear_faults()


def _tasks_back_to(n: int) -> Any:
    async def probe() -> bool:
        return len(asyncio.all_tasks()) <= n

    return probe


# ----------------------------------------------------------------------------- config swaps


async def test_a_config_swap_never_breaks_a_stream_in_flight(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary"))
    sim.configure("primary", chunks=10, chunk_delay_ms=100)
    old = gw.runtime.snapshot.config
    # The new config: `helper` now served by `backup` only, under another alias too.
    b0 = old.bindings[0]
    backup_tier = compile_config(load(sources(sim) + "\n---\n" + binding("helper", "backup"))).config.bindings[0].tiers[0]
    new = old.model_copy(update={"bindings": [b0.model_copy(update={"aliases": ["helper-v2"], "tiers": [backup_tier]})]}).with_version()
    async with aiohttp.ClientSession() as s:
        url, body, headers = request_for("openai-chat", gw.api, stream=True)
        async with s.post(url, json=body, headers=headers) as r:
            assert r.status == 200 and r.headers["x-switchyard-source"] == "primary"
            first = await r.content.readuntil(b"\n\n")
            assert b"content" in first or b"role" in first
            async with s.put(gw.admin + "/admin/config", data=new.to_wire(), headers={"Content-Type": "application/json"}) as put:
                assert put.status == 200 and (await put.json())["applied"] is True
            rest = await r.read()
        raw = first + rest
        assert classify("openai-chat", True, 200, {"Content-Type": "text/event-stream"}, raw) == soak.CONTENT
        assert b'"model":"primary-model"' in raw and b"backup-model" not in raw  # all of it from the old tier
        # New requests see the new config at once.
        status, h, raw = await send(s, "openai-chat", gw.api, stream=False)
        assert status == 404 and b"helper-v2" in raw
        async with s.post(gw.api + "/v1/chat/completions", json={**CHAT, "model": "helper-v2"}) as r2:
            assert r2.status == 200 and r2.headers["x-switchyard-source"] == "backup"


# ----------------------------------------------------------------------------- no operator, readiness


@pytest.mark.slow
async def test_readiness_and_life_without_an_operator(sim: Simulator) -> None:
    """`switchyard sidecar` (cluster mode): not ready and answering not_configured until the
    first push; then ready and serving that config for as long as it runs, whatever happens
    to the operator (it never calls back); a refused push keeps the last config; SIGTERM
    makes it unready at once."""
    proc = await soak.SidecarProcess(
        ["sidecar", "--admin-host", "127.0.0.1", "--log-level", "warning"], {"SWITCHYARD_ADMIN_TOKEN": TOKEN}
    ).start()
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    try:
        async with aiohttp.ClientSession() as s:
            assert await get(s, proc.admin + "/readyz") == (503, "no config yet")
            assert (await get(s, proc.admin + "/healthz"))[0] == 200
            for ingress in ("openai-chat", "anthropic-messages", "gemini"):
                status, _, raw = await send(s, ingress, proc.api, stream=False)
                assert status == 503 and soak.error_body_ok(ingress, status, raw) and b"configuration" in raw, raw

            config = compile_config(load(sources(sim) + "\n---\n" + binding("helper", "primary"))).config
            async with s.put(proc.admin + "/admin/config", data=config.to_wire(), headers={"Content-Type": "application/json"}) as r:
                assert r.status == 401  # no token, no push
            async with s.put(proc.admin + "/admin/config", data=config.to_wire(), headers=auth) as r:
                assert r.status == 200 and (await r.json())["applied"] is True
            assert await get(s, proc.admin + "/readyz") == (200, "ok")

            # The operator is gone from here on: the sidecar keeps serving its last config.
            async with s.put(proc.admin + "/admin/config", data=b'{"schema_version": 99}', headers=auth) as r:
                assert r.status == 409
            for i in range(6):
                ingress = ("openai-chat", "anthropic-messages", "gemini")[i % 3]
                status, headers, raw = await send(s, ingress, proc.api, stream=bool(i % 2))
                assert status == 200 and classify(ingress, bool(i % 2), status, headers, raw) == soak.CONTENT
            status, body = await get(s, proc.admin + "/admin/status", headers=auth)
            assert status == 200 and orjson.loads(body)["version"] == config.version
            assert not any(k in body for k in KEYS.values())

            sim.configure("primary", chunks=6, chunk_delay_ms=150)
            held = asyncio.create_task(send(s, "openai-chat", proc.api, stream=True))
            await sim.wait_for_requests("primary", 7)
            proc.signal(signal.SIGTERM)

            async def unready() -> bool:
                return (await get(s, proc.admin + "/readyz"))[0] == 503

            await wait_until("readyz to turn 503", unready)
            status, headers, raw = await held
            assert classify("openai-chat", True, status, headers, raw) == soak.CONTENT
        assert await proc.wait(25) == 0
    finally:
        await proc.stop()


# ----------------------------------------------------------------- standalone admin token


async def test_standalone_makes_an_admin_token_only_the_user_can_read(sim: Simulator, tmp_path: Path) -> None:
    """Issue 15: with no token on loopback, anything local (a web page through DNS
    rebinding included) could push a config. `switchyard run` now always has one."""
    write_manifests(tmp_path / "m", sim, binding("helper", "primary"))
    state = tmp_path / "state"
    proc = await soak.SidecarProcess(["run", "-f", str(tmp_path / "m"), "--log-level", "warning"],
                                     {"XDG_STATE_HOME": str(state), "SWITCHYARD_ADMIN_TOKEN": ""}).start()
    try:
        token_file = state / "switchyard" / "admin-token"
        assert token_file.stat().st_mode & 0o777 == 0o600 and (state / "switchyard").stat().st_mode & 0o777 == 0o700
        token = token_file.read_text().strip()
        assert len(token) >= 32 and str(token_file) in "".join(proc.lines), "the start line says where it is"
        async with aiohttp.ClientSession() as s:
            # status is read-only and holds no secret: open; the routes that act need the token
            async with s.get(proc.admin + "/admin/status") as r:
                assert r.status == 200 and token not in await r.text()
            async with s.post(proc.admin + "/admin/bindings/helper/reset") as r:
                assert r.status == 401
            async with s.post(proc.admin + "/admin/bindings/helper/reset", headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200
            async with s.get(proc.admin + "/readyz") as r:
                assert r.status == 200
    finally:
        await proc.stop()
    # The next start reuses it (a script that read it keeps working) ...
    proc = await soak.SidecarProcess(["run", "-f", str(tmp_path / "m"), "--log-level", "warning"],
                                     {"XDG_STATE_HOME": str(state), "SWITCHYARD_ADMIN_TOKEN": ""}).start()
    await proc.stop()
    assert token_file.read_text().strip() == token
