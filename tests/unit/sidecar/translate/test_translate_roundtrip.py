"""Property: a request translated out to a protocol and read back keeps its meaning.

For each wire protocol P, a random neutral request is rendered by P's egress face and
parsed by P's ingress face; what a model would see (system text, turns, roles, text,
tool calls with their arguments, tool results paired to their calls, sampling and
limits) must survive. Normalisations each protocol imposes (merged consecutive turns,
clamped temperature) are applied to the expectation, not hidden.
"""

from __future__ import annotations

import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchyard.sidecar.contract.config import CompiledProfile, CompiledTier
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import adapter_for

PROTOCOLS = ["openai-chat", "anthropic-messages", "gemini", "openai-responses"]
BASE = {"openai-chat": "https://x/v1", "anthropic-messages": "https://x", "gemini": "https://x", "openai-responses": "https://x/v1"}

text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(lambda s: s.strip())
name = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
args = st.dictionaries(name, st.one_of(st.integers(-5, 5), text), max_size=3)


@st.composite
def conversations(draw: st.DrawFn) -> n.Request:
    tools = draw(st.lists(name, min_size=0, max_size=3, unique=True))
    messages: list[n.Message] = [n.Message("user", [n.Text(draw(text))])]
    counter = 0
    for _ in range(draw(st.integers(0, 3))):
        if tools and draw(st.booleans()):
            calls = []
            for tool in draw(st.lists(st.sampled_from(tools), min_size=1, max_size=2)):
                counter += 1
                calls.append(n.ToolCall(f"call_{counter}", tool, json.dumps(draw(args))))
            messages.append(n.Message("assistant", list(calls)))
            messages.append(n.Message("user", [n.ToolResult(c.id, [n.Text(draw(text))], name=c.name) for c in calls]))
        else:
            messages.append(n.Message("assistant", [n.Text(draw(text))]))
            messages.append(n.Message("user", [n.Text(draw(text))]))
    return n.Request(
        model="alias",
        messages=messages,
        system=[n.Text(draw(text))] if draw(st.booleans()) else [],
        tools=[n.Tool(t, "does " + t, {"type": "object", "properties": {}}) for t in tools],
        max_tokens=draw(st.one_of(st.none(), st.integers(1, 4096))),
        temperature=draw(st.one_of(st.none(), st.floats(0, 2, allow_nan=False).map(lambda f: round(f, 2)))),
        stop=draw(st.lists(text.filter(lambda s: s.strip() == s), max_size=2, unique=True)),
    )


def tier(protocol: str) -> CompiledTier:
    return CompiledTier(
        index=0, source="s", provider={"openai-chat": "openai", "anthropic-messages": "anthropic", "gemini": "gemini", "openai-responses": "openai"}[protocol],
        protocol=protocol, base_url=BASE[protocol], model="m", auth="none",
        profile=CompiledProfile(name="p", protocol=protocol, features={}, on_unsupported={}),
    )


def meaning(req: n.Request) -> dict:
    """What a model would see, with consecutive same-role turns merged."""
    turns: list[tuple[str, list]] = []
    for m in req.messages:
        items = []
        for p in m.parts:
            if isinstance(p, n.Text):
                items.append(("text", p.text))
            elif isinstance(p, n.ToolCall):
                items.append(("call", p.name, json.loads(p.arguments or "{}")))
            elif isinstance(p, n.ToolResult):
                items.append(("result", p.name, "".join(x.text for x in p.content if isinstance(x, n.Text))))
        if turns and turns[-1][0] == m.role:
            turns[-1][1].extend(items)
        else:
            turns.append((m.role, items))
    # Tool results are paired by id (OpenAI, Anthropic) or by name (Gemini): compare
    # the pairing, not the id strings a protocol may rewrite.
    return {
        "system": "\n\n".join(t.text for t in req.system),
        "turns": [(role, sorted(map(repr, items))) for role, items in turns],
        "tools": sorted(t.name for t in req.tools),
        "max_tokens": req.max_tokens,
        "stop": list(req.stop),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=conversations())
def test_out_and_back_keeps_the_meaning(req: n.Request) -> None:
    for protocol in PROTOCOLS:
        adapter = adapter_for(protocol)
        call = adapter.build_call(req, tier(protocol))
        body = orjson.loads(call.body)
        back = adapter.parse_request(body, path_model="m" if protocol == "gemini" else None, stream=False)
        want, got = meaning(req), meaning(back)
        if protocol == "anthropic-messages" and req.max_tokens is None:
            want["max_tokens"] = got["max_tokens"]  # Anthropic requires one: the adapter supplies it
        if protocol == "openai-responses":
            want["stop"] = []  # the Responses API has no stop sequences (dropped and reported)
            if req.max_tokens is not None:
                want["max_tokens"] = max(16, req.max_tokens)  # the API's floor
        assert got == want, protocol
        if req.temperature is not None:
            limit = 1.0 if protocol == "anthropic-messages" else 2.0
            assert back.temperature == min(req.temperature, limit), protocol
