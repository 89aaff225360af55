"""Promise 6: with known key values, run many scenarios and scan every log line,
response header and body, metric and admin answer for them."""

from __future__ import annotations

import aiohttp

from harness import CLIENT_KEY, KEYS, GatewayFactory, binding
from switchyard.simulator import Simulator

SCENARIOS = [
    ("primary", None),
    ("primary", "429"),
    ("primary", "401"),
    ("primary", "403"),
    ("primary", "500"),
    ("primary", "malformed"),
    ("primary", "empty"),
]


async def test_no_key_leaks_anywhere(gateway: GatewayFactory, sim: Simulator, logs) -> None:  # noqa: ANN001
    gw = await gateway(binding("helper", "primary", "claude", "gem"))
    seen: list[str] = []
    async with aiohttp.ClientSession() as s:

        async def call(path: str, body: dict, headers: dict[str, str] | None = None) -> None:
            h = {"Authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY, **(headers or {})}
            async with s.post(gw.api + path, json=body, headers=h) as r:
                seen.append(str(dict(r.headers)))
                seen.append(await r.text())

        chat = {"model": "helper", "messages": [{"role": "user", "content": "hi"}]}
        for mount, fault in SCENARIOS:
            for stream in (False, True):
                if fault:
                    sim.fault(mount, fault)
                await call("/v1/chat/completions", {**chat, "stream": stream})
        for m in ("primary", "claude", "gem"):
            sim.fault(m, "401")
        await call("/v1/chat/completions", chat)
        await call("/v1/messages", {"model": "helper", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
                   {"anthropic-version": "2023-06-01"})
        await call("/v1beta/models/helper:generateContent", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        for path in ("/admin/status", "/metrics"):
            async with s.get(gw.admin + path) as r:
                seen.append(await r.text())
        async with s.post(gw.admin + "/admin/bindings/helper/test") as r:
            seen.append(await r.text())
    seen.extend(logs.lines)
    assert logs.lines, "request log lines were captured"
    haystack = "\n".join(seen)
    for name, key in KEYS.items():
        assert key not in haystack, f"the {name} key leaked"
        assert key[-8:] not in haystack, f"a fragment of the {name} key leaked"
    # The client's own credential never travels upstream either.
    for m in ("primary", "claude", "gem"):
        for rec in sim.requests(m):
            assert CLIENT_KEY not in str(dict(rec.headers)) and CLIENT_KEY not in rec.raw.decode(errors="replace")
