"""The moment a stream commits (issue 18, item 7): the response head and the first
content event leave the sidecar in one write, so the client's first byte is content."""

from __future__ import annotations

from asyncio import selector_events
from typing import Any

import aiohttp
import pytest

from harness import GatewayFactory, binding
from switchyard.simulator import Simulator

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server_writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write a socket transport of this process makes, as the bytes written."""
    writes: list[bytes] = []

    cls: Any = selector_events._SelectorSocketTransport
    real_write, real_writelines = cls.write, cls.writelines

    def write(self, data):  # type: ignore[no-untyped-def]
        writes.append(bytes(data))
        return real_write(self, data)

    def writelines(self, chunks):  # type: ignore[no-untyped-def]
        chunks = [bytes(c) for c in chunks]
        writes.append(b"".join(chunks))
        return real_writelines(self, chunks)

    monkeypatch.setattr(cls, "write", write)
    monkeypatch.setattr(cls, "writelines", writelines)
    return writes


@pytest.mark.parametrize("path", ["same", "cross"])
async def test_the_head_leaves_with_the_first_content_event(
    gateway: GatewayFactory, sim: Simulator, server_writes: list[bytes], path: str
) -> None:
    gw = await gateway(binding("helper", "primary" if path == "same" else "claude"))
    sim.configure("primary" if path == "same" else "claude", chunks=3, chunk_delay_ms=30)
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.api + "/v1/chat/completions", json={"model": "helper", "messages": HI, "stream": True}) as r:
            assert r.status == 200
            await r.read()
    # the sidecar's head (the simulator upstream runs in this process too)
    heads = [w for w in server_writes if w.startswith(b"HTTP/1.1 200") and b"x-switchyard-binding" in w.lower()]
    assert len(heads) == 1, heads
    head, _, rest = heads[0].partition(b"\r\n\r\n")
    assert b"x-switchyard-tier: 0" in head.lower()
    assert b"Simulated" in rest, f"the head was written without the first content event: {heads[0]!r}"
