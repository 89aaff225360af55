"""`Simulator`: the simulator as an async context manager, for tests and the bench.

    async with Simulator() as sim:                      # openai, anthropic, gemini
        client = openai.AsyncOpenAI(base_url=sim.base_url("openai"), api_key="k")
        sim.fault("openai", 429, retry_after=5)         # the next request gets a 429
        sim.script("openai", Reply(text="hi"))          # the next answer says "hi"
        ...
        [request] = sim.requests("openai")

It listens on a port the OS picks (`sim.port`) and drives the same `SimState` as the
`/_sim/` control API, so a test can mix both. Everything runs on the caller's event
loop: the methods that change state are plain (non-async) calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from .app import SIM_STATE, Mount, MountState, RecordedRequest, SimState, build_app
from .faults import Fault, make_fault
from .replies import RawReply, Reply

__all__ = ["Simulator"]


class Simulator:
    """Simulated upstream providers on one loopback port.

    `mounts`: provider names (`"openai"`, `"openrouter"`, `"anthropic"`, `"gemini"`,
    `"openai-compatible"`, each mounted at `/{name}`) or `Mount` objects (any name,
    flavour, prefix — `prefix=""` for the root — key, models). Default: openai,
    anthropic and gemini. `api_keys` maps mount names to a required key (or a list of
    keys, any of which is accepted; faults can be scoped by `key_index=`). `chunks`,
    `chunk_delay_ms` and `delay_ms` are defaults for every mount. `hang_max_seconds`
    bounds a `hang` fault that gives no `max_seconds`.
    """

    def __init__(
        self,
        *mounts: str | Mount,
        host: str = "127.0.0.1",
        port: int = 0,
        chunks: int = 4,
        chunk_delay_ms: float = 0,
        delay_ms: float = 0,
        api_keys: Mapping[str, str | Sequence[str]] | None = None,
        record_limit: int = 10_000,
        hang_max_seconds: float = 60.0,
        access_log: bool = False,
    ) -> None:
        specs = [Mount(m) if isinstance(m, str) else m for m in (mounts or ("openai", "anthropic", "gemini"))]
        keys = dict(api_keys or {})
        if unknown := set(keys) - {m.name for m in specs}:
            raise ValueError(f"api_keys names {', '.join(sorted(unknown))}, which is not a mount")
        specs = [dataclasses.replace(m, api_key=keys[m.name]) if m.name in keys else m for m in specs]
        self.app: web.Application = build_app(
            specs, chunks=chunks, chunk_delay_ms=chunk_delay_ms, delay_ms=delay_ms,
            record_limit=record_limit, hang_max_seconds=hang_max_seconds,
        )
        self.state: SimState = self.app[SIM_STATE]
        self.host = host
        self._port = port
        self._access_log = access_log
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> Simulator:
        kwargs: dict[str, Any] = {} if self._access_log else {"access_log": None}
        runner = web.AppRunner(self.app, handler_cancellation=True, shutdown_timeout=1.0, **kwargs)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self._port = address[1]
        return self

    async def close(self) -> None:
        self.state.closing.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- where ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._runner is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    @property
    def origin(self) -> str:
        """`http://host:port`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def names(self) -> list[str]:
        return list(self.state.mounts)

    def mount(self, name: str | None = None) -> MountState:
        """The live state of a mount (settings, `faults`, `scripts`, `records`)."""
        return self.state.get(name)

    def url(self, name: str | None = None) -> str:
        """The mount's root URL (`http://127.0.0.1:PORT/openai`)."""
        return self.origin + self.state.get(name).mount.prefix

    def base_url(self, name: str | None = None) -> str:
        """What the provider's SDK and a ModelSource `baseURL` point at: the root plus
        `/v1` for OpenAI-style mounts, the root for Anthropic and Gemini."""
        return self.origin + self.state.get(name).base_path

    # -- control --------------------------------------------------------------------

    def fault(self, name: str | None, kind: str | int, **options: Any) -> Fault:
        """Add a fault to a mount and return it (its `hits` count the failed requests).

        Schedule keywords: `times=N` (queued, default 1), or `persistent=True`,
        `every=N`, `rate=P` with `seed=S`; `endpoint=` ("generate", "count_tokens",
        "embed", "models", "model" or "any") and `model=` narrow it. Every other keyword is an
        option of the kind — see `switchyard.simulator.faults`.
        """
        fault = make_fault(kind, **options)
        self.state.get(name).faults.add(fault)
        return fault

    def clear_faults(self, name: str | None = None) -> None:
        """Remove the faults of one mount, or of all when `name` is None."""
        targets = [self.state.get(name)] if name is not None else self.state.mounts.values()
        for ms in targets:
            ms.faults.clear()

    def script(self, name: str | None, *replies: Reply | RawReply, times: int = 1) -> None:
        """Queue replies for a mount's next generation requests, in order (each `times`)."""
        ms = self.state.get(name)
        for reply in replies:
            ms.add_script(reply, times)

    def configure(self, name: str | None = None, *, chunks: int | None = None,
                  chunk_delay_ms: float | None = None, delay_ms: float | None = None) -> None:
        """Change a mount's stream chunk count and delays while it runs."""
        self.state.get(name).configure(chunks=chunks, chunk_delay_ms=chunk_delay_ms, delay_ms=delay_ms)

    def requests(self, name: str | None = None) -> list[RecordedRequest]:
        """What a mount received (oldest first), or every mount's when `name` is None
        and there are several."""
        if name is None and len(self.state.mounts) > 1:
            return sorted((r for ms in self.state.mounts.values() for r in ms.records), key=lambda r: r.time)
        return list(self.state.get(name).records)

    def count(self, name: str | None = None) -> int:
        """How many requests a mount received since the last reset."""
        return self.state.get(name).count

    async def wait_for_requests(self, name: str | None = None, count: int = 1, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until a mount has received `count` requests since the last reset (for a
        hang: the request arrived and is being held). Raises TimeoutError."""
        ms = self.state.get(name)
        async with asyncio.timeout(timeout):
            while ms.count < count:
                ms.arrived.clear()
                await ms.arrived.wait()
        return list(ms.records)

    def reset(self, name: str | None = None) -> None:
        """Clear faults, scripts, records and counts (of one mount, or all)."""
        targets: Sequence[MountState] = [self.state.get(name)] if name is not None else list(self.state.mounts.values())
        for ms in targets:
            ms.reset()
