"""The Responses API's conversation state, kept by the sidecar (issue 17).

`previous_response_id` was a 400: the gateway kept no state. Now the sidecar stores each
answer (unless `store: false`) with the turns it added, neutral, so a conversation goes
on on a tier of any protocol and survives a fallback mid-conversation."""

from __future__ import annotations

import json

import openai
import pytest

from harness import Gateway, GatewayFactory, binding
from switchyard.simulator import Reply, Simulator, ToolCall

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}]


def texts_sent(sim: Simulator, mount: str) -> str:
    """Everything the upstream received in its last request, as one string."""
    return sim.requests(mount)[-1].raw.decode()


@pytest.mark.parametrize("upstream", ["primary", "claude", "gem"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_conversation_continues_by_previous_response_id(gateway: GatewayFactory, sim: Simulator, upstream: str, stream: bool) -> None:
    gw: Gateway = await gateway(binding("helper", upstream, extra="  aliases: [helper]"))
    client = gw.openai()
    sim.script(upstream, Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    if stream:
        async with client.responses.stream(model="helper", input="Weather in Paris?", tools=TOOLS) as s:
            async for _ in s:
                pass
            first = await s.get_final_response()
    else:
        first = await client.responses.create(model="helper", input="Weather in Paris?", tools=TOOLS)
    (call,) = [o for o in first.output if o.type == "function_call"]
    sim.script(upstream, Reply(text="18C and sunny."))
    second = await client.responses.create(
        model="helper", previous_response_id=first.id, tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}],
    )
    assert second.output_text == "18C and sunny."
    sent = texts_sent(sim, upstream)
    assert "Weather in Paris?" in sent and "get_weather" in sent and "18C" in sent, "the stored turns were replayed"
    sim.script(upstream, Reply(text="You asked about Paris."))
    third = await client.responses.create(model="helper", previous_response_id=second.id, input="What did I ask?")
    assert third.output_text == "You asked about Paris."
    assert "Weather in Paris?" in texts_sent(sim, upstream) and "18C and sunny." in texts_sent(sim, upstream)
    got = await client.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == "18C and sunny."


async def test_it_survives_a_fallback_to_another_protocol_mid_conversation(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary", "claude", extra="  aliases: [helper]"))
    client = gw.openai()
    sim.script("primary", Reply(text="Hello Ada."))
    first = await client.responses.create(model="helper", input="My name is Ada.")
    sim.fault("primary", "429", retry_after=30)
    sim.script("claude", Reply(text="Your name is Ada."))
    raw = await client.responses.with_raw_response.create(model="helper", previous_response_id=first.id, input="What is my name?")
    assert raw.headers["x-switchyard-tier"] == "1"
    assert raw.parse().output_text == "Your name is Ada."
    body = json.loads(sim.requests("claude")[-1].raw)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert "My name is Ada." in json.dumps(body["messages"][0]) and "Hello Ada." in json.dumps(body["messages"][1])


async def test_store_false_keeps_nothing_and_an_unknown_id_is_a_404(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary", extra="  aliases: [helper]"))
    client = gw.openai()
    first = await client.responses.create(model="helper", input="hi", store=False)
    assert len(gw.runtime.responses) == 0
    with pytest.raises(openai.NotFoundError) as info:
        await client.responses.create(model="helper", previous_response_id=first.id, input="again")
    assert info.value.body["code"] == "previous_response_not_found"
    kept = await client.responses.create(model="helper", input="hi")
    assert len(gw.runtime.responses) == 1
    await client.responses.delete(kept.id)
    assert len(gw.runtime.responses) == 0


async def test_a_response_id_continues_only_on_its_own_binding(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("one", "primary", extra="  aliases: [one]") + "---\n" + binding("two", "primary", extra="  aliases: [two]"))
    client = gw.openai()
    first = await client.responses.create(model="one", input="secret plan")
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model="two", previous_response_id=first.id, input="what was the plan?")
