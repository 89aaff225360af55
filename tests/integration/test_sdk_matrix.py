"""Every client protocol served by every upstream protocol, through the official SDKs.

Clients: `openai` (chat completions and responses), `anthropic` (messages), and
`google-genai` (generate_content). Upstreams: the simulator's OpenAI, Anthropic and
Gemini mounts. For each pair, streaming and not: plain text, and a tool call the SDK
must parse into its own types (name and arguments intact). The SDKs' own response
types parsing what the sidecar returned is the assertion that the shapes are right.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from harness import CLIENT_KEY, Gateway, GatewayFactory, binding
from switchyard.simulator import Reply, Simulator, ToolCall

UPSTREAMS = ["primary", "claude", "gem"]
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CALL = ToolCall("get_weather", {"city": "Paris"})


def oai(gw: Gateway) -> openai.AsyncOpenAI:
    return gw.openai()


def ant(gw: Gateway) -> anthropic.AsyncAnthropic:
    c = anthropic.AsyncAnthropic(base_url=gw.api, api_key=CLIENT_KEY, max_retries=0)
    gw.clients.append(c)
    return c


def gem(gw: Gateway) -> genai.Client:
    return genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=gw.api, api_version="v1beta"))


async def served(gateway: GatewayFactory, upstream: str) -> Gateway:
    return await gateway(binding("helper", upstream, extra="  aliases: [helper]"))


# ------------------------------------------------------------------ openai chat


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
async def test_openai_chat(gateway: GatewayFactory, sim: Simulator, upstream: str, stream: bool) -> None:
    gw = await served(gateway, upstream)
    sim.script(upstream, Reply(text="It is sunny.", tool_calls=[CALL]))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    if not stream:
        done = await oai(gw).chat.completions.create(model="helper", messages=msgs, tools=tools)
        msg = done.choices[0].message
        call = msg.tool_calls[0]
        assert done.choices[0].finish_reason == "tool_calls"
    else:
        async with oai(gw).chat.completions.stream(model="helper", messages=msgs, tools=tools) as s:
            async for _ in s:
                pass
            done = await s.get_final_completion()
        call = done.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    # the answer to the call goes back with the same id, and the upstream gets it paired
    sim.script(upstream, Reply(text="18C and sunny."))
    follow = msgs + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"},
    ]
    answer = await oai(gw).chat.completions.create(model="helper", messages=follow, tools=tools)
    assert answer.choices[0].message.content == "18C and sunny."
    assert "18C, sunny" in json.dumps(sim.requests(upstream)[-1].body)


# -------------------------------------------------------------- openai responses


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
async def test_openai_responses(gateway: GatewayFactory, sim: Simulator, upstream: str, stream: bool) -> None:
    gw = await served(gateway, upstream)
    sim.script(upstream, Reply(tool_calls=[CALL]))
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}]
    if not stream:
        resp = await oai(gw).responses.create(model="helper", input="Weather in Paris?", tools=tools)
    else:
        async with oai(gw).responses.stream(model="helper", input="Weather in Paris?", tools=tools) as s:
            async for _ in s:
                pass
            resp = await s.get_final_response()
    (call,) = [o for o in resp.output if o.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    sim.script(upstream, Reply(text="18C."))
    second = await oai(gw).responses.create(
        model="helper",
        input=[{"role": "user", "content": "Weather in Paris?"}, call.model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": call.call_id, "output": "18C"}],
        tools=tools,
    )
    assert second.output_text == "18C."


# -------------------------------------------------------------------- anthropic


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_messages(gateway: GatewayFactory, sim: Simulator, upstream: str, stream: bool) -> None:
    gw = await served(gateway, upstream)
    sim.script(upstream, Reply(text="Checking.", tool_calls=[CALL]))
    tools = [{"name": "get_weather", "input_schema": WEATHER}]
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    if not stream:
        msg = await ant(gw).messages.create(model="helper", max_tokens=200, messages=msgs, tools=tools)
    else:
        async with ant(gw).messages.stream(model="helper", max_tokens=200, messages=msgs, tools=tools) as s:
            async for _ in s:
                pass
            msg = await s.get_final_message()
    assert msg.stop_reason == "tool_use"
    (use,) = [b for b in msg.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    sim.script(upstream, Reply(text="18C."))
    follow = msgs + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C"}]},
    ]
    answer = await ant(gw).messages.create(model="helper", max_tokens=200, messages=follow, tools=tools)
    assert answer.content[0].text == "18C."


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_that_ran_out_of_tokens_while_thinking_is_relayed(
    gateway: GatewayFactory, sim: Simulator, upstream: str, stream: bool
) -> None:
    """Issue 17, defect 4: a reasoning model that spends max_completion_tokens on reasoning
    answers content "" with finish_reason "length"; the sidecar answered 503 empty-response
    (SDKs retry 5xx: more paid calls) and three of them opened the breaker."""
    gw = await served(gateway, upstream)
    for _ in range(4):
        sim.script(upstream, Reply(text="", thinking="hmm " * 20, finish="length"))
        if stream:
            chunks = [c async for c in await oai(gw).chat.completions.create(model="helper", messages=[{"role": "user", "content": "hi"}], max_tokens=16, stream=True)]
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            assert finish == ["length"], chunks
        else:
            got = await oai(gw).chat.completions.create(model="helper", messages=[{"role": "user", "content": "hi"}], max_tokens=16)
            assert got.choices[0].finish_reason == "length" and not got.choices[0].message.content
    assert gw.runtime.breakers.items()[0][1].state.value == "closed"
    assert gw.runtime.breakers.items()[0][1].consecutive_failures == 0


SYSTEM_TURN_SEEN = {
    # what each tier received for Claude Code's system turn after the user's first one
    "primary": lambda body: [m["role"] for m in body["messages"]] == ["user", "system"]
    and body["messages"][1]["content"] == "Agent types: Explore.",
    "claude": lambda body: [m["role"] for m in body["messages"]] == ["user", "system"],
    "gem": lambda body: body["systemInstruction"]["parts"][-1]["text"] == "Agent types: Explore."
    and all(c["role"] == "user" for c in body["contents"]),
}


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_system_turn_after_the_first_user_turn_is_served_everywhere(
    gateway: GatewayFactory, sim: Simulator, upstream: str, stream: bool
) -> None:
    """Issue 17, defect 0: Claude Code's first request holds [user, system]; the gateway
    refused it with `messages.1.role: must be user or assistant` and called no upstream."""
    gw = await served(gateway, upstream)
    sim.script(upstream, Reply(text="Hello there."))
    msgs = [{"role": "user", "content": "hello"}, {"role": "system", "content": "Agent types: Explore."}]
    raw = await ant(gw).messages.with_raw_response.create(model="helper", max_tokens=200, messages=msgs, stream=stream)  # type: ignore[arg-type]
    if stream:
        text = "".join([e.delta.text async for e in await raw.parse() if e.type == "content_block_delta" and e.delta.type == "text_delta"])
    else:
        text = (await raw.parse()).content[0].text
    assert text == "Hello there."
    body = json.loads(sim.requests(upstream)[-1].raw)
    assert SYSTEM_TURN_SEEN[upstream](body), body
    if upstream == "gem":  # Gemini takes instructions only at the start: mapped, and said so
        assert "systemTurns=map(systemInstruction)" in raw.headers["x-switchyard-degraded"]


@pytest.mark.parametrize("upstream", ["claude", "gem"])
async def test_anthropic_thinking(gateway: GatewayFactory, sim: Simulator, upstream: str) -> None:
    gw = await served(gateway, upstream)
    sim.script(upstream, Reply(text="42.", thinking="Let me think step by step."))
    async with ant(gw).messages.stream(
        model="helper", max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "answer?"}],
    ) as s:
        msg = await s.get_final_message()
    kinds = [b.type for b in msg.content]
    assert kinds == ["thinking", "text"], kinds
    assert msg.content[0].thinking == "Let me think step by step." and msg.content[1].text == "42."
    if upstream == "claude":  # same protocol: the signature is Anthropic's own and kept
        assert msg.content[0].signature


# ------------------------------------------------------------------ google-genai


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
async def test_google_genai(gateway: GatewayFactory, sim: Simulator, upstream: str, stream: bool) -> None:
    gw = await served(gateway, upstream)
    sim.script(upstream, Reply(tool_calls=[CALL]))
    client = gem(gw)
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER)])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    if not stream:
        resp = await client.aio.models.generate_content(model="helper", contents="Weather in Paris?", config=config)
        calls = resp.function_calls or []
    else:
        calls = []
        async for chunk in await client.aio.models.generate_content_stream(model="helper", contents="Weather in Paris?", config=config):
            calls.extend(chunk.function_calls or [])
    (call,) = calls
    assert call.name == "get_weather" and call.args == {"city": "Paris"}
    sim.script(upstream, Reply(text="18C."))
    resp = await client.aio.models.generate_content(
        model="helper",
        contents=[
            types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]),
            types.Content(role="model", parts=[types.Part(function_call=call)]),
            types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(name="get_weather", response={"temp": "18C"}))]),
        ],
        config=config,
    )
    assert resp.text == "18C."


# ------------------------------------------------------------------ error mapping


@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_a_429_reaches_each_client_as_its_own_rate_limit_error(
    gateway: GatewayFactory, sim: Simulator, upstream: str
) -> None:
    gw = await served(gateway, upstream)
    for _ in range(3):
        sim.fault(upstream, "429", retry_after=9)
    with pytest.raises(anthropic.RateLimitError) as a:
        await ant(gw).messages.create(model="helper", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert a.value.body["error"]["type"] == "rate_limit_error"
    assert a.value.response.headers["retry-after"] == "9"
    with pytest.raises(openai.RateLimitError) as o:
        await oai(gw).chat.completions.create(model="helper", messages=[{"role": "user", "content": "hi"}])
    assert o.value.body["type"] == "rate_limit_error"
    with pytest.raises(genai.errors.ClientError) as g:
        await gem(gw).aio.models.generate_content(model="helper", contents="hi")
    assert g.value.code == 429 and g.value.status == "RESOURCE_EXHAUSTED"
