"""Issue 15, attack 1: a web page must not be able to use the gateway on loopback.

A page on any site can send a cross-origin POST with a text/plain body (no CORS
preflight) to 127.0.0.1, and DNS rebinding points a name it controls at 127.0.0.1 so
that even the admin API's PUT /admin/config goes through. Both listeners now answer only
their own names, refuse foreign Origins, and take bodies only as JSON."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from harness import GatewayFactory, binding
from switchyard.compiler import compile_config
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.sidecar.http.guard import Exposure
from switchyard.simulator import Simulator


async def raw(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        out = await asyncio.wait_for(reader.read(), 10)  # Connection: close: until the server closes
    finally:
        writer.close()
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def http(method: str, path: str, body: bytes, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()),
             f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode() + body


CHAT = orjson.dumps({"model": "helper", "messages": [{"role": "user", "content": "hi"}]})


async def test_dns_rebinding_cannot_push_a_config(gateway: GatewayFactory) -> None:
    gw = await gateway(binding("helper", "primary"))
    before = gw.runtime.snapshot.config.version
    port = int(gw.admin.rsplit(":", 1)[1])
    evil = gw.runtime.snapshot.config.model_copy(update={"bindings": []}).with_version().to_wire()
    status, body = await raw(port, http("PUT", "/admin/config", evil, Host=f"attacker.example:{port}", Content_Type="application/json"))
    assert status == 421 and b"attacker.example" in body
    assert gw.runtime.snapshot.config.version == before, "the pushed config was not applied"
    # The same push with a loopback Host (the operator or a local tool) is served.
    status, _ = await raw(port, http("PUT", "/admin/config", evil, Host=f"127.0.0.1:{port}", Content_Type="application/json"))
    assert status == 200 and gw.runtime.snapshot.config.version != before


@pytest.mark.parametrize(
    ("path", "check"),
    [
        ("/v1/chat/completions", lambda b: b["error"]["code"] in ("origin_not_allowed", "unsupported_media_type", "host_not_allowed")),
        ("/v1/messages", lambda b: b["type"] == "error"),
        ("/v1beta/models/helper:generateContent", lambda b: b["error"]["status"] in ("PERMISSION_DENIED", "INVALID_ARGUMENT", "FAILED_PRECONDITION")),
    ],
)
async def test_a_web_page_cannot_spend_the_keys(gateway: GatewayFactory, sim: Simulator, path: str, check) -> None:
    gw = await gateway(binding("helper", "primary"))
    port = int(gw.api.rsplit(":", 1)[1])
    attempts = [
        # cross-origin "simple" request: text/plain, no preflight
        dict(Host=f"127.0.0.1:{port}", Origin="https://evil.example", Content_Type="text/plain;charset=UTF-8"),
        # ... even claiming JSON, a foreign Origin is refused
        dict(Host=f"127.0.0.1:{port}", Origin="https://evil.example", Content_Type="application/json"),
        # a Blob body without a type (a browser then sends no Content-Type)
        dict(Host=f"127.0.0.1:{port}"),
        # DNS rebinding
        dict(Host=f"evil.example:{port}", Content_Type="application/json"),
    ]
    for headers in attempts:
        status, body = await raw(port, http("POST", path, CHAT, **headers))
        assert status in (403, 415, 421), (headers, status, body)
        assert check(orjson.loads(body)), body
    assert sim.count("primary") == 0, "nothing reached the upstream"
    # What SDKs and CLIs send (no Origin, JSON) is served; so is a page of the gateway's own origin.
    status, _ = await raw(port, http("POST", "/v1/chat/completions", CHAT, Host=f"localhost:{port}", Content_Type="application/json"))
    assert status == 200
    status, _ = await raw(port, http("POST", "/v1/chat/completions", CHAT, Host=f"127.0.0.1:{port}",
                               Origin=f"http://127.0.0.1:{port}", Content_Type="application/json"))
    assert status == 200


async def test_configured_names_and_origins_are_served(sim: Simulator) -> None:
    from harness import load, sources

    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0),
                      exposure=Exposure.of(hosts=["gateway.internal"], origins=["https://app.example"]))
    sidecar.load(compile_config(load(sources(sim) + "\n---\n" + binding("helper", "primary"))).config)
    api, _ = await sidecar.start()
    try:
        ok = await raw(api, http("POST", "/v1/chat/completions", CHAT, Host="gateway.internal", Origin="https://app.example",
                           Content_Type="application/json"))
        assert ok[0] == 200
        assert (await raw(api, http("POST", "/v1/chat/completions", CHAT, Host="other.internal", Content_Type="application/json")))[0] == 421
    finally:
        await sidecar.stop()
