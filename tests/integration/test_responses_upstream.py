"""A tier that speaks the OpenAI Responses API, driven by the official `openai` SDK.

The tier is the simulator's `openai-responses` flavour (which refuses what the real API
refuses), chosen by a ModelSource's `spec.protocol: openai-responses`; a Chat
Completions tier stands behind it. Checked: a Responses client on the same-protocol path
(whole and streamed, the upstream's bytes relayed, unknown fields and encrypted
reasoning untouched), a Chat Completions client crossing to the Responses tier through
the neutral form (whole and streamed), and a fallback from the Responses tier answering
429 to the chat tier.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import yaml

from harness import CLIENT_KEY, FakeClock, Gateway, load
from openapi_spec import assert_openapi
from switchyard.compiler import compile_config
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.simulator import Mount, Reply, Simulator, ToolCall, Usage

KEYS = {"resp": "sk-resp-KEY-1a2b", "chat": "sk-chat-KEY-3c4d"}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    mounts = [Mount("resp", flavour="openai-responses", api_key=KEYS["resp"]), Mount("chat", flavour="openai", api_key=KEYS["chat"])]
    async with Simulator(*mounts, port=0, hang_max_seconds=15) as s:
        yield s


def manifests(sim: Simulator) -> str:
    return f"""
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: resp}}
spec:
  provider: openai
  protocol: openai-responses
  baseURL: {sim.base_url("resp")}
  defaultModel: gpt-5.4-codex
  credentialRef: {{name: keys, key: resp}}
  timeouts: {{connectSeconds: 2, firstByteSeconds: 5, totalSeconds: 10}}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: chat}}
spec:
  provider: openai-compatible
  baseURL: {sim.base_url("chat")}
  defaultModel: chat-model
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRef: {{name: keys, key: chat}}
  timeouts: {{connectSeconds: 2, firstByteSeconds: 5, totalSeconds: 10}}
---
apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData: {yaml.safe_dump(KEYS, default_flow_style=True).strip()}
---
apiVersion: switchyard.dev/v1alpha1
kind: AssistantBinding
metadata: {{name: codex}}
spec:
  primary: {{sourceRef: {{name: resp}}}}
  fallbacks: [{{sourceRef: {{name: chat}}}}]
"""


@pytest.fixture
async def gw(sim: Simulator) -> AsyncIterator[Gateway]:
    result = compile_config(load(manifests(sim)))
    tiers = result.config.bindings[0].tiers
    assert [(t.protocol, t.profile.name, t.problem) for t in tiers] == [
        ("openai-responses", "builtin-openai-responses", None),
        ("openai-chat", "builtin-openai", None),
    ]
    sidecar = Sidecar(listen=Listen("127.0.0.1", 0, "127.0.0.1", 0), drain_seconds=5)
    sidecar.runtime.clock = FakeClock()
    sidecar.load(result.config)
    api, admin = await sidecar.start()
    g = Gateway(sidecar, f"http://127.0.0.1:{api}", f"http://127.0.0.1:{admin}", sidecar.runtime.clock, result.reports)
    yield g
    for c in g.clients:
        await c.close()
    await sidecar.stop()


TOOL = {"type": "function", "name": "shell", "description": "Run a command", "strict": False,
        "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}}}


def codex_turn_two() -> list[dict[str, Any]]:
    return [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List the repo."}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "**Listing**"}], "encrypted_content": "gAAAAB-opaque-from-openai"},
        {"type": "function_call", "call_id": "call_ls", "name": "shell", "arguments": '{"command":["ls"]}'},
        {"type": "function_call_output", "call_id": "call_ls", "output": "README.md"},
    ]


async def test_responses_client_same_protocol_whole(gw: Gateway, sim: Simulator) -> None:
    sim.script("resp", Reply(text="One file: README.md.", thinking="Read the output.", signature="S1", usage=Usage(input_tokens=50, output_tokens=9)))
    raw = await gw.openai().responses.with_raw_response.create(
        model="codex", input=codex_turn_two(), tools=[TOOL], store=False, include=["reasoning.encrypted_content"],
        reasoning={"effort": "high", "summary": "auto"}, instructions="You are Codex.", extra_body={"prompt_cache_key": "conv-1"},
    )
    r = raw.parse()
    assert raw.headers["x-switchyard-tier"] == "0" and raw.headers["x-switchyard-source"] == "resp"
    assert r.output_text == "One file: README.md." and r.id.startswith("resp_sim")  # the upstream's answer as it is
    reasoning = r.output[0]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content == "gAAAAsimS1"
    assert r.usage.input_tokens == 50
    (seen,) = sim.requests("resp")
    assert seen.path == "/resp/v1/responses" and seen.headers["authorization"] == f"Bearer {KEYS['resp']}"
    assert CLIENT_KEY not in json.dumps(dict(seen.headers))
    sent = dict(seen.body)
    assert sent.pop("model") == "gpt-5.4-codex"
    assert sent == {  # everything else exactly as the client sent it
        "input": codex_turn_two(), "tools": [TOOL], "store": False, "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "high", "summary": "auto"}, "instructions": "You are Codex.", "prompt_cache_key": "conv-1",
    }


async def test_responses_client_same_protocol_streamed_bytes_relayed(gw: Gateway, sim: Simulator) -> None:
    sim.script("resp", Reply(text="Streaming works fine.", tool_calls=[ToolCall("shell", {"command": ["cat", "README.md"]}, id="call_cat")]))
    stream = await gw.openai().responses.create(model="codex", input=codex_turn_two(), tools=[TOOL], store=False, stream=True)
    events = [e async for e in stream]
    assert events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Streaming works fine."
    final = events[-1].response
    assert final.id.startswith("resp_sim") and final.model == "gpt-5.4-codex"  # the upstream's own events, relayed as they are
    assert [o.type for o in final.output] == ["message", "function_call"] and final.output[1].call_id == "call_cat"
    (seen,) = sim.requests("resp")
    assert seen.body["input"][1] == codex_turn_two()[1]


async def test_chat_client_crosses_to_the_responses_tier(gw: Gateway, sim: Simulator) -> None:
    sim.script("resp", Reply(text="Bonjour.", usage=Usage(input_tokens=12, output_tokens=3)))
    raw = await gw.openai().chat.completions.with_raw_response.create(
        model="codex", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello in French"}],
        max_tokens=5, tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}],
    )
    c = raw.parse()
    assert c.choices[0].message.content == "Bonjour." and c.choices[0].finish_reason == "stop"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (12, 3)
    assert_openapi("CreateChatCompletionResponse", json.loads(raw.content))
    assert "maxOutputTokens=map(16)" in raw.headers.get("x-switchyard-degraded", "")
    (seen,) = sim.requests("resp")
    assert seen.outcome == "scripted"  # the simulator (strict as the API) accepted the body
    body = seen.body
    assert body["instructions"] == "Be brief." and body["max_output_tokens"] == 16 and body["store"] is False
    assert body["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello in French"}]}]
    assert body["tools"][0]["strict"] is False  # a chat schema is not strict: the API would refuse it as strict
    assert sim.count("chat") == 0


async def test_chat_client_streams_from_the_responses_tier(gw: Gateway, sim: Simulator) -> None:
    sim.script("resp", Reply(text="Paris then Oslo.", tool_calls=[ToolCall("weather", {"city": "Paris"}, id="call_p")]))
    stream = await gw.openai().chat.completions.create(
        model="codex", messages=[{"role": "user", "content": "weather?"}], stream=True, stream_options={"include_usage": True},
        tools=[{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    )
    chunks = [ch async for ch in stream]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    calls = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or ()]
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert text == "Paris then Oslo." and calls[0].id == "call_p" and calls[0].function.name == "weather"
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"city":"Paris"}'
    assert finishes == ["tool_calls"] and chunks[-1].usage is not None
    (seen,) = sim.requests("resp")
    assert seen.body["stream"] is True and seen.outcome == "scripted"


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_tier_429_falls_back_to_the_chat_tier(gw: Gateway, sim: Simulator, stream: bool) -> None:
    sim.fault("resp", 429, retry_after=20)
    sim.script("chat", Reply(text="Served by chat."))
    client = gw.openai()
    if stream:
        events = [e async for e in await client.responses.create(model="codex", input="hi", store=False, stream=True)]
        assert events[-1].type == "response.completed" and events[-1].response.output_text == "Served by chat."
    else:
        raw = await client.responses.with_raw_response.create(model="codex", input="hi", store=False)
        assert raw.parse().output_text == "Served by chat."
        assert raw.headers["x-switchyard-tier"] == "1" and raw.headers["x-switchyard-source"] == "chat"
        assert "429" in raw.headers.get("x-switchyard-fallback-reason", "")
    (refused,) = sim.requests("resp")
    assert refused.outcome == "fault:429"
    (served,) = sim.requests("chat")
    assert served.path == "/chat/v1/chat/completions" and served.body["messages"] == [{"role": "user", "content": "hi"}]


async def test_anthropic_client_streams_thinking_and_a_call_from_the_responses_tier(gw: Gateway, sim: Simulator) -> None:
    import anthropic

    sim.script("resp", Reply(text="Reading it.", thinking="Need the file.", signature="S2",
                             tool_calls=[ToolCall("read_file", {"path": "a.txt"}, id="call_r")]))
    c = anthropic.AsyncAnthropic(base_url=gw.api, api_key=CLIENT_KEY, max_retries=0)
    try:
        async with c.messages.stream(
            model="codex", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
            tools=[{"name": "read_file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}],
            messages=[{"role": "user", "content": "open a.txt"}],
        ) as stream:
            final = await stream.get_final_message()
    finally:
        await c.close()
    kinds = [b.type for b in final.content]
    assert kinds == ["thinking", "text", "tool_use"] and final.stop_reason == "tool_use"
    assert final.content[0].thinking == "Need the file." and final.content[0].signature == ""  # OpenAI's reasoning is not Anthropic's
    assert final.content[2].input == {"path": "a.txt"}
    (seen,) = sim.requests("resp")
    body = seen.body
    assert seen.outcome == "scripted" and body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False


async def test_gemini_client_from_the_responses_tier(gw: Gateway, sim: Simulator) -> None:
    from google import genai
    from google.genai import types

    sim.script("resp", Reply(text="Hallo."))
    client = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=gw.api, api_version="v1beta"))
    r = await client.aio.models.generate_content(model="codex", contents="Say hello in German")
    assert r.text == "Hallo."
    (seen,) = sim.requests("resp")
    assert seen.body["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello in German"}]}]


async def test_previous_response_id_reaches_a_responses_tier_as_sent(gw: Gateway, sim: Simulator) -> None:
    """The gateway keeps no state, but a Responses tier does: on the same-protocol path the
    field is the tier's business (the simulator, storing nothing, answers as OpenAI does
    for an id it does not have; the chain does not fall back on a client error)."""
    with pytest.raises(openai.BadRequestError) as err:
        await gw.openai().responses.create(model="codex", input="and then?", previous_response_id="resp_earlier", store=True)
    assert "Previous response with id 'resp_earlier' not found." in str(err.value)
    (seen,) = sim.requests("resp")
    assert seen.body["previous_response_id"] == "resp_earlier" and seen.body["store"] is True
    assert sim.count("chat") == 0


async def test_a_relayed_stream_broken_after_content_ends_failed_not_completed(gw: Gateway, sim: Simulator) -> None:
    sim.script("resp", Reply(text="one two three four five six"))
    sim.configure("resp", chunks=6)
    sim.fault("resp", "reset", after_chunks=2)
    stream = await gw.openai().responses.create(model="codex", input="count", stream=True)
    events = [e async for e in stream]
    kinds = [e.type for e in events]
    assert kinds.count("response.created") == 1 and kinds[-2:] == ["error", "response.failed"]
    assert "response.completed" not in kinds
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta")  # some content went through first
