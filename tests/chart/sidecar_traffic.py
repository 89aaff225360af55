"""A real sidecar with traffic behind it, so every metric family the dashboard and the
alerts use has series: the dashboard/alert tests scrape its ``/metrics`` and point a
real Prometheus at it.

`LiveSidecar.start()` runs the simulator (harness.py's four mounts) and one sidecar on
OS-chosen loopback ports in a background event loop, then drives a fixed script:

- ``assistant`` (primary -> backup -> claude, breaker after 2 failures): successes on
  the primary, streamed and not (latency, time to first token, tokens); two 503s on
  the primary fall back to backup and open its breaker (fallbacks, transitions,
  active tier 1); the cooldown passes on the breaker clock and the prompt-free check
  passes (probes), a trial request closes it again.
- ``to-claude`` (claude only): an OpenAI request asking for logprobs, which the
  Anthropic profile strips (degraded fields).
- ``doomed`` (gem only, gem answering 503): every tier fails (all-tiers-failed).
- ``billed`` (a priced Anthropic source): a success with cache reads and writes (usage
  tokens by model and caller, cost).
- ``keyed`` (a source with two keys, key 0 unresolvable): served by key 1 (key state).
- a config push with an unknown schema version (config updates, result rejected).

Bounded: every request has a timeout; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from typing import Any

import aiohttp

from harness import KEYS, FakeClock, binding, load, sources
from switchyard.compiler import compile_config
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.simulator import Mount, Reply, Simulator, Usage


BREAKER = "  breaker: {consecutiveFailures: 2, cooldownSeconds: 30}"
PRICED = """apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: priced}
spec:
  provider: anthropic
  baseURL: "%s"
  defaultModel: claude-priced
  credentialRef: {name: keys, key: claude}
  pricing:
  - {model: "*", currency: USD, inputPerMillion: 3, outputPerMillion: 15, cachedInputPerMillion: 0.3, cacheWritePerMillion: 3.75}
"""
# A source with several keys (docs/several-keys.md), key 0 of which does not resolve:
# switchyard_key_state has series.
KEYED_SOURCE = """apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: backup-keys}}
spec:
  provider: openai-compatible
  baseURL: {url}
  defaultModel: backup-model
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRefs: [{{name: keys, key: not-there}}, {{name: keys, key: backup}}]
"""
HI = [{"role": "user", "content": "hi"}]


class LiveSidecar:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim: Simulator | None = None
        self.sidecar: Sidecar | None = None
        self.clock = FakeClock()
        self.api = self.admin = ""
        self.log: list[str] = []

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def metrics_url(self) -> str:
        return self.admin + "/metrics"

    def exposition(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as r:
            return r.read().decode()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LiveSidecar:
        self.run(self._start())
        self.run(self._traffic(), timeout=120)
        return self

    def stop(self) -> None:
        async def down() -> None:
            if self.sidecar is not None:
                await self.sidecar.stop()
            if self.sim is not None:
                await self.sim.__aexit__(None, None, None)

        try:
            self.run(down())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    async def _start(self) -> None:
        mounts = [
            Mount("primary", flavour="openai", api_key=KEYS["primary"]),
            Mount("backup", flavour="openai", api_key=KEYS["backup"]),
            Mount("claude", flavour="anthropic", api_key=KEYS["claude"]),
            Mount("gem", flavour="gemini", api_key=KEYS["gem"]),
        ]
        self.sim = Simulator(*mounts, port=0, hang_max_seconds=5)
        await self.sim.__aenter__()
        text = "\n---\n".join([
            sources(self.sim),
            binding("assistant", "primary", "backup", "claude", extra=BREAKER),
            binding("to-claude", "claude"),
            binding("doomed", "gem", extra=BREAKER),
            PRICED % self.sim.base_url("claude"),
            binding("billed", "priced"),
            KEYED_SOURCE.format(url=self.sim.base_url("backup")),
            binding("keyed", "backup-keys"),
        ])
        result = compile_config(load(text))
        self.sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=2)
        self.sidecar.runtime.clock = self.clock
        self.sidecar.load(result.config)
        api, admin = await self.sidecar.start()
        self.api, self.admin = f"http://127.0.0.1:{api}", f"http://127.0.0.1:{admin}"

    # ------------------------------------------------------------------ traffic

    async def _post(self, h: aiohttp.ClientSession, body: dict[str, Any]) -> tuple[int, dict[str, str]]:
        async with h.post(self.api + "/v1/chat/completions", json=body) as r:
            await r.read()
            self.log.append(f"{body['model']} -> {r.status} tier={r.headers.get('x-switchyard-tier')} "
                            f"reason={r.headers.get('x-switchyard-fallback-reason')} degraded={r.headers.get('x-switchyard-degraded')}")
            return r.status, dict(r.headers)

    async def _traffic(self) -> None:
        assert self.sim is not None and self.sidecar is not None
        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(timeout=timeout) as h:
            for stream in (False, True, False):
                status, headers = await self._post(h, {"model": "assistant", "messages": HI, "stream": stream})
                assert status == 200 and headers["x-switchyard-tier"] == "0", self.log
            self.sim.fault("primary", "503", times=2)
            for _ in range(2):
                status, headers = await self._post(h, {"model": "assistant", "messages": HI})
                assert status == 200 and headers["x-switchyard-tier"] == "1", self.log
            status, headers = await self._post(h, {"model": "assistant", "messages": HI})  # breaker open: skipped
            assert headers["x-switchyard-tier"] == "1" and "breaker" in headers.get("x-switchyard-fallback-reason", ""), self.log
            self.clock.advance(31)  # the cooldown passes on the breaker clock
            await self.sidecar.runtime.prober.run_due()  # the prompt-free check (GET models) passes
            status, headers = await self._post(h, {"model": "assistant", "messages": HI})  # half-open trial
            assert status == 200, self.log
            status, headers = await self._post(h, {"model": "to-claude", "messages": HI, "logprobs": True})
            assert status == 200 and "logprobs" in headers.get("x-switchyard-degraded", ""), self.log
            self.sim.fault("gem", "503", persistent=True)
            for _ in range(2):
                status, _h = await self._post(h, {"model": "doomed", "messages": HI})
                assert status >= 500, self.log
            self.sim.script("claude", Reply(text="billed", usage=Usage(input_tokens=100, output_tokens=50, cached_tokens=2000,
                                                                       cache_write_tokens=300)))
            status, _h = await self._post(h, {"model": "billed", "messages": HI})
            assert status == 200, self.log
            status, headers = await self._post(h, {"model": "keyed", "messages": HI})  # served by key 1
            assert status == 200 and headers.get("x-switchyard-key") == "1", self.log
            # A push from an operator of another schema version: refused, the config stays.
            async with h.put(self.admin + "/admin/config", data=json.dumps({"schema_version": 999, "bindings": []}), headers={"Content-Type": "application/json"}) as r:
                assert r.status == 409, await r.text()

    def requests(self, model: str, n: int) -> list[int]:
        """Send ``n`` more requests to a binding now (e.g. while Prometheus watches)."""

        async def go() -> list[int]:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as h:
                return [(await self._post(h, {"model": model, "messages": HI}))[0] for _ in range(n)]

        return self.run(go())
