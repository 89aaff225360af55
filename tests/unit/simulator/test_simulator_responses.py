"""The simulator's OpenAI Responses flavour, checked by the official `openai` SDK.

`client.responses.create(...)`, whole and streamed, must parse what the simulator sends
into the answer the test scripted; and the simulator must refuse, in OpenAI's error
shape, what the real API refuses (the cases the gateway's Responses egress is tested
against: a non-strict tool schema sent as strict, max_output_tokens below 16, reasoning
items with an id under store: false, an orphan function_call_output, a
previous_response_id it does not have).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchyard.simulator import Mount, Reply, Simulator, ToolCall, Usage

openai = pytest.importorskip("openai")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(Mount("resp", flavour="openai-responses", api_key="sk-sim"), port=0) as s:
        yield s


def client(sim: Simulator) -> Any:
    return openai.AsyncOpenAI(base_url=sim.base_url("resp"), api_key="sk-sim", timeout=10, max_retries=0)


TOOL = {"type": "function", "name": "get_weather", "description": "Weather", "strict": False,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


async def test_create_whole_with_reasoning_and_a_call(sim: Simulator) -> None:
    sim.script("resp", Reply(text="Checking.", thinking="Need the weather.", signature="SIG",
                             tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, id="call_1")], usage=Usage(input_tokens=20, output_tokens=7)))
    async with client(sim) as c:
        r = await c.responses.create(model="gpt-5.4", input="Weather in Oslo?", tools=[TOOL], store=False,
                                     reasoning={"effort": "low", "summary": "auto"}, include=["reasoning.encrypted_content"])
    assert r.status == "completed" and r.output_text == "Checking."
    reasoning, message, call = r.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Need the weather." and reasoning.encrypted_content == "gAAAAsimSIG"
    assert message.type == "message"
    assert (call.type, call.call_id, call.name, call.arguments) == ("function_call", "call_1", "get_weather", '{"city":"Oslo"}')
    assert r.usage is not None and r.usage.input_tokens == 20
    assert sim.requests("resp")[0].path == "/resp/v1/responses"


async def test_create_streamed(sim: Simulator) -> None:
    sim.script("resp", Reply(text="Hello there, friend.", thinking="Greet.", tool_calls=[ToolCall("get_weather", {"city": "Rome"})]))
    async with client(sim) as c:
        stream = await c.responses.create(model="gpt-5.4", input="hi", tools=[TOOL], stream=True, reasoning={"effort": "low", "summary": "auto"})
        events = [e async for e in stream]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert (text, summary, args) == ("Hello there, friend.", "Greet.", '{"city":"Rome"}')
    final = events[-1].response
    assert [o.type for o in final.output] == ["reasoning", "message", "function_call"]
    assert not hasattr(final.output[0], "encrypted_content") or final.output[0].encrypted_content is None  # not asked for


async def test_incomplete_when_cut(sim: Simulator) -> None:
    sim.script("resp", Reply(text="A long", finish="length"))
    async with client(sim) as c:
        r = await c.responses.create(model="gpt-5.4", input="essay", max_output_tokens=16)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize(("kwargs", "status", "message"), [
    ({"tools": [{**TOOL, "strict": True}]}, 400, "'additionalProperties' is required to be supplied and to be false"),
    ({"tools": [{k: v for k, v in TOOL.items() if k != "strict"}]}, 400, "Invalid schema for function 'get_weather'"),  # strict by default
    ({"max_output_tokens": 5}, 400, "Expected a value >= 16"),
    ({"previous_response_id": "resp_gone"}, 400, "Previous response with id 'resp_gone' not found."),
    ({"input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}]}, 400, "No tool call found for function call output with call_id call_x."),
    ({"store": False, "input": [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "x"}, {"role": "user", "content": "hi"}]},
     404, "Items are not persisted when `store` is set to false"),
])
async def test_refuses_what_the_real_api_refuses(sim: Simulator, kwargs: dict[str, Any], status: int, message: str) -> None:
    args: dict[str, Any] = {"model": "gpt-5.4", "input": "hi", **kwargs}
    async with client(sim) as c:
        with pytest.raises(openai.APIStatusError) as err:
            await c.responses.create(**args)
    assert err.value.status_code == status and message in str(err.value)


async def test_accepts_what_codex_sends(sim: Simulator) -> None:
    strict_tool = {"type": "function", "name": "shell", "strict": True,
                   "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"], "additionalProperties": False}}
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "ls"}]},
        {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA"},
        {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "a b"},
    ]
    async with client(sim) as c:
        r = await c.responses.create(model="gpt-5.4", input=items, tools=[strict_tool], store=False, include=["reasoning.encrypted_content"])
    assert r.status == "completed"


async def test_rate_limit_and_error_event(sim: Simulator) -> None:
    sim.fault("resp", 429, retry_after=3)
    async with client(sim) as c:
        with pytest.raises(openai.RateLimitError):
            await c.responses.create(model="gpt-5.4", input="hi")
        sim.fault("resp", "error-event", after_chunks=1)
        stream = await c.responses.create(model="gpt-5.4", input="hi", stream=True)
        kinds = [e.type async for e in stream]
    assert kinds[-2:] == ["error", "response.failed"] and "response.completed" not in kinds
