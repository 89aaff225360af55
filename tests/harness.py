"""Shared fixtures and helpers for tests that run the real sidecar over real HTTP on loopback.

`sim` is a Simulator with two OpenAI-style mounts (`primary`, `backup`), one Anthropic
(`claude`) and one Gemini (`gem`), each requiring its own key. `gateway(bindings)`
compiles manifests that point at those mounts and starts a sidecar on OS-chosen ports;
its breaker clock is a `FakeClock` the test moves forward instead of sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from switchyard.api.manifests import ResourceSet, parse_document
from switchyard.compiler import compile_config
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.simulator import Mount, Simulator

KEYS = {
    "primary": "sk-primary-KEY-4f9a2c",
    "backup": "sk-backup-KEY-77e1d0",
    "claude": "sk-ant-claude-KEY-b3c9",
    "gem": "AIza-gem-KEY-5d2e81",
}
CLIENT_KEY = "client-side-key-should-never-travel"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Gateway:
    sidecar: Sidecar
    api: str
    admin: str
    clock: FakeClock
    reports: dict[Any, Any] = field(default_factory=dict)
    clients: list[Any] = field(default_factory=list)  # SDK clients, closed at teardown

    def openai(self) -> Any:
        from openai import AsyncOpenAI

        c = AsyncOpenAI(base_url=self.api + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20)
        self.clients.append(c)
        return c

    @property
    def runtime(self):
        return self.sidecar.runtime


def sources(sim: Simulator, timeouts: str = "{connectSeconds: 2, firstByteSeconds: 2, totalSeconds: 10}") -> str:
    return f"""
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: primary}}
spec:
  provider: openai-compatible
  baseURL: {sim.base_url("primary")}
  defaultModel: primary-model
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRef: {{name: keys, key: primary}}
  timeouts: {timeouts}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: backup}}
spec:
  provider: openai-compatible
  baseURL: {sim.base_url("backup")}
  defaultModel: backup-model
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRef: {{name: keys, key: backup}}
  timeouts: {timeouts}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: claude}}
spec:
  provider: anthropic
  baseURL: {sim.base_url("claude")}
  defaultModel: claude-model
  credentialRef: {{name: keys, key: claude}}
  timeouts: {timeouts}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: gem}}
spec:
  provider: gemini
  baseURL: {sim.base_url("gem")}
  defaultModel: gem-model
  credentialRef: {{name: keys, key: gem}}
  timeouts: {timeouts}
---
apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData: {yaml.safe_dump(KEYS, default_flow_style=True).strip()}
"""


def load(text: str) -> ResourceSet:
    rs = ResourceSet()
    for i, doc in enumerate(yaml.safe_load_all(text), 1):
        if doc is None:
            continue
        r, errors = parse_document(doc, index=i)
        assert not errors, [str(e) for e in errors]
        {"ModelSource": rs.sources, "CapabilityProfile": rs.profiles, "AssistantBinding": rs.bindings, "Secret": rs.secrets}[
            r.kind
        ].append(r)
    return rs


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    mounts = [
        Mount("primary", flavour="openai", api_key=KEYS["primary"]),
        Mount("backup", flavour="openai", api_key=KEYS["backup"]),
        Mount("claude", flavour="anthropic", api_key=KEYS["claude"]),
        Mount("gem", flavour="gemini", api_key=KEYS["gem"]),
    ]
    async with Simulator(*mounts, port=0, hang_max_seconds=15) as s:
        yield s


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateway(sim: Simulator) -> AsyncIterator[GatewayFactory]:
    started: list[Gateway] = []

    async def make(bindings: str, *, timeouts: str | None = None, max_body_bytes: int | None = None) -> Gateway:
        text = (sources(sim, timeouts) if timeouts else sources(sim)) + "\n---\n" + bindings
        result = compile_config(load(text))
        clock = FakeClock()
        sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=5)
        sidecar.runtime.clock = clock
        if max_body_bytes is not None:
            sidecar.runtime.max_body_bytes = max_body_bytes
        sidecar.load(result.config)
        api, admin = await sidecar.start()
        gw = Gateway(sidecar, f"http://127.0.0.1:{api}", f"http://127.0.0.1:{admin}", clock, result.reports)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        for c in gw.clients:
            await c.close()
        await gw.sidecar.stop()


def binding(name: str, primary: str | None, *fallbacks: str, extra: str = "") -> str:
    prim = "null" if primary is None else f"{{sourceRef: {{name: {primary}}}}}"
    fb = ", ".join(f"{{sourceRef: {{name: {f}}}}}" for f in fallbacks)
    return f"""apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {{name: {name}}}
spec:
  primary: {prim}
  fallbacks: [{fb}]
{extra}
"""


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        from switchyard.logs import JsonLines

        self.records.append(record)
        self.lines.append(JsonLines().format(record))


@pytest.fixture
def logs() -> Any:
    handler = LogCapture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)
