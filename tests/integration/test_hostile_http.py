"""Hostile clients against the real sidecar over HTTP on loopback.

- random bodies (golden requests with random edits, arbitrary bytes, invalid UTF-8) to
  each ingress route: never a 500, never a trace; a protocol-shaped error, or an answer;
- oversized bodies (413 in the caller's protocol, with and without Content-Length),
  oversized or too many headers and a too-long request line (aiohttp's 400, no trace),
  deeply nested JSON (400 in the caller's protocol, both past orjson's read limit and
  past its write limit), invalid UTF-8;
- slow clients: a request head dribbled a byte at a time is cut at ``Limits.idle_seconds``,
  a body dribbled is answered 408 at ``Limits.body_seconds``; others are served meanwhile;
- clients that leave mid-stream or mid-wait: the upstream connection is closed (the
  upstream sees it), no asyncio task is left behind, a half-open breaker trial is given
  back;
- our own bugs: an exception in a handler is a protocol-shaped 500 (traceback in the log
  only); one in the middle of a stream ends it with the protocol's error event;
- upstreams sending a malformed or wrong-shaped chunk mid-stream on a same-protocol
  stream: the client gets its protocol's error event, not the garbage.
"""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import FUZZ_EXAMPLES, RANDOM, mutants, request_seeds
from harness import KEYS, GatewayFactory, binding, load, sources
from switchyard.compiler import compile_config
from switchyard.sidecar.app import Limits, Listen, Sidecar
from switchyard.sidecar.routing.breaker import State
from switchyard.simulator import Mount, RawReply, Simulator

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("switchyard_soak", REPO / "bench" / "soak.py")
assert _spec is not None and _spec.loader is not None
soak = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("switchyard_soak", soak)
_spec.loader.exec_module(soak)

ROUTES = {
    "openai-chat": "/v1/chat/completions",
    "openai-responses": "/v1/responses",
    "anthropic-messages": "/v1/messages",
    "gemini": "/v1beta/models/helper:generateContent",
}
HEADERS = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}


def protocol_error(ingress: str, status: int, raw: bytes) -> bool:
    return soak.error_body_ok(ingress, status, raw)


# ----------------------------------------------------------------------------- a sidecar in a thread


class Served:
    """The simulator and a sidecar on a loop in a thread, for synchronous (hypothesis) tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim: Simulator = self.run(self._sim())
        text = sources(self.sim) + "\n---\n" + binding("helper", "primary", "claude")
        self.sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=1)
        self.sidecar.runtime.max_body_bytes = 256 * 1024
        self.sidecar.load(compile_config(load(text)).config)
        self.port, _ = self.run(self.sidecar.start())

    async def _sim(self) -> Simulator:
        mounts = [Mount(n, flavour=f, api_key=KEYS[n]) for n, f in
                  (("primary", "openai"), ("backup", "openai"), ("claude", "anthropic"), ("gem", "gemini"))]
        return await Simulator(*mounts, port=0, record_limit=10).start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request("POST", path, body=body, headers={**HEADERS, **(headers or {})})
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type") or "", r.read()
        finally:
            conn.close()

    def close(self) -> None:
        self.run(self.sidecar.stop())
        self.run(self.sim.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    s = Served()
    try:
        yield s
    finally:
        s.close()


def _assert_answer(ingress: str, stream: bool, status: int, ctype: str, raw: bytes) -> None:
    assert status != 500, raw[:300]
    assert b"Traceback" not in raw and b'File "' not in raw
    if status == 200:
        cls, why = soak.classify(soak.Call(ingress, stream, "helper"), status, ctype, raw)
        assert cls != soak.LOST, why
    else:
        assert protocol_error(ingress, status, raw), (status, raw[:300])


HTTP_EXAMPLES = max(10, FUZZ_EXAMPLES // 3)


@pytest.mark.parametrize("ingress", list(ROUTES))
def test_random_bodies_get_a_protocol_shaped_answer(served: Served, ingress: str) -> None:
    from hypothesis import HealthCheck, settings

    bodies = st.one_of(
        mutants(request_seeds(ingress)).map(lambda b: orjson.dumps(b) if _dumpable(b) else b"{}"),
        st.binary(max_size=200),
        st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from([b"", b"null", b"[]", b'"x"', b"{", b'{"model": "helper"}', b"\xff\xfe{}", b'{"model": "\xc3\x28"}']),
    )

    @settings(max_examples=HTTP_EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(body=bodies)
    def run(body: bytes) -> None:
        if ingress == "gemini":  # the streaming route too
            path = ROUTES[ingress].replace(":generateContent", ":streamGenerateContent?alt=sse") if body[:1] == b"{" and len(body) % 2 else ROUTES[ingress]
        else:
            path = ROUTES[ingress]
        status, ctype, raw = served.post(path, body)
        stream = "event-stream" in ctype or (b'"stream":true' in body and status == 200)
        _assert_answer(ingress, stream, status, ctype, raw)

    run()


def _dumpable(v: Any) -> bool:
    try:
        orjson.dumps(v)
    except orjson.JSONEncodeError:
        return False
    return True


# ----------------------------------------------------------------------------- size limits


@pytest.mark.parametrize("ingress", list(ROUTES))
def test_oversized_bodies_are_a_413_in_the_callers_protocol(served: Served, ingress: str) -> None:
    big = b'{"model": "helper", "pad": "' + b"x" * (300 * 1024) + b'"}'
    status, _, raw = served.post(ROUTES[ingress], big)
    assert status == 413 and protocol_error(ingress, status, raw), raw[:200]
    # the same without Content-Length (chunked): the limit holds while reading
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
    try:
        conn.request("POST", ROUTES[ingress], body=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]),
                     headers=HEADERS, encode_chunked=True)
        r = conn.getresponse()
        raw = r.read()
        assert r.status == 413 and protocol_error(ingress, r.status, raw), raw[:200]
    finally:
        conn.close()


async def test_large_bodies_that_arrive_in_many_reads_are_read_whole(gateway: GatewayFactory) -> None:
    """``StreamReader.read(n)`` returns what has arrived, not n bytes: a 3 MB request and a
    2 MB config push used to be cut at the first read and refused as invalid JSON."""
    gw = await gateway(binding("helper", "primary"))
    body = orjson.dumps({"model": "helper", "messages": [{"role": "user", "content": "x" * (3 << 20)}]})
    config = gw.runtime.snapshot.config
    b0 = config.bindings[0]
    big = config.model_copy(update={"bindings": [b0.model_copy(update={"aliases": ["helper", *(f"alias-{i:06d}-" + "y" * 40 for i in range(30000))]})]})
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.post(gw.api + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}) as r:
                assert r.status == 200, await r.text()
        wire = big.with_version().to_wire()
        assert len(wire) > 1 << 20
        async with s.put(gw.admin + "/admin/config", data=wire, headers={"Content-Type": "application/json"}) as r:
            assert r.status == 200 and (await r.json())["applied"] is True, await r.text()


def _raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize(
    "head",
    [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"Content-Length: 2\r\n\r\n{}",
        b"POST /v1/chat/completions?" + b"q" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n{}",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello on the plain port
    ],
    ids=["header-too-long", "too-many-headers", "request-line-too-long", "bad-content-length", "tls-hello"],
)
def test_oversized_or_broken_heads_are_refused_without_a_trace(served: Served, head: bytes) -> None:
    out = _raw_request(served.port, head + b"\r\n")
    status_line = out.split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1] in (b"400", b"413", b"414", b"431"), status_line
    assert b"Traceback" not in out and b'File "' not in out
    # and the server is fine afterwards
    status, _, raw = served.post(ROUTES["openai-chat"], orjson.dumps({"model": "helper", "messages": [{"role": "user", "content": "hi"}]}))
    assert status == 200, raw


def test_a_head_aiohttp_refuses_leaves_no_header_bytes_in_the_log(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 15: aiohttp logged the refused head with a traceback quoting it (a header can
    hold a client's credential)."""
    secret = b"sk-client-secret-in-a-bad-header"
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Key: " + secret + b"\x01\r\nContent-Length: 2\r\n\r\n{}"
    with caplog.at_level(logging.DEBUG, logger="aiohttp"):
        out = _raw_request(served.port, head)
    assert out.startswith(b"HTTP/1.0 400") or out.startswith(b"HTTP/1.1 400"), out[:100]
    logged = "\n".join(r.getMessage() + (r.exc_text or "") + str(r.exc_info or "") for r in caplog.records)
    assert "could not parse" in logged and secret.decode() not in logged and "Traceback" not in logged


@pytest.mark.parametrize("ingress", list(ROUTES))
@pytest.mark.parametrize("depth", [300, 900, 5000])
def test_deeply_nested_json_is_a_400_in_the_callers_protocol(served: Served, ingress: str, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    shapes = {
        "openai-chat": b'{"model":"helper","messages":[{"role":"user","content":"hi"}],"metadata":{"x":%s}}',
        "openai-responses": b'{"model":"helper","input":"hi","metadata":{"x":%s}}',
        "anthropic-messages": b'{"model":"helper","max_tokens":8,"messages":[{"role":"user","content":"hi"}],"metadata":{"x":%s}}',
        "gemini": b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"responseSchema":%s}}',
    }
    status, _, raw = served.post(ROUTES[ingress], shapes[ingress] % nested)
    assert status == 400 and protocol_error(ingress, status, raw), (status, raw[:300])


def test_invalid_utf8_in_body_and_header(served: Served) -> None:
    status, _, raw = served.post(ROUTES["anthropic-messages"], b'{"model": "helper\xff", "max_tokens": 8, "messages": []}')
    assert status == 400 and protocol_error("anthropic-messages", status, raw)
    body = b'{"model":"helper","messages":[{"role":"user","content":"hi"}]}'
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nx-switchyard-binding: \xff\xfe\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
    out = _raw_request(served.port, head + body)
    status_line, _, rest = out.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 404") and b"Traceback" not in out, out[:300]
    assert protocol_error("openai-chat", 404, rest.partition(b"\r\n\r\n")[2])


# ----------------------------------------------------------------------------- slow clients


@pytest.fixture
async def strict(sim: Simulator) -> Any:
    """A sidecar with short client limits: 1 s to send a head, 1 s to send a body."""
    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=1,
                      limits=Limits(idle_seconds=1.0, body_seconds=1.0))
    sidecar.load(compile_config(load(sources(sim) + "\n---\n" + binding("helper", "primary"))).config)
    api, _ = await sidecar.start()
    yield sidecar, api
    await sidecar.stop()


async def test_a_head_sent_a_byte_at_a_time_is_cut(strict: Any) -> None:
    sidecar, port = strict
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" * 50
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    closed_after = None
    try:
        for i in range(len(head)):
            writer.write(head[i : i + 1])
            await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(1024), 0.05)  # the dribble's pace
            except TimeoutError:
                continue
            if data == b"" or data:
                closed_after = time.monotonic() - t0
                break
    except ConnectionError:
        closed_after = time.monotonic() - t0
    finally:
        writer.close()
    assert closed_after is not None and closed_after < 1.0 + 1.5, f"the slow head held the connection for {closed_after}"
    # a normal client is served all along
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                          json={"model": "helper", "messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.status == 200


async def test_a_body_sent_slowly_is_a_408_in_the_callers_protocol(strict: Any) -> None:
    _, port = strict
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nanthropic-version: 2023-06-01\r\n"
                 b"Content-Length: 500\r\n\r\n{")
    await writer.drain()
    t0 = time.monotonic()

    async def dribble() -> None:
        for _ in range(100):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.1)  # the slow client's pace, not a synchronisation

    task = asyncio.create_task(dribble())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        took = time.monotonic() - t0
        assert head.startswith(b"HTTP/1.1 408"), head
        length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
        body = await reader.readexactly(length)
        assert protocol_error("anthropic-messages", 408, body), body
        assert took < 1.0 + 1.5
    finally:
        task.cancel()
        writer.close()


# ----------------------------------------------------------------------------- clients that leave


class HoldingUpstream:
    """An OpenAI-style upstream that sends one content chunk (or nothing) and then holds
    the connection open until its client closes it, which it records."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.started.set()
        try:
            if body.get("stream"):
                resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await resp.prepare(request)
                await resp.write(b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"first"}}]}\n\n')
                await self.release.wait()
                return resp
            await self.release.wait()
            return web.json_response({})
        except asyncio.CancelledError:
            self.closed.set()
            raise

    async def start(self) -> str:
        app = web.Application()
        app.add_routes([web.post("/v1/chat/completions", self.chat)])
        self.runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1"


HOLD_SOURCE = """
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: holding}}
spec:
  provider: openai-compatible
  baseURL: {url}
  defaultModel: m
  capabilityProfileRef: {{name: builtin-openai}}
  timeouts: {{connectSeconds: 2, firstByteSeconds: 30, totalSeconds: 60}}
"""


@pytest.mark.parametrize("stream", [True, False], ids=["mid-stream", "waiting-for-head"])
async def test_a_client_leaving_cancels_the_upstream_call_and_leaks_nothing(sim: Simulator, stream: bool) -> None:
    upstream = HoldingUpstream()
    url = await upstream.start()
    text = sources(sim) + "\n---\n" + HOLD_SOURCE.format(url=url) + "---\n" + binding("helper", "holding")
    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=1)
    config = compile_config(load(text)).config
    sidecar.load(config)
    api, _ = await sidecar.start()
    rt = sidecar.runtime
    b = config.bindings[0]
    health = rt.health(b, b.tiers[0])
    health.state = State.HALF_OPEN  # the request is the breaker's one trial: it must be given back
    try:
        await asyncio.sleep(0)  # let the listeners' own tasks settle before counting
        before = len(asyncio.all_tasks())
        reader, writer = await asyncio.open_connection("127.0.0.1", api)
        body = orjson.dumps({"model": "helper", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        await asyncio.wait_for(upstream.started.wait(), 5)
        if stream:
            got = await asyncio.wait_for(reader.readuntil(b"first"), 5)  # the first content reached the client
            assert b"200 OK" in got
        assert health.half_open_in_flight == 1
        writer.transport.abort()  # the client is gone
        await asyncio.wait_for(upstream.closed.wait(), 5)  # ... and so is the upstream call
        deadline = time.monotonic() + 5
        while (rt.in_flight or len(asyncio.all_tasks()) > before) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # no event says 'every task has ended': polled under a deadline
        assert rt.in_flight == 0
        assert len(asyncio.all_tasks()) <= before, [t.get_coro() for t in asyncio.all_tasks()]
        assert health.half_open_in_flight == 0, "the half-open trial was not given back"
    finally:
        upstream.release.set()
        await sidecar.stop()
        await upstream.runner.cleanup()


# ----------------------------------------------------------------------------- our own bugs, broken upstreams


async def test_a_handler_bug_is_a_protocol_shaped_500_with_the_trace_only_in_the_log(
    gateway: GatewayFactory, logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from switchyard.sidecar.translate import anthropic_messages

    gw = await gateway(binding("helper", "primary"))

    def boom(body: Any) -> Any:
        raise KeyError("simulated bug")

    monkeypatch.setattr(anthropic_messages.ADAPTER, "features_used", boom)
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.api + "/v1/messages", headers={"anthropic-version": "2023-06-01"},
                          json={"model": "helper", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}) as r:
            raw = await r.read()
            assert r.status == 500 and protocol_error("anthropic-messages", 500, raw), raw
            assert b"simulated bug" not in raw and b"Traceback" not in raw
    assert any("simulated bug" in line and "Traceback" in line for line in logs.lines)


async def test_a_bug_mid_stream_ends_the_stream_with_an_error_event(gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from switchyard.sidecar.pipeline import attempt

    gw = await gateway(binding("helper", "claude"))  # OpenAI client, Anthropic tier: the encoder runs
    real = attempt.Relay.render
    calls = {"n": 0}

    def flaky(self: Any, items: Any) -> bytes:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("simulated encoder bug")
        return real(self, items)

    monkeypatch.setattr(attempt.Relay, "render", flaky)
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.api + "/v1/chat/completions",
                          json={"model": "helper", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
            raw = await r.read()
            assert r.status == 200
    assert soak.classify_stream("openai-chat", raw)[0] == soak.PROTOCOL_ERROR, raw[-300:]


@pytest.mark.parametrize("frame", [b"data: {not json\n\n", b'data: {"id":"x","choices":[false]}\n\n'], ids=["malformed", "wrong-shape"])
async def test_a_broken_upstream_chunk_mid_stream_is_our_error_event_not_the_garbage(
    gateway: GatewayFactory, sim: Simulator, frame: bytes
) -> None:
    gw = await gateway(binding("helper", "primary"))  # same protocol: the passthrough relay
    good = b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hello"}}]}\n\n'
    sim.configure("primary", chunk_delay_ms=100)  # the good chunk reaches the client first
    sim.script("primary", RawReply(events=[good, frame, b"data: [DONE]\n\n"]))
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.api + "/v1/chat/completions",
                          json={"model": "helper", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
            raw = await r.read()
    assert b"hello" in raw and frame.strip() not in raw
    assert soak.classify_stream("openai-chat", raw)[0] == soak.PROTOCOL_ERROR, raw


async def test_client_json_keys_never_reach_a_response_header_raw(gateway: GatewayFactory) -> None:
    """Unknown fields are reported in x-switchyard-degraded by name; a name holding CR/LF or
    another control character was put in the header as is, and aiohttp refused to send the
    answer (a 500). Now escaped."""
    gw = await gateway(binding("helper", "claude"))  # OpenAI client, Anthropic tier: unknown fields are reported
    body = {"model": "helper", "messages": [{"role": "user", "content": "hi"}], "x\r\nSet-Cookie: a=b": 1, "\u001f\u00e9": 2}
    async with aiohttp.ClientSession() as s:
        for stream in (False, True):
            async with s.post(gw.api + "/v1/chat/completions", json={**body, "stream": stream}) as r:
                raw = await r.read()
                assert r.status == 200, raw
                degraded = r.headers["x-switchyard-degraded"]
                assert "\\r\\n" in degraded and "\\x1f" in degraded and "Set-Cookie" not in r.headers
                assert all(0x20 <= ord(c) < 0x7F for c in degraded)


async def test_large_bodies_in_flight_are_bounded(gateway: GatewayFactory, sim: Simulator) -> None:
    """Issue 15, attack 5: the sidecar accepted 32 MiB bodies under a 256 MiB limit; six at
    once peaked at 655 MB RSS (an OOM kill drops every stream of the pod). Bodies in
    flight are bounded now: one that does not fit waits for nobody, it is a retryable
    503 in its protocol; one larger than the whole budget is a 413."""
    gw = await gateway(binding("helper", "primary"))
    gw.runtime.bodies.limit = 3 * 1024 * 1024
    sim.configure("primary", chunks=4, chunk_delay_ms=800)  # the first request holds its body ~3 s
    big = "x" * (2 * 1024 * 1024)
    body = {"model": "helper", "messages": [{"role": "user", "content": big}]}
    async with aiohttp.ClientSession() as s:

        async def post(b: dict, headers: dict[str, str] | None = None, path: str = "/v1/chat/completions") -> tuple[int, dict, bytes]:
            async with s.post(gw.api + path, json=b, headers=headers or {}) as r:
                return r.status, dict(r.headers), await r.read()

        first = asyncio.create_task(post({**body, "stream": True}))  # a slow stream: its body held meanwhile
        await sim.wait_for_requests("primary", 1)
        status, headers, raw = await post(body)
        assert status == 503 and headers["Retry-After"] == "1" and orjson.loads(raw)["error"]["code"] == "gateway_busy"
        anth = {"model": "helper", "max_tokens": 8, "messages": [{"role": "user", "content": big}]}
        status, _, raw = await post(anth, {"anthropic-version": "2023-06-01"}, "/v1/messages")
        assert status == 503 and protocol_error("anthropic-messages", 503, raw)
        assert (await first)[0] == 200
        assert gw.runtime.bodies.held == 0, "every body given back"
        huge = {"model": "helper", "messages": [{"role": "user", "content": "x" * (4 * 1024 * 1024)}]}
        status, _, raw = await post(huge)
        assert status == 413 and protocol_error("openai-chat", 413, raw)
        status, _, _ = await post({"model": "helper", "messages": [{"role": "user", "content": "hi"}]})
        assert status == 200
