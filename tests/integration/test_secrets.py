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


async def test_no_key_leaks_anywhere(gateway: GatewayFactory, sim: Simulator, logs) -> None:
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


# ------------------------------------------------------------------ every ingress, every credential header

CLIENT_CREDENTIALS = {
    "Authorization": f"Bearer {CLIENT_KEY}",
    "x-api-key": CLIENT_KEY,
    "x-goog-api-key": CLIENT_KEY,
    "api-key": CLIENT_KEY,  # Azure OpenAI style
    "Proxy-Authorization": f"Basic {CLIENT_KEY}",
    "Cookie": f"session={CLIENT_KEY}",
}

INGRESS_CALLS = [
    ("openai-chat", "/v1/chat/completions", {"model": "helper", "messages": [{"role": "user", "content": "hi"}]}, {}),
    ("openai-responses", "/v1/responses", {"model": "helper", "input": "hi"}, {}),
    ("anthropic-messages", "/v1/messages", {"model": "helper", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
     {"anthropic-version": "2023-06-01", "anthropic-beta": "prompt-caching-2024-07-31"}),
    ("gemini", f"/v1beta/models/helper:generateContent?key={CLIENT_KEY}", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, {}),
]


def _stream(ingress: str, path: str, body: dict) -> tuple[str, dict]:
    if ingress == "gemini":
        return path.replace(":generateContent?", ":streamGenerateContent?alt=sse&"), body
    return path, {**body, "stream": True}


async def test_no_key_leaks_on_any_ingress_and_no_client_credential_travels(gateway: GatewayFactory, sim: Simulator, logs) -> None:
    """Each ingress (OpenAI chat, Responses, Anthropic, Gemini), whole and streamed, served by
    each tier protocol (same protocol: the passthrough path; others: translated), healthy and
    failing: no tier key in any answer, header, log line, metric or admin answer, and no
    client credential (any header, or Gemini's ?key=) in anything an upstream received."""
    bindings = "---\n".join(binding(f"via-{m}", m) for m in ("primary", "claude", "gem"))
    gw = await gateway(bindings)
    seen: list[str] = []
    async with aiohttp.ClientSession() as s:
        for mount in ("primary", "claude", "gem"):
            for fault in (None, "401", "429", "500", "error-event"):
                for ingress, path, body, extra in INGRESS_CALLS:
                    for stream in (False, True):
                        if fault:
                            sim.fault(mount, fault)
                        p, b = _stream(ingress, path, body) if stream else (path, body)
                        p = p.replace("helper", f"via-{mount}")
                        b = {**b, "model": f"via-{mount}"} if "model" in b else b
                        async with s.post(gw.api + p, json=b, headers={**CLIENT_CREDENTIALS, **extra}) as r:
                            seen.append(str(dict(r.headers)))
                            seen.append(await r.text())
                        sim.clear_faults(mount)
        for path in ("/admin/status", "/metrics"):
            async with s.get(gw.admin + path) as r:
                seen.append(await r.text())
        for mount in ("primary", "claude", "gem"):
            async with s.post(gw.admin + f"/admin/bindings/via-{mount}/test") as r:
                seen.append(await r.text())
    seen.extend(logs.lines)
    haystack = "\n".join(seen)
    for name, key in KEYS.items():
        assert key not in haystack, f"the {name} key leaked"
        assert key[-8:] not in haystack, f"a fragment of the {name} key leaked"
    received = 0
    for mount in ("primary", "claude", "gem"):
        for rec in sim.requests(mount):
            received += 1
            headers = {k.lower(): v for k, v in rec.headers.items()}
            blob = str(headers) + str(rec.query) + rec.path + rec.raw.decode(errors="replace")
            assert CLIENT_KEY not in blob, f"a client credential reached {mount}: {blob[:300]}"
            assert "cookie" not in headers and "proxy-authorization" not in headers and "api-key" not in headers
            assert "key" not in rec.query, rec.query
            # ... and the tier's own key did arrive, in the header its protocol uses
            tier_key = KEYS[mount]
            assert tier_key in (headers.get("authorization", "") + headers.get("x-api-key", "") + headers.get("x-goog-api-key", ""))
        assert sim.requests(mount), f"{mount} was never called"
    assert received >= 3 * 4 * 2


# ------------------------------------------------- keys echoed back by an upstream (issue 15)

STREAMS = {
    "openai-chat": ("/v1/chat/completions", {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}, {}),
    "anthropic-messages": ("/v1/messages", {"model": "echo", "stream": True, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
                           {"anthropic-version": "2023-06-01"}),
    "gemini": ("/v1beta/models/echo:streamGenerateContent?alt=sse", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, {}),
}


def _leaks(text: str, key: str) -> bool:
    return key in text or key[:8] in text


async def test_a_key_echoed_in_a_mid_stream_error_reaches_no_client_and_no_log(gateway: GatewayFactory, sim: Simulator, logs) -> None:
    """Mid-stream upstream errors were relayed without scrubbing (same protocol: the raw
    event; other protocols: its message), to the client and to the log line."""
    for mount in ("primary", "claude", "gem"):
        gw = await gateway(binding("echo", mount))
        sim.configure(mount, chunks=4, chunk_delay_ms=30)  # content reaches the client before the error does
        key = KEYS[mount]
        async with aiohttp.ClientSession() as s:
            for ingress, (path, body, headers) in STREAMS.items():
                sim.fault(mount, "error-event", after_chunks=2, message=f"the key {key} is over quota")
                async with s.post(gw.api + path, json=body, headers=headers) as r:
                    text = await r.text()
                assert r.status == 200 and "over quota" in text, (mount, ingress, text[-400:])
                assert not _leaks(text, key), f"{mount} key reached a {ingress} client: {text[-400:]}"
        assert not any(_leaks(line, key) for line in logs.lines), f"{mount} key in the log"


async def test_a_token_count_refused_with_the_key_in_the_text_does_not_relay_it(gateway: GatewayFactory, sim: Simulator, logs) -> None:
    """count_tokens relayed the upstream's 401 text, key included."""
    gw = await gateway(binding("echo", "claude"))
    key = KEYS["claude"]
    sim.fault("claude", "401", endpoint="count_tokens", message=f"invalid x-api-key: {key}")
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.api + "/v1/messages/count_tokens", headers={"anthropic-version": "2023-06-01"},
                          json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]}) as r:
            text = await r.text()
    assert r.status in (502, 503) and r.status != 401, text
    assert not _leaks(text, key) and not any(_leaks(line, key) for line in logs.lines)
    sim.fault("claude", "400", endpoint="count_tokens", message=f"bad request for key {key[:12]}")
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.api + "/v1/messages/count_tokens", headers={"anthropic-version": "2023-06-01"},
                          json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]}) as r:
            text = await r.text()
    assert r.status == 400 and "bad request for key" in text and not _leaks(text, key), text
