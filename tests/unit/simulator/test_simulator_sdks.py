"""The official SDKs parse what the simulator sends: proof that its wire formats are right.

The `openai`, `anthropic` and `google-genai` SDKs — code nobody here wrote — talk to
the simulator over loopback, streaming and not, with tool calls, thinking, errors and
in-stream error events, and must end up with the answer the test scripted. Each SDK is
skipped with a reason if it is not installed. Retries are off unless a test is about
them, so every fault reaches the test.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from switchyard.simulator import Mount, Reply, Simulator, ToolCall, Usage

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
genai = pytest.importorskip("google.genai")
from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types as genai_types  # noqa: E402

SIGNATURE = "RXFRQkNrWUlCeGdDS2tBc2lnbmF0dXJl"  # base64, as Gemini's thoughtSignature must be


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(api_keys={"openai": "sk-sim", "anthropic": "ak-sim", "gemini": "AIza-sim"}) as s:
        yield s


def openai_client(sim: Simulator, **kwargs: object) -> openai.AsyncOpenAI:
    kwargs.setdefault("max_retries", 0)
    return openai.AsyncOpenAI(base_url=sim.base_url("openai"), api_key="sk-sim", timeout=10, **kwargs)


def anthropic_client(sim: Simulator, **kwargs: object) -> anthropic.AsyncAnthropic:
    kwargs.setdefault("max_retries", 0)
    return anthropic.AsyncAnthropic(base_url=sim.base_url("anthropic"), api_key="ak-sim", timeout=10, **kwargs)


def gemini_client(sim: Simulator) -> genai.Client:
    return genai.Client(api_key="AIza-sim", http_options=genai_types.HttpOptions(base_url=sim.base_url("gemini"), timeout=10_000))


# ===================================================================================== openai


async def test_openai_sdk_non_streaming(sim) -> None:
    sim.script("openai", Reply(text="Bonjour.", usage=Usage(input_tokens=12, output_tokens=3)))
    async with openai_client(sim) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello in French"}])
    assert completion.choices[0].message.content == "Bonjour."
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (12, 3, 15)
    [request] = sim.requests("openai")
    assert request.headers["Authorization"] == "Bearer sk-sim"
    assert request.body["messages"] == [{"role": "user", "content": "Say hello in French"}]


async def test_openai_sdk_stream_with_tool_calls_and_usage(sim) -> None:
    sim.script("openai", Reply(text="Looking it up.", tool_calls=[
        ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"tz": "Europe/Paris"}),
    ], chunks=3))
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in ("get_weather", "get_time")]
    async with openai_client(sim) as client:
        async with client.chat.completions.stream(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}], tools=tools,
            stream_options={"include_usage": True},
        ) as stream:
            async for _ in stream:
                pass
            final = await stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Looking it up." and final.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Europe/Paris"}),
    ]
    assert final.usage is not None and final.usage.total_tokens > 0


async def test_openai_sdk_raises_on_an_in_stream_error(sim) -> None:
    sim.fault("openai", "error-event", after_chunks=1)
    async with openai_client(sim) as client:
        stream = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
        seen = []
        with pytest.raises(openai.APIError, match="had an error"):
            async for chunk in stream:
                seen.append(chunk)
    assert seen and seen[-1].choices[0].delta.content


async def test_openai_sdk_errors_and_retry_after(sim) -> None:
    sim.fault("openai", 429, retry_after=1)
    sim.fault("openai", 401)
    async with openai_client(sim) as client:
        with pytest.raises(openai.RateLimitError) as rate_limited:
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert rate_limited.value.code == "rate_limit_exceeded" and rate_limited.value.response.headers["retry-after"] == "1"
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    sim.fault("openai", 429, retry_after_ms=5)
    async with openai_client(sim, max_retries=1) as client:
        completion = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content
    assert [r.outcome for r in sim.requests("openai")][-2:] == ["fault:429", "ok"]


async def test_openai_sdk_lists_models(sim) -> None:
    async with openai_client(sim) as client:
        models = [m.id async for m in client.models.list()]
        model = await client.models.retrieve("gpt-4.1")
    assert models == list(sim.mount("openai").models) and model.id == "gpt-4.1"


# ================================================================================== anthropic


async def test_anthropic_sdk_non_streaming(sim) -> None:
    sim.script("anthropic", Reply(text="Hello!", usage=Usage(input_tokens=9, output_tokens=2)))
    async with anthropic_client(sim) as client:
        message = await client.messages.create(model="claude-sonnet-5-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "Hello!"
    assert message.stop_reason == "end_turn" and (message.usage.input_tokens, message.usage.output_tokens) == (9, 2)
    [request] = sim.requests("anthropic")  # current SDKs send the key as a bearer token
    assert request.headers.get("x-api-key", request.headers.get("Authorization")) in ("ak-sim", "Bearer ak-sim")
    assert request.headers["anthropic-version"]


async def test_anthropic_sdk_stream_with_thinking_and_tool_use(sim) -> None:
    sim.script("anthropic", Reply(
        text="I'll check.", thinking="Weather needs a tool.", signature=SIGNATURE,
        tool_calls=[ToolCall("get_weather", {"city": "Paris", "days": 2})], chunks=3,
    ))
    async with anthropic_client(sim) as client:
        async with client.messages.stream(
            model="claude-sonnet-5-5", max_tokens=2048, messages=[{"role": "user", "content": "weather?"}],
            thinking={"type": "enabled", "budget_tokens": 1024},
            tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        ) as stream:
            kinds = [event.type async for event in stream]
            message = await stream.get_final_message()
    assert "thinking" in kinds and "text" in kinds and "input_json" in kinds and "signature" in kinds
    thinking, text, tool = message.content
    assert (thinking.type, thinking.thinking, thinking.signature) == ("thinking", "Weather needs a tool.", SIGNATURE)
    assert (text.type, text.text) == ("text", "I'll check.")
    assert (tool.type, tool.name, tool.input) == ("tool_use", "get_weather", {"city": "Paris", "days": 2})
    assert message.stop_reason == "tool_use" and message.usage.output_tokens > 0


async def test_anthropic_sdk_raises_on_an_in_stream_error(sim) -> None:
    sim.fault("anthropic", "error-event", after_chunks=1)
    async with anthropic_client(sim) as client:
        stream = await client.messages.create(model="c", max_tokens=64, messages=[{"role": "user", "content": "x"}], stream=True)
        with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
            async for _ in stream:
                pass


async def test_anthropic_sdk_errors_and_retry(sim) -> None:
    sim.fault("anthropic", 529)
    sim.fault("anthropic", 429, retry_after=1)
    async with anthropic_client(sim) as client:
        with pytest.raises(anthropic.InternalServerError) as overloaded:
            await client.messages.create(model="c", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        assert overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"
        with pytest.raises(anthropic.RateLimitError) as limited:
            await client.messages.create(model="c", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        assert limited.value.request_id == limited.value.response.headers["request-id"]
    sim.fault("anthropic", 529, retry_after_ms=5)
    async with anthropic_client(sim, max_retries=1) as client:
        message = await client.messages.create(model="c", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert message.content[0].text


async def test_anthropic_sdk_models_and_count_tokens(sim) -> None:
    async with anthropic_client(sim) as client:
        models = [m.id async for m in client.models.list()]
        count = await client.messages.count_tokens(model="claude-sonnet-5-5", messages=[{"role": "user", "content": "hello " * 20}])
    assert models == list(sim.mount("anthropic").models) and count.input_tokens > 10


# ===================================================================================== gemini


async def test_gemini_sdk_non_streaming(sim) -> None:
    sim.script("gemini", Reply(text="Hallo!", usage=Usage(input_tokens=5, output_tokens=2)))
    response = await gemini_client(sim).aio.models.generate_content(model="gemini-2.5-flash", contents="Say hello in German")
    assert response.text == "Hallo!"
    assert response.candidates[0].finish_reason == genai_types.FinishReason.STOP
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (5, 2, 7)
    [request] = sim.requests("gemini")
    assert request.headers["x-goog-api-key"] == "AIza-sim"
    assert request.body["contents"] == [{"parts": [{"text": "Say hello in German"}], "role": "user"}]


async def test_gemini_sdk_stream_with_thoughts_and_function_call(sim) -> None:
    sim.script("gemini", Reply(
        text="Checking.", thinking="A tool is needed.", signature=SIGNATURE,
        tool_calls=[ToolCall("get_weather", {"city": "Paris"})], chunks=2,
    ))
    config = genai_types.GenerateContentConfig(
        tools=[genai_types.Tool(function_declarations=[genai_types.FunctionDeclaration(name="get_weather")])],
        thinking_config=genai_types.ThinkingConfig(include_thoughts=True),
    )
    parts = []
    stream = await gemini_client(sim).aio.models.generate_content_stream(model="gemini-2.5-flash", contents="weather?", config=config)
    async for chunk in stream:
        parts += chunk.candidates[0].content.parts or []
        last = chunk
    assert "".join(p.text for p in parts if p.thought) == "A tool is needed."
    assert "".join(p.text for p in parts if p.text and not p.thought) == "Checking."
    [call] = [p for p in parts if p.function_call]
    assert (call.function_call.name, call.function_call.args) == ("get_weather", {"city": "Paris"})
    assert call.thought_signature == b"EqQBCkYIBxgCKkAsignature"
    assert last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert last.usage_metadata.thoughts_token_count > 0
    [request] = sim.requests("gemini")
    assert request.query == {"alt": "sse"}


async def test_gemini_sdk_raises_on_errors(sim) -> None:
    client = gemini_client(sim)
    sim.fault("gemini", 429, retry_after=7)
    with pytest.raises(genai_errors.ClientError) as limited:
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert limited.value.code == 429 and limited.value.status == "RESOURCE_EXHAUSTED"
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in limited.value.details["error"]["details"]
    sim.fault("gemini", "error-event", after_chunks=1, status=503)
    stream = await client.aio.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
    with pytest.raises(genai_errors.ServerError) as unavailable:
        async for _ in stream:
            pass
    assert unavailable.value.code == 503


async def test_gemini_sdk_wrong_key(sim) -> None:
    client = genai.Client(api_key="AIza-wrong", http_options=genai_types.HttpOptions(base_url=sim.base_url("gemini")))
    with pytest.raises(genai_errors.ClientError) as refused:
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert refused.value.code == 400 and "API key not valid" in refused.value.message


async def test_gemini_sdk_models_and_count_tokens(sim) -> None:
    client = gemini_client(sim)
    names = [m.name async for m in await client.aio.models.list()]
    model = await client.aio.models.get(model="gemini-3.1-pro")
    count = await client.aio.models.count_tokens(model="gemini-2.5-flash", contents="hello " * 20)
    assert names == [f"models/{m}" for m in sim.mount("gemini").models]
    assert model.name == "models/gemini-3.1-pro" and model.input_token_limit
    assert count.total_tokens > 10


async def test_sdks_against_a_root_mount() -> None:
    async with Simulator(Mount("anthropic", prefix="")) as sim:
        async with anthropic.AsyncAnthropic(base_url=sim.base_url(), api_key="k", max_retries=0) as client:
            message = await client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text.endswith("You said: hi") and sim.requests()[0].path == "/v1/messages"
