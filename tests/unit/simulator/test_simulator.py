"""The simulator speaks each provider's wire format: real HTTP on loopback, aiohttp client.

What each flavour sends (streaming and not, scripted replies with tool calls and
thinking, the Gemini JSON-array stream form), what it refuses (missing fields, keys,
headers), what it records, and its `/_sim/` control API. Faults have their own file
(test_simulator_faults.py), the official SDKs too (test_simulator_sdks.py).
"""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

import switchyard.simulator as simulator
from openapi_spec import assert_openapi
from switchyard.sidecar.translate.sse import SSEDecoder
from switchyard.simulator import Mount, RawReply, Reply, Simulator, ToolCall, Usage, build_app
from switchyard.simulator.replies import DEFAULT_SIGNATURE, default_text, split_text

TIMEOUT = aiohttp.ClientTimeout(total=10)
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}
WEATHER_TOOL_OPENAI = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
WEATHER_TOOL_ANTHROPIC = {"name": "get_weather", "input_schema": {"type": "object"}}
WEATHER_TOOL_GEMINI = {"functionDeclarations": [{"name": "get_weather"}]}

def sse(body: bytes) -> list[tuple[str | None, str]]:
    """(event, data) of each complete SSE event, read with the sidecar's own decoder."""
    decoder = SSEDecoder()
    return [(e.event, e.data) for e in [*decoder.feed(body), *decoder.flush()]]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield session


async def openai_chat(http: aiohttp.ClientSession, sim: Simulator, name: str = "openai", **body: Any) -> aiohttp.ClientResponse:
    body.setdefault("model", "gpt-4o-mini")
    body.setdefault("messages", [{"role": "user", "content": "Hello there"}])
    response = await http.post(sim.base_url(name) + "/chat/completions", json=body)
    await response.read()
    return response


async def anthropic_messages(http: aiohttp.ClientSession, sim: Simulator, headers: dict[str, str] | None = None, **body: Any) -> aiohttp.ClientResponse:
    body.setdefault("model", "claude-sonnet-5-5")
    body.setdefault("max_tokens", 256)
    body.setdefault("messages", [{"role": "user", "content": "Hello there"}])
    response = await http.post(sim.base_url("anthropic") + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS if headers is None else headers)
    await response.read()
    return response


async def gemini(http: aiohttp.ClientSession, sim: Simulator, action: str = "generateContent", query: str = "", model: str = "gemini-2.5-flash", **body: Any) -> aiohttp.ClientResponse:
    body.setdefault("contents", [{"role": "user", "parts": [{"text": "Hello there"}]}])
    response = await http.post(f"{sim.base_url('gemini')}/v1beta/models/{model}:{action}{query}", json=body)
    await response.read()
    return response


async def body_of(response: aiohttp.ClientResponse) -> bytes:
    return await response.read()


# ================================================================ OpenAI Chat Completions


async def test_openai_default_reply_names_provider_and_model_and_echoes_user_text(sim, http) -> None:
    response = await openai_chat(http, sim, model="gpt-test", messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "What is up?"}]},
    ])
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")
    data = await response.json()
    assert_openapi("CreateChatCompletionResponse", data)
    assert data["object"] == "chat.completion" and data["model"] == "gpt-test"
    [choice] = data["choices"]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "Simulated openai reply from gpt-test. You said: What is up?"
    usage = data["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_openai_stream_with_include_usage(sim, http) -> None:
    sim.configure("openai", chunks=5)
    response = await openai_chat(http, sim, stream=True, stream_options={"include_usage": True})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    frames = sse(await body_of(response))
    assert frames[-1] == (None, "[DONE]")
    chunks = [json.loads(data) for _, data in frames[:-1]]
    for chunk in chunks:
        assert_openapi("CreateChatCompletionStreamResponse", chunk)
        assert chunk["object"] == "chat.completion.chunk" and chunk["id"] == chunks[0]["id"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    # every chunk but the last carries "usage": null; the last has no choices and the usage
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert len(content) == 5 and all(content)
    assert "".join(content) == "Simulated openai reply from gpt-4o-mini. You said: Hello there"


async def test_openai_stream_without_usage_has_no_usage_field_and_obfuscation_can_be_off(sim, http) -> None:
    response = await openai_chat(http, sim, stream=True, stream_options={"include_obfuscation": False})
    chunks = [json.loads(d) for _, d in sse(await body_of(response))[:-1]]
    assert all("usage" not in c and "obfuscation" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_openai_scripted_tool_calls_non_stream(sim, http) -> None:
    sim.script("openai", Reply(text="", tool_calls=[
        ToolCall("get_weather", {"city": "Paris"}, id="call_1"),
        ToolCall("get_time", '{"tz": "CET"}'),
    ], usage=Usage(input_tokens=11, output_tokens=7)))
    response = await openai_chat(http, sim, tools=[WEATHER_TOOL_OPENAI])
    data = await response.json()
    assert_openapi("CreateChatCompletionResponse", data)
    [choice] = data["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    first, second = message["tool_calls"]
    assert first == {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    assert second["id"].startswith("call_") and second["function"] == {"name": "get_time", "arguments": '{"tz": "CET"}'}
    assert data["usage"]["prompt_tokens"] == 11 and data["usage"]["completion_tokens"] == 7


async def test_openai_scripted_tool_calls_stream_reassemble(sim, http) -> None:
    sim.script("openai", Reply(text="Let me check.", tool_calls=[ToolCall("get_weather", {"city": "Paris", "unit": "C"})], chunks=3))
    response = await openai_chat(http, sim, stream=True, tools=[WEATHER_TOOL_OPENAI])
    chunks = [json.loads(d) for _, d in sse(await body_of(response))[:-1]]
    for chunk in chunks:
        assert_openapi("CreateChatCompletionStreamResponse", chunk)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check."
    calls = [tc for d in deltas for tc in d.get("tool_calls", ())]
    head = calls[0]
    assert head["index"] == 0 and head["type"] == "function" and head["id"].startswith("call_")
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    assert all(set(tc) == {"index", "function"} for tc in calls[1:])
    arguments = "".join(tc["function"]["arguments"] for tc in calls)
    assert json.loads(arguments) == {"city": "Paris", "unit": "C"} and len(calls) > 2
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tool_calls_need_declared_tools(sim, http) -> None:
    sim.script("openai", Reply(text="no tools here", tool_calls=[ToolCall("get_weather", {})]))
    data = await (await openai_chat(http, sim)).json()
    message = data["choices"][0]["message"]
    assert "tool_calls" not in message and message["content"] == "no tools here"
    assert data["choices"][0]["finish_reason"] == "stop"


async def test_openai_reasoning_field_carries_thinking(http) -> None:
    async with Simulator(Mount("vllm", flavour="openai-compatible", reasoning_field="reasoning_content")) as sim:
        sim.script("vllm", Reply(text="42", thinking="six times seven"))
        data = await (await openai_chat(http, sim, "vllm")).json()
        assert data["choices"][0]["message"]["reasoning_content"] == "six times seven"
        assert data["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
        sim.script("vllm", Reply(text="42", thinking="six times seven"))
        chunks = [json.loads(d) for _, d in sse(await body_of(await openai_chat(http, sim, "vllm", stream=True)))[:-1]]
        deltas = [c["choices"][0]["delta"] for c in chunks]
        assert "".join(d.get("reasoning_content", "") for d in deltas) == "six times seven"
        assert "".join(d.get("content") or "" for d in deltas) == "42"


async def test_openai_models_list_and_get(sim, http) -> None:
    response = await http.get(sim.base_url("openai") + "/models")
    data = await response.json()
    assert_openapi("ListModelsResponse", data)
    assert data["object"] == "list" and [m["id"] for m in data["data"]] == list(sim.mount("openai").models)
    model = await (await http.get(sim.base_url("openai") + "/models/openrouter/some-model")).json()
    assert_openapi("Model", model)
    assert model["id"] == "openrouter/some-model"


async def test_openai_refuses_what_openai_refuses(sim, http) -> None:
    response = await openai_chat(http, sim, messages=[])
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["param"] == "messages" and error["type"] == "invalid_request_error"
    response = await http.post(sim.base_url("openai") + "/chat/completions", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert set((await response.json())["error"]) == {"message", "type", "param", "code"}
    response = await http.post(sim.base_url("openai") + "/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status == 400 and "model" in (await response.json())["error"]["message"]
    assert [r.outcome for r in sim.requests("openai")] == ["bad-request"] * 3


async def test_openai_api_key(http) -> None:
    async with Simulator("openai", api_keys={"openai": "sk-right-key-123456"}) as sim:
        url = sim.base_url() + "/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        missing = await http.post(url, json=body)
        assert missing.status == 401
        assert "didn't provide an API key" in (await missing.json())["error"]["message"]
        wrong = await http.post(url, json=body, headers={"Authorization": "Bearer sk-wrong-key-654321"})
        error = (await wrong.json())["error"]
        assert wrong.status == 401 and error["code"] == "invalid_api_key"
        assert "sk-wrong-key-654321" not in error["message"] and error["message"].count("4321") == 1
        right = await http.post(url, json=body, headers={"Authorization": "Bearer sk-right-key-123456"})
        assert right.status == 200
        assert [r.outcome for r in sim.requests()] == ["auth", "auth", "ok"]


# ======================================================================= Anthropic Messages


async def test_anthropic_default_reply(sim, http) -> None:
    response = await anthropic_messages(http, sim, model="claude-test")
    assert response.status == 200 and response.headers["request-id"].startswith("req_")
    data = await response.json()
    assert data["type"] == "message" and data["role"] == "assistant" and data["model"] == "claude-test"
    assert data["id"].startswith("msg_") and data["stop_reason"] == "end_turn" and data["stop_sequence"] is None
    assert data["content"] == [{"type": "text", "text": "Simulated anthropic reply from claude-test. You said: Hello there"}]
    assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] > 0


async def test_anthropic_stream_event_sequence(sim, http) -> None:
    sim.configure("anthropic", chunks=3)
    response = await anthropic_messages(http, sim, stream=True)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    frames = sse(await body_of(response))
    names = [event for event, _ in frames]
    assert names == [
        "message_start", "content_block_start", "ping",
        "content_block_delta", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]
    data = [json.loads(d) for _, d in frames]
    assert all(d["type"] == e for (e, _), d in zip(frames, data, strict=True))
    start = data[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] > 0
    assert data[1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    text = "".join(d["delta"]["text"] for d in data[3:6])
    assert text == "Simulated anthropic reply from claude-sonnet-5-5. You said: Hello there"
    assert all(d["delta"]["type"] == "text_delta" and d["index"] == 0 for d in data[3:6])
    assert data[7]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert data[7]["usage"]["output_tokens"] > 0


async def test_anthropic_stream_thinking_text_and_tool_use(sim, http) -> None:
    sim.script("anthropic", Reply(
        text="Checking.", thinking="The user wants weather.", signature="EqQBCkYIBxgCKkBsig",
        tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="toolu_1")], chunks=2,
    ))
    response = await anthropic_messages(
        http, sim, stream=True, thinking={"type": "enabled", "budget_tokens": 1024}, tools=[WEATHER_TOOL_ANTHROPIC],
    )
    data = [json.loads(d) for _, d in sse(await body_of(response))]
    starts = [d for d in data if d["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["thinking", "text", "tool_use"]
    assert starts[0]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert starts[2]["content_block"] == {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    deltas: dict[int, list[dict[str, Any]]] = {}
    for d in data:
        if d["type"] == "content_block_delta":
            deltas.setdefault(d["index"], []).append(d["delta"])
    assert "".join(x["thinking"] for x in deltas[0] if x["type"] == "thinking_delta") == "The user wants weather."
    assert deltas[0][-1] == {"type": "signature_delta", "signature": "EqQBCkYIBxgCKkBsig"}
    assert "".join(x["text"] for x in deltas[1]) == "Checking."
    assert all(x["type"] == "input_json_delta" for x in deltas[2]) and deltas[2][0]["partial_json"] == ""
    assert json.loads("".join(x["partial_json"] for x in deltas[2])) == {"city": "Paris"}
    assert [d["index"] for d in data if d["type"] == "content_block_stop"] == [0, 1, 2]
    assert data[-2]["delta"]["stop_reason"] == "tool_use" and data[-1] == {"type": "message_stop"}


async def test_anthropic_thinking_only_when_asked(sim, http) -> None:
    reply = Reply(text="Answer.", thinking="hidden reasoning", finish="stop_sequence", stop_sequence="END")
    sim.script("anthropic", reply, reply)
    plain = await (await anthropic_messages(http, sim)).json()
    assert [b["type"] for b in plain["content"]] == ["text"]
    assert plain["stop_reason"] == "stop_sequence" and plain["stop_sequence"] == "END"
    thought = await (await anthropic_messages(http, sim, thinking={"type": "adaptive"})).json()
    assert thought["content"][0] == {"type": "thinking", "thinking": "hidden reasoning", "signature": DEFAULT_SIGNATURE}


async def test_anthropic_refuses_what_anthropic_refuses(sim, http) -> None:
    no_version = await anthropic_messages(http, sim, headers={})
    assert no_version.status == 400
    assert (await no_version.json())["error"]["message"] == "anthropic-version: header is required"
    response = await http.post(sim.base_url("anthropic") + "/v1/messages", headers=ANTHROPIC_HEADERS,
                               json={"model": "c", "messages": [{"role": "user", "content": "x"}]})
    body = await response.json()
    assert response.status == 400 and body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert body["request_id"] == response.headers["request-id"]


async def test_anthropic_version_check_can_be_off(http) -> None:
    async with Simulator(Mount("anthropic", strict_headers=False)) as sim:
        assert (await anthropic_messages(http, sim, headers={})).status == 200


async def test_anthropic_api_key_accepts_x_api_key_or_bearer(http) -> None:
    async with Simulator("anthropic", api_keys={"anthropic": "ak"}) as sim:
        missing = await anthropic_messages(http, sim)
        assert missing.status == 401
        assert (await missing.json())["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}
        wrong = await anthropic_messages(http, sim, headers={**ANTHROPIC_HEADERS, "x-api-key": "nope"})
        assert (await wrong.json())["error"]["message"] == "invalid x-api-key"
        assert (await anthropic_messages(http, sim, headers={**ANTHROPIC_HEADERS, "x-api-key": "ak"})).status == 200
        assert (await anthropic_messages(http, sim, headers={**ANTHROPIC_HEADERS, "Authorization": "Bearer ak"})).status == 200


async def test_anthropic_count_tokens_and_models(sim, http) -> None:
    base = sim.base_url("anthropic")
    count = await http.post(base + "/v1/messages/count_tokens", headers=ANTHROPIC_HEADERS,
                            json={"model": "c", "messages": [{"role": "user", "content": "hello " * 40}]})
    assert count.status == 200 and (await count.json())["input_tokens"] > 40
    models = await (await http.get(base + "/v1/models", headers=ANTHROPIC_HEADERS)).json()
    assert models["has_more"] is False and models["first_id"] == models["data"][0]["id"]
    assert all(m["type"] == "model" and m["created_at"].endswith("Z") for m in models["data"])
    one = await (await http.get(base + "/v1/models/claude-x", headers=ANTHROPIC_HEADERS)).json()
    assert one["id"] == "claude-x" and one["type"] == "model"


# ================================================================================= Gemini


async def test_gemini_generate_content(sim, http) -> None:
    response = await gemini(http, sim)
    assert response.status == 200 and response.headers["Content-Type"] == "application/json; charset=UTF-8"
    data = await response.json()
    [candidate] = data["candidates"]
    assert candidate["content"] == {"parts": [{"text": "Simulated gemini reply from gemini-2.5-flash. You said: Hello there"}], "role": "model"}
    assert candidate["finishReason"] == "STOP" and candidate["index"] == 0
    usage = data["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert data["modelVersion"] == "gemini-2.5-flash" and data["responseId"]


async def test_gemini_sse_stream_frames_end_with_crlf(sim, http) -> None:
    sim.configure("gemini", chunks=3)
    response = await gemini(http, sim, "streamGenerateContent", "?alt=sse")
    assert response.headers["Content-Type"] == "text/event-stream"
    raw = await body_of(response)
    assert raw.startswith(b"data: {") and raw.endswith(b"}\r\n\r\n") and raw.count(b"\r\n\r\n") == 3
    chunks = [json.loads(d) for _, d in sse(raw)]
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == \
        "Simulated gemini reply from gemini-2.5-flash. You said: Hello there"
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, "STOP"]
    counts = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]  # cumulative: the last is the total
    assert counts == sorted(counts) and counts[0] < counts[-1]
    non_stream = (await (await gemini(http, sim)).json())["usageMetadata"]
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == non_stream["candidatesTokenCount"]
    assert len({c["responseId"] for c in chunks}) == 1


async def test_gemini_json_array_stream_form(sim, http) -> None:
    sim.configure("gemini", chunks=4)
    response = await gemini(http, sim, "streamGenerateContent")
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    raw = await body_of(response)
    assert raw.startswith(b"[{") and raw.endswith(b"}\n]") and raw.count(b"\n,\r\n") == 3
    chunks = json.loads(raw)
    assert isinstance(chunks, list) and len(chunks) == 4
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks).endswith("You said: Hello there")
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("include_thoughts", ["includeThoughts", "include_thoughts"])
async def test_gemini_function_call_thoughts_and_signature(sim, http, include_thoughts) -> None:
    reply = Reply(text="Checking.", thinking="weather needed", tool_calls=[ToolCall("get_weather", {"city": "Paris"})], chunks=2)
    sim.script("gemini", reply, reply)
    config = {"thinkingConfig": {include_thoughts: True}}
    chunks = [json.loads(d) for _, d in sse(await body_of(await gemini(
        http, sim, "streamGenerateContent", "?alt=sse", tools=[WEATHER_TOOL_GEMINI], generationConfig=config)))]
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert "".join(p["text"] for p in parts if p.get("thought")) == "weather needed"
    assert "".join(p["text"] for p in parts if "text" in p and not p.get("thought")) == "Checking."
    [call] = [p for p in parts if "functionCall" in p]
    assert call == {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": DEFAULT_SIGNATURE}
    assert chunks[-1]["usageMetadata"]["thoughtsTokenCount"] > 0
    # Non-streaming, thoughts not asked for: no thought parts, the signature still rides along.
    data = await (await gemini(http, sim, tools=[WEATHER_TOOL_GEMINI])).json()
    parts = data["candidates"][0]["content"]["parts"]
    assert parts == [{"text": "Checking."}, {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": DEFAULT_SIGNATURE}]


async def test_gemini_keys_as_gemini_answers_them(http) -> None:
    async with Simulator("gemini", api_keys={"gemini": "AIza-right"}) as sim:
        missing = await gemini(http, sim)
        error = (await missing.json())["error"]
        assert missing.status == 403 and error["status"] == "PERMISSION_DENIED"
        wrong = await http.post(sim.base_url() + "/v1beta/models/g:generateContent?key=AIza-wrong", json={"contents": []})
        error = (await wrong.json())["error"]
        assert wrong.status == 400 and error["status"] == "INVALID_ARGUMENT"
        assert error["details"][0]["reason"] == "API_KEY_INVALID"
        by_query = await http.post(sim.base_url() + "/v1beta/models/g:generateContent?key=AIza-right", json={"contents": []})
        by_header = await http.post(sim.base_url() + "/v1/models/g:generateContent", json={"contents": []}, headers={"x-goog-api-key": "AIza-right"})
        assert by_query.status == 200 and by_header.status == 200
        # the control API never shows a key in clear
        records = await (await http.get(sim.origin + "/_sim/gemini/requests")).json()
        assert "AIza" not in json.dumps(records) and records[2]["query"]["key"].startswith("[redacted sha256:")


async def test_gemini_count_tokens_models_and_unknown_ones(http) -> None:
    async with Simulator(Mount("gemini", models=["gemini-2.5-flash"])) as sim:
        base = sim.base_url()
        count = await (await http.post(base + "/v1beta/models/gemini-2.5-flash:countTokens", json={"contents": [{"parts": [{"text": "hi " * 50}]}]})).json()
        assert count["totalTokens"] > 30 and count["promptTokensDetails"][0]["modality"] == "TEXT"
        models = await (await http.get(base + "/v1beta/models")).json()
        assert [m["name"] for m in models["models"]] == ["models/gemini-2.5-flash"]
        assert "generateContent" in models["models"][0]["supportedGenerationMethods"]
        one = await (await http.get(base + "/v1beta/models/gemini-2.5-flash")).json()
        assert one["name"] == "models/gemini-2.5-flash"
        missing = await http.get(base + "/v1beta/models/gemini-0")
        assert missing.status == 404 and (await missing.json())["error"]["status"] == "NOT_FOUND"
        unknown = await gemini(http, sim, model="gemini-0")
        assert unknown.status == 404 and "models/gemini-0 is not found" in (await unknown.json())["error"]["message"]
        bad_action = await gemini(http, sim, action="summon")
        assert bad_action.status == 404
        no_contents = await http.post(base + "/v1beta/models/gemini-2.5-flash:generateContent", json={})
        assert no_contents.status == 400 and (await no_contents.json())["error"]["status"] == "INVALID_ARGUMENT"


# ========================================================= scripts, raw replies, records


async def test_scripts_are_consumed_in_order_then_the_default_returns(sim, http) -> None:
    sim.script("openai", Reply(text="one"), Reply(text="two"))
    sim.script("openai", Reply(text="three"), times=2)
    texts = []
    for _ in range(5):
        texts.append((await (await openai_chat(http, sim)).json())["choices"][0]["message"]["content"])
    assert texts[:4] == ["one", "two", "three", "three"] and texts[4].startswith("Simulated openai reply")
    assert [r.outcome for r in sim.requests("openai")] == ["scripted"] * 4 + ["ok"]


async def test_finish_reasons_map_per_provider_and_native_ones_pass(sim, http) -> None:
    sim.script("openai", Reply(text="cut", finish="length"))
    sim.script("anthropic", Reply(text="cut", finish="length"), Reply(text="paused", finish="pause_turn"))
    sim.script("gemini", Reply(text="cut", finish="length"), Reply(text="blocked", finish="content_filter"))
    assert (await (await openai_chat(http, sim)).json())["choices"][0]["finish_reason"] == "length"
    assert (await (await anthropic_messages(http, sim)).json())["stop_reason"] == "max_tokens"
    assert (await (await anthropic_messages(http, sim)).json())["stop_reason"] == "pause_turn"
    assert (await (await gemini(http, sim)).json())["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert (await (await gemini(http, sim)).json())["candidates"][0]["finishReason"] == "SAFETY"


async def test_raw_reply_body_and_events(sim, http) -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}}
    sim.script("gemini", RawReply(body=blocked), RawReply(events=[blocked, b"data: {\"x\": 1}\r\n\r\n"]))
    assert await (await gemini(http, sim)).json() == blocked
    raw = await body_of(await gemini(http, sim, "streamGenerateContent", "?alt=sse"))
    assert raw == b"data: " + orjson.dumps(blocked) + b"\r\n\r\ndata: {\"x\": 1}\r\n\r\n"
    sim.script("anthropic", RawReply(events=[{"type": "message_stop"}]), RawReply(status=418, body="teapot", headers={"x-odd": "1"}))
    assert sse(await body_of(await anthropic_messages(http, sim, stream=True))) == [("message_stop", '{"type":"message_stop"}')]
    odd = await anthropic_messages(http, sim)
    assert odd.status == 418 and await odd.text() == "teapot" and odd.headers["x-odd"] == "1"


async def test_requests_are_recorded_with_method_path_query_headers_and_body(sim, http) -> None:
    await http.post(sim.base_url("openai") + "/chat/completions?trace=1", json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
                    headers={"Authorization": "Bearer tier-key", "X-Custom": "yes"})
    await http.get(sim.base_url("openai") + "/models")
    first, second = sim.requests("openai")
    assert (first.method, first.path, first.query) == ("POST", "/openai/v1/chat/completions", {"trace": "1"})
    assert first.headers["authorization"] == "Bearer tier-key" and first.headers["X-CUSTOM"] == "yes"
    assert first.body["messages"] == [{"role": "user", "content": "hi"}] and orjson.loads(first.raw) == first.body
    assert (first.endpoint, first.model, first.stream, first.outcome) == ("generate", "m", True, "ok")
    assert (second.method, second.endpoint, second.body, second.outcome) == ("GET", "models", None, "ok")
    assert sim.count("openai") == 2 and sim.requests("anthropic") == []
    sim.reset()
    assert sim.requests("openai") == [] and sim.count("openai") == 0


async def test_wait_for_requests(sim, http) -> None:
    sim.fault("openai", "hang", max_seconds=5)
    task = asyncio.create_task(openai_chat(http, sim))
    [held] = await sim.wait_for_requests("openai", 1, timeout=5)
    assert held.outcome == "fault:hang"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(TimeoutError):
        await sim.wait_for_requests("openai", 2, timeout=0.05)


# ============================================================================ control API


async def test_control_api_drives_the_same_state(sim, http) -> None:
    control = sim.origin + "/_sim"
    index = await (await http.get(control + "/")).json()
    assert [m["name"] for m in index["mounts"]] == ["openai", "anthropic", "gemini"]
    assert index["mounts"][0]["base_url"] == sim.base_url("openai")

    created = await http.post(control + "/openai/faults", json={"spec": "503:times=1"})
    assert created.status == 201 and (await created.json())["kind"] == "503"
    await http.post(control + "/openai/faults", json={"kind": 429, "every": 2, "retry_after": 3})
    faults = await (await http.get(control + "/openai/faults")).json()
    assert [(f["kind"], f["persistent"]) for f in faults] == [("503", False), ("429", True)]

    scripted = await http.post(control + "/openai/scripts", json=[{"text": "from curl"}, {"tool_calls": [{"name": "f", "arguments": {"a": 1}}]}])
    assert scripted.status == 201 and (await scripted.json())["scripts"] == 2

    statuses = [(await openai_chat(http, sim)).status for _ in range(3)]
    assert statuses == [503, 429, 200]  # queued first, then every 2nd request
    records = await (await http.get(control + "/openai/requests")).json()
    assert [r["outcome"] for r in records] == ["fault:503", "fault:429", "scripted"]
    assert sim.mount("openai").faults.persistent[0].hits == 1

    patched = await http.patch(control + "/openai", json={"chunks": 7, "chunk_delay_ms": 0})
    assert (await patched.json())["chunks"] == 7 and sim.mount("openai").chunks == 7

    assert (await http.delete(control + "/openai/faults")).status == 200
    assert (await http.delete(control + "/openai/scripts")).status == 200
    assert (await http.post(control + "/reset")).status == 200
    assert sim.count("openai") == 0 and not sim.mount("openai").faults


async def test_control_api_errors(sim, http) -> None:
    control = sim.origin + "/_sim"
    assert (await http.get(control + "/nope/faults")).status == 404
    bad_kind = await http.post(control + "/openai/faults", json={"kind": "teapot"})
    assert bad_kind.status == 400 and "unknown fault kind" in (await bad_kind.json())["error"]
    bad_option = await http.post(control + "/openai/faults", json={"spec": "429:after-chunks=2"})
    assert bad_option.status == 400 and "after_chunks" in (await bad_option.json())["error"]
    assert (await http.post(control + "/openai/faults", data=b"{")).status == 400
    assert (await http.post(control + "/openai/scripts", json={"txt": "typo"})).status == 400
    assert (await http.patch(control + "/openai", json={"chunks": 0})).status == 400


# ================================================================== mounts and the rest


async def test_root_mount_and_same_flavour_twice(http) -> None:
    async with Simulator(Mount("primary", flavour="openai", prefix=""), Mount("backup", flavour="openai")) as sim:
        assert sim.base_url("primary") == sim.origin + "/v1"
        assert sim.base_url("backup") == sim.origin + "/backup/v1"
        primary = await (await openai_chat(http, sim, "primary")).json()
        backup = await (await openai_chat(http, sim, "backup")).json()
        assert "openai (primary)" in primary["choices"][0]["message"]["content"]
        assert "openai (backup)" in backup["choices"][0]["message"]["content"]
        assert [len(sim.requests(n)) for n in ("primary", "backup")] == [1, 1]


def test_mounts_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="both serve"):
        build_app([Mount("openai", prefix=""), Mount("anthropic", prefix="")])
    with pytest.raises(ValueError, match="flavour"):
        Mount("primary")
    with pytest.raises(ValueError, match="reasoning_field"):
        Mount("anthropic", reasoning_field="reasoning")
    with pytest.raises(ValueError, match="two mounts"):
        build_app([Mount("openai"), Mount("openai")])
    with pytest.raises(ValueError, match="not a mount"):
        Simulator("openai", api_keys={"gemini": "k"})


def test_split_text_and_default_text() -> None:
    assert split_text("", 4) == []
    assert split_text("abc", 10) == ["a", "b", "c"]
    assert "".join(split_text("hello world", 4)) == "hello world" and len(split_text("hello world", 4)) == 4
    long = default_text("openai", "m", "hi", 200)
    assert len(split_text(long, 200)) == 200 and long.startswith("Simulated openai reply from m. You said: hi")


async def test_two_hundred_chunk_stream_for_the_bench(http) -> None:
    async with Simulator("anthropic", chunks=200) as sim:
        data = [json.loads(d) for _, d in sse(await body_of(await anthropic_messages(http, sim, stream=True)))]
        assert sum(d["type"] == "content_block_delta" for d in data) == 200


def test_reply_from_dict_validates() -> None:
    reply = Reply.from_dict({"text": "t", "tool_calls": [{"name": "f", "arguments": {"a": 1}, "id": "x"}], "usage": {"input_tokens": 3}})
    assert reply.tool_calls[0] == ToolCall("f", {"a": 1}, "x") and reply.usage == Usage(input_tokens=3)
    with pytest.raises(ValueError, match="unknown reply field"):
        Reply.from_dict({"txt": "t"})


def test_public_surface_is_all() -> None:
    public = {n for n, v in vars(simulator).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert set(simulator.__all__) == public


async def test_a_mount_accepts_several_keys_and_records_which_one(http) -> None:
    async with Simulator("openai", api_keys={"openai": ["sk-key-zero-000000", "sk-key-one-1111111"]}) as sim:
        sim.fault("openai", 429, key_index=0, retry_after=7)
        url = sim.base_url() + "/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        zero = await http.post(url, json=body, headers={"Authorization": "Bearer sk-key-zero-000000"})
        one = await http.post(url, json=body, headers={"Authorization": "Bearer sk-key-one-1111111"})
        wrong = await http.post(url, json=body, headers={"Authorization": "Bearer sk-key-two-2222222"})
        assert (zero.status, one.status, wrong.status) == (429, 200, 401)
        assert [(r.outcome, r.key_index) for r in sim.requests()] == [("fault:429", 0), ("ok", 1), ("auth", None)]
