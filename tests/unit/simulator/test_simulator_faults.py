"""Simulator faults, acted out over real HTTP on loopback.

Each fault kind on each flavour where the flavour changes what goes on the wire:
status errors in the provider's shape with its retry hints, hang, empty, reset,
malformed, slow, error-event; queued and persistent schedules (every Nth, seeded
rate), scoping to an endpoint or a model; and the CLI's fault spec syntax. Client
timeouts are the only clocks: nothing here sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, UTC
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from switchyard.sidecar.translate.sse import SSEDecoder
from switchyard.simulator import Reply, Simulator, parse_fault_spec
from switchyard.simulator.faults import make_fault

TIMEOUT = aiohttp.ClientTimeout(total=10)
FLAVOURS = ("openai", "anthropic", "gemini")


def sse(body: bytes) -> list[tuple[str | None, str]]:
    """(event, data) of each complete SSE event, read with the sidecar's own decoder."""
    decoder = SSEDecoder()
    return [(e.event, e.data) for e in [*decoder.feed(body), *decoder.flush()]]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(hang_max_seconds=5) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield session


def request_for(sim: Simulator, flavour: str, *, stream: bool = False, sse_form: bool = True) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(url, JSON body, headers) of a minimal generation request in `flavour`."""
    if flavour == "openai":
        body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            body["stream"] = True
        return sim.base_url("openai") + "/chat/completions", body, {}
    if flavour == "anthropic":
        body = {"model": "claude-sonnet-5-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            body["stream"] = True
        return sim.base_url("anthropic") + "/v1/messages", body, {"anthropic-version": "2023-06-01"}
    action = "streamGenerateContent" + ("?alt=sse" if sse_form else "") if stream else "generateContent"
    return f"{sim.base_url('gemini')}/v1beta/models/gemini-2.5-flash:{action}", {"contents": [{"parts": [{"text": "hi"}]}]}, {}


async def call(http: aiohttp.ClientSession, sim: Simulator, flavour: str, **kwargs: Any) -> tuple[int, CIMultiDict[str], bytes]:
    url, body, headers = request_for(sim, flavour, **kwargs)
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, CIMultiDict(response.headers), await response.read()


def content_of(flavour: str, body: bytes, *, stream: bool) -> str:
    """The answer's text, from a complete (non-faulty) body."""
    if not stream:
        data = json.loads(body)
        if flavour == "openai":
            return data["choices"][0]["message"]["content"] or ""
        if flavour == "anthropic":
            return "".join(b.get("text", "") for b in data["content"])
        return "".join(p.get("text", "") for p in data["candidates"][0]["content"].get("parts", []))
    text = ""
    for _, data in sse(body):
        if data == "[DONE]":
            continue
        item = json.loads(data)
        if flavour == "openai":
            text += "".join(c["delta"].get("content") or "" for c in item["choices"])
        elif flavour == "anthropic":
            text += item.get("delta", {}).get("text", "") if item["type"] == "content_block_delta" else ""
        else:
            text += "".join(p.get("text", "") for p in item["candidates"][0]["content"].get("parts", []))
    return text


# ============================================================================ status errors


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 502, 503, 529])
async def test_status_faults_answer_in_the_provider_error_shape(sim, http, flavour, status) -> None:
    sim.fault(flavour, status)
    got, headers, body = await call(http, sim, flavour)
    assert got == status
    error = json.loads(body)
    if flavour == "openai":
        assert set(error["error"]) == {"message", "type", "param", "code"} and error["error"]["message"]
        assert error["error"]["type"] == ("server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error")
    elif flavour == "anthropic":
        expected = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                    429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "api_error", 529: "overloaded_error"}
        assert error["type"] == "error" and error["error"]["type"] == expected[status]
        assert error["request_id"] == headers["request-id"]
    else:
        expected_status = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "INTERNAL", 503: "UNAVAILABLE", 529: "UNAVAILABLE"}
        assert error["error"]["code"] == status and error["error"]["status"] == expected_status[status]
    # the fault was queued once: the next request is served
    assert (await call(http, sim, flavour))[0] == 200
    assert [r.outcome for r in sim.requests(flavour)] == [f"fault:{status}", "ok"]


async def test_model_not_found_names_the_model(sim, http) -> None:
    sim.fault("openai", 404)
    sim.fault("anthropic", 404)
    assert "`gpt-4o-mini` does not exist" in json.loads((await call(http, sim, "openai"))[2])["error"]["message"]
    assert json.loads((await call(http, sim, "anthropic"))[2])["error"]["message"] == "model: claude-sonnet-5-5"


async def test_429_retry_after_seconds_with_native_hints(sim, http) -> None:
    for flavour in FLAVOURS:
        sim.fault(flavour, 429, retry_after=5)
    _, headers, body = await call(http, sim, "openai")
    assert headers["retry-after"] == "5" and headers["x-ratelimit-reset-requests"] == "5s"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"

    before = datetime.now(UTC).replace(microsecond=0)
    _, headers, body = await call(http, sim, "anthropic")
    assert headers["retry-after"] == "5"
    reset = datetime.strptime(headers["anthropic-ratelimit-requests-reset"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 4 <= (reset - before).total_seconds() <= 7
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert {"anthropic-ratelimit-tokens-reset", "anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-output-tokens-reset"} <= set(headers)

    _, headers, body = await call(http, sim, "gemini")
    details = json.loads(body)["error"]["details"]
    retry = [d for d in details if d["@type"] == "type.googleapis.com/google.rpc.RetryInfo"]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "5s"}]
    assert any(d["@type"].endswith("QuotaFailure") for d in details)


async def test_429_retry_after_as_http_date_or_milliseconds_or_native_only(sim, http) -> None:
    sim.fault("openai", 429, retry_after_date=30)
    sim.fault("openai", 429, retry_after_ms=1500)
    sim.fault("openai", 429, reset_after=2.5)
    sim.fault("gemini", 429, reset_after=1.5)
    sim.fault("anthropic", 429)
    _, headers, _ = await call(http, sim, "openai")
    when = parsedate_to_datetime(headers["retry-after"])
    assert 25 <= (when - datetime.now(UTC)).total_seconds() <= 31
    _, headers, _ = await call(http, sim, "openai")
    assert headers["retry-after-ms"] == "1500" and "retry-after" not in headers
    assert headers["x-ratelimit-reset-requests"] == "1.5s"
    _, headers, _ = await call(http, sim, "openai")
    assert "retry-after" not in headers and headers["x-ratelimit-reset-requests"] == "2.5s"
    _, headers, body = await call(http, sim, "gemini")
    assert "retry-after" not in headers and "Please retry in 1.5s." in json.loads(body)["error"]["message"]
    _, headers, _ = await call(http, sim, "anthropic")
    assert not any(h.startswith("anthropic-ratelimit") or h == "retry-after" for h in headers)


async def test_status_fault_options_message_and_should_retry(sim, http) -> None:
    sim.fault("anthropic", 529, message="Overloaded, try later", should_retry=False)
    status, headers, body = await call(http, sim, "anthropic")
    assert status == 529 and headers["x-should-retry"] == "false"
    assert json.loads(body)["error"] == {"type": "overloaded_error", "message": "Overloaded, try later"}


# ================================================================================= schedules


async def test_queued_faults_are_consumed_in_order(sim, http) -> None:
    sim.fault("openai", 500, times=2)
    sim.fault("openai", 429)
    statuses = [(await call(http, sim, "openai"))[0] for _ in range(4)]
    assert statuses == [500, 500, 429, 200]
    assert not sim.mount("openai").faults


async def test_persistent_every_nth_request(sim, http) -> None:
    fault = sim.fault("openai", 503, every=3)
    statuses = [(await call(http, sim, "openai"))[0] for _ in range(7)]
    assert statuses == [200, 200, 503, 200, 200, 503, 200]
    assert (fault.hits, fault.seen) == (2, 7)
    sim.clear_faults("openai")
    assert (await call(http, sim, "openai"))[0] == 200


async def test_persistent_rate_is_seeded_and_repeatable(http) -> None:
    patterns = []
    for _ in range(2):
        async with Simulator("openai") as sim:
            sim.fault("openai", 429, rate=0.5, seed=42)
            patterns.append([(await call(http, sim, "openai"))[0] for _ in range(12)])
    assert patterns[0] == patterns[1]
    assert 200 in patterns[0] and 429 in patterns[0]


async def test_persistent_always(sim, http) -> None:
    sim.fault("gemini", 500, persistent=True)
    assert [(await call(http, sim, "gemini"))[0] for _ in range(3)] == [500, 500, 500]


async def test_faults_hit_generation_unless_scoped(sim, http) -> None:
    base = sim.base_url("openai")
    sim.fault("openai", 429)
    assert (await http.get(base + "/models")).status == 200  # a catalogue refresh does not eat it
    assert (await call(http, sim, "openai"))[0] == 429
    sim.fault("openai", 503, endpoint="models")
    assert (await call(http, sim, "openai"))[0] == 200
    assert (await http.get(base + "/models")).status == 503
    sim.fault("anthropic", 500, endpoint="count_tokens")
    count = await http.post(sim.base_url("anthropic") + "/v1/messages/count_tokens", headers={"anthropic-version": "2023-06-01"},
                            json={"model": "c", "messages": []})
    assert count.status == 500
    sim.fault("openai", 500, endpoint="any", times=2)
    assert (await http.get(base + "/models")).status == 500 and (await call(http, sim, "openai"))[0] == 500


async def test_faults_scoped_to_a_model(sim, http) -> None:
    sim.fault("openai", 429, model="gpt-big", persistent=True)
    url, body, _ = request_for(sim, "openai")
    assert (await http.post(url, json=body)).status == 200
    assert (await http.post(url, json={**body, "model": "gpt-big"})).status == 429


async def test_a_faulted_request_keeps_the_script_for_the_next(sim, http) -> None:
    sim.script("openai", Reply(text="scripted"))
    sim.fault("openai", 503)
    assert (await call(http, sim, "openai"))[0] == 503
    assert content_of("openai", (await call(http, sim, "openai"))[2], stream=False) == "scripted"


# ====================================================================================== hang


async def test_hang_holds_until_the_client_gives_up(sim, http) -> None:
    sim.fault("anthropic", "hang")
    url, body, headers = request_for(sim, "anthropic")
    pending = asyncio.ensure_future(http.post(url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=10)))
    await sim.wait_for_requests("anthropic", count=1, timeout=5)  # held, not answered
    assert not pending.done()
    pending.cancel()  # the client gives up
    with pytest.raises(asyncio.CancelledError):
        await pending
    [held] = sim.requests("anthropic")
    assert held.outcome == "fault:hang"
    assert (await call(http, sim, "anthropic"))[0] == 200  # and the mount still serves


async def test_hang_ends_with_a_reset_after_max_seconds(sim, http) -> None:
    sim.fault("openai", "hang", max_seconds=0.1)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await call(http, sim, "openai")


async def test_hang_mid_stream_after_chunks(sim, http) -> None:
    sim.fault("openai", "hang", after_chunks=2)
    url, body, _ = request_for(sim, "openai", stream=True)
    async with http.post(url, json=body) as response:
        assert response.status == 200
        received = b""
        with pytest.raises(asyncio.TimeoutError):
            async with asyncio.timeout(0.3):
                async for data in response.content.iter_any():
                    received += data
    frames = [json.loads(d) for _, d in sse(received)]
    assert len(frames) == 3 and frames[0]["choices"][0]["delta"]["role"] == "assistant"  # head + 2 chunks


async def test_closing_the_simulator_ends_a_hang(http) -> None:
    sim = await Simulator("gemini", hang_max_seconds=30).start()
    sim.fault("gemini", "hang")
    task = asyncio.create_task(call(http, sim, "gemini"))
    await sim.wait_for_requests("gemini", 1)
    started = time.monotonic()
    await sim.close()
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await task
    assert time.monotonic() - started < 5


# ===================================================================================== empty


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_empty_non_streaming_is_a_200_without_content(sim, http, flavour) -> None:
    sim.fault(flavour, "empty")
    status, _, body = await call(http, sim, flavour)
    assert status == 200 and content_of(flavour, body, stream=False) == ""
    data = json.loads(body)
    if flavour == "openai":
        assert data["choices"][0]["message"]["content"] == "" and data["choices"][0]["finish_reason"] == "stop"
    elif flavour == "anthropic":
        assert data["content"] == [] and data["stop_reason"] == "end_turn"
    else:
        assert data["candidates"][0]["content"] == {"role": "model"} and data["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_empty_stream_is_only_the_envelope(sim, http, flavour) -> None:
    sim.fault(flavour, "empty")
    status, _, body = await call(http, sim, flavour, stream=True)
    assert status == 200 and content_of(flavour, body, stream=True) == ""
    frames = sse(body)
    if flavour == "openai":
        assert frames[-1] == (None, "[DONE]") and len(frames) == 3
        assert json.loads(frames[1][1])["choices"][0]["finish_reason"] == "stop"
    elif flavour == "anthropic":
        assert [e for e, _ in frames] == ["message_start", "ping", "message_delta", "message_stop"]
    else:
        [(_, data)] = frames
        assert json.loads(data)["candidates"][0] == {"content": {"role": "model"}, "finishReason": "STOP", "index": 0}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("stream", [False, True])
async def test_empty_zero_is_a_200_with_nothing_in_it(sim, http, flavour, stream) -> None:
    sim.fault(flavour, "empty", mode="zero")
    status, headers, body = await call(http, sim, flavour, stream=stream)
    assert status == 200 and body == b""
    if stream:
        assert headers["Content-Type"].startswith("text/event-stream")


async def test_empty_gemini_json_array_stream(sim, http) -> None:
    sim.fault("gemini", "empty")
    _, _, body = await call(http, sim, "gemini", stream=True, sse_form=False)
    assert json.loads(body) == [json.loads(body)[0]] and "parts" not in json.loads(body)[0]["candidates"][0]["content"]


# ===================================================================================== reset


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_reset_before_the_response_head(sim, http, flavour) -> None:
    sim.fault(flavour, "reset")
    with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
        await call(http, sim, flavour)
    assert (await call(http, sim, flavour))[0] == 200


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_reset_after_stream_chunks(sim, http, flavour) -> None:
    sim.configure(flavour, chunks=4)
    sim.fault(flavour, "reset", after_chunks=2)
    url, body, headers = request_for(sim, flavour, stream=True)
    received = b""
    async with http.post(url, json=body, headers=headers) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in response.content.iter_any():
                received += data
    text = content_of(flavour, received, stream=True)
    full = content_of(flavour, (await call(http, sim, flavour, stream=True))[2], stream=True)
    assert text and full.startswith(text) and len(text) < len(full)
    assert b"[DONE]" not in received and b"message_stop" not in received and b"finishReason" not in received


async def test_reset_after_bytes_of_a_non_streaming_body(sim, http) -> None:
    sim.fault("openai", "reset", after_bytes=20)
    url, body, _ = request_for(sim, "openai")
    async with http.post(url, json=body) as response:
        assert response.status == 200 and int(response.headers["Content-Length"]) > 20
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


# ================================================================================= malformed


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_malformed_non_streaming_body_is_not_json(sim, http, flavour) -> None:
    sim.fault(flavour, "malformed")
    status, headers, body = await call(http, sim, flavour)
    assert status == 200 and headers["Content-Type"].startswith("application/json") and body
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_malformed_stream_frame(sim, http, flavour) -> None:
    sim.fault(flavour, "malformed", after_chunks=1)
    status, _, body = await call(http, sim, flavour, stream=True)
    assert status == 200
    frames = sse(body)
    with pytest.raises(json.JSONDecodeError):
        json.loads(frames[-1][1])
    for _, data in frames[:-1]:
        json.loads(data)
    assert b"[DONE]" not in body and b"message_stop" not in body


async def test_malformed_gemini_json_array(sim, http) -> None:
    sim.fault("gemini", "malformed", after_chunks=1)
    _, _, body = await call(http, sim, "gemini", stream=True, sse_form=False)
    assert body.startswith(b"[{") and b"\n,\r\n" in body
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_malformed_catalogue(sim, http) -> None:
    sim.fault("openai", "malformed", endpoint="models")
    response = await http.get(sim.base_url("openai") + "/models")
    with pytest.raises(json.JSONDecodeError):
        json.loads(await response.read())


# ====================================================================================== slow


async def test_slow_stream_spaces_its_chunks(sim, http) -> None:
    sim.configure("anthropic", chunks=3)
    sim.fault("anthropic", "slow", chunk_delay_ms=40)
    started = time.monotonic()
    status, _, body = await call(http, sim, "anthropic", stream=True)
    assert status == 200 and time.monotonic() - started >= 0.12
    assert content_of("anthropic", body, stream=True).startswith("Simulated anthropic reply")


async def test_slow_non_stream_waits_as_long_as_its_stream_would(sim, http) -> None:
    sim.configure("openai", chunks=2)
    sim.fault("openai", "slow", delay_ms=50, chunk_delay_ms=30)
    started = time.monotonic()
    status, _, _ = await call(http, sim, "openai")
    assert status == 200 and time.monotonic() - started >= 0.11


async def test_slow_catalogue(sim, http) -> None:
    sim.fault("gemini", "slow", endpoint="models", chunk_delay_ms=60)
    started = time.monotonic()
    response = await http.get(sim.base_url("gemini") + "/v1beta/models")
    assert response.status == 200 and (await response.json())["models"] and time.monotonic() - started >= 0.06


async def test_mount_delays_apply_to_every_answer(http) -> None:
    async with Simulator("openai", delay_ms=60, chunks=2, chunk_delay_ms=20) as sim:
        started = time.monotonic()
        assert (await call(http, sim, "openai", stream=True))[0] == 200
        assert time.monotonic() - started >= 0.1


# =============================================================================== error-event


async def test_error_event_openai(sim, http) -> None:
    sim.fault("openai", "error-event", after_chunks=1)
    status, _, body = await call(http, sim, "openai", stream=True)
    assert status == 200
    frames = sse(body)
    last = json.loads(frames[-1][1])
    assert last == {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                              "type": "server_error", "param": None, "code": None}}
    assert [json.loads(d)["choices"][0]["delta"] for _, d in frames[:-1]][1]["content"]
    assert b"[DONE]" not in body and b'"finish_reason":"stop"' not in body


async def test_error_event_anthropic_is_overloaded_by_default(sim, http) -> None:
    sim.fault("anthropic", "error-event", after_chunks=2)
    _, _, body = await call(http, sim, "anthropic", stream=True)
    frames = sse(body)
    assert frames[-1][0] == "error"
    assert json.loads(frames[-1][1]) == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert sum(e == "content_block_delta" for e, _ in frames) == 2
    assert "message_stop" not in [e for e, _ in frames] and "message_delta" not in [e for e, _ in frames]


async def test_error_event_gemini_sse_and_array(sim, http) -> None:
    sim.fault("gemini", "error-event", status=503)
    sim.fault("gemini", "error-event", after_chunks=0, status=500, message="boom")
    _, _, body = await call(http, sim, "gemini", stream=True)
    assert body.endswith(b"\r\n\r\n")
    error = json.loads(sse(body)[-1][1])
    assert error["error"]["code"] == 503 and error["error"]["status"] == "UNAVAILABLE"
    _, _, body = await call(http, sim, "gemini", stream=True, sse_form=False)
    assert json.loads(body) == [{"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}]


async def test_error_event_on_a_non_streaming_request_is_the_http_error(sim, http) -> None:
    sim.fault("anthropic", "error-event")
    status, _, body = await call(http, sim, "anthropic")
    assert status == 529 and json.loads(body)["error"]["type"] == "overloaded_error"


async def test_error_event_after_all_the_content(sim, http) -> None:
    sim.configure("openai", chunks=2)
    sim.fault("openai", "error-event", after_chunks=99)
    _, _, body = await call(http, sim, "openai", stream=True)
    frames = sse(body)
    assert "error" in json.loads(frames[-1][1]) and content_of("openai", b"".join(
        f"data: {d}\n\n".encode() for _, d in frames[:-1]), stream=True).endswith("You said: hi")


# ============================================================================ fault building


def test_fault_spec_syntax() -> None:
    name, fault = parse_fault_spec("openai=429:every=3:retry-after=5")
    assert name == "openai" and fault.kind == "429" and fault.every == 3 and fault.persistent
    assert fault.options == {"retry_after": 5}
    name, fault = parse_fault_spec("anthropic=529:rate=0.3:seed=7")
    assert (fault.rate, fault.seed, fault.persistent) == (0.3, 7, True)
    name, fault = parse_fault_spec("500:times=2")
    assert name is None and fault.times == 2 and not fault.persistent
    _, fault = parse_fault_spec("gemini=hang:max-seconds=30")
    assert fault.options == {"max_seconds": 30} and fault.persistent
    _, fault = parse_fault_spec("openai=reset:after-chunks=2:endpoint=generate:model=gpt-x")
    assert fault.options == {"after_chunks": 2} and fault.model == "gpt-x"
    _, fault = parse_fault_spec("openai=empty:mode=zero", default_persistent=False)
    assert fault.times == 1 and fault.options == {"mode": "zero"}
    _, fault = parse_fault_spec("anthropic=529:should-retry=false")
    assert fault.options == {"should_retry": False}


@pytest.mark.parametrize("spec, message", [
    ("openai=teapot", "unknown fault kind"),
    ("openai=429:after-chunks=1", "no option"),
    ("openai=hang:max-seconds=soon", "non-negative number"),
    ("openai=200", "400-599"),
    ("openai=empty:mode=blank", "envelope"),
    ("openai=429:every=0", "positive"),
    ("openai=429:rate=2", "between 0 and 1"),
    ("openai=429:times=2:every=3", "not both"),
    ("openai=429:endpoint=chat", "endpoint"),
    ("openai=reset:after-chunks=1.5", "integer"),
])
def test_fault_spec_errors_are_readable(spec, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault_spec(spec)


def test_fault_describe() -> None:
    assert make_fault(429, every=3, retry_after=5).describe() == "429 every 3 requests (retry-after=5)"
    assert make_fault("hang", times=2, endpoint="models").describe() == "hang the next 2 request(s) [models]"
