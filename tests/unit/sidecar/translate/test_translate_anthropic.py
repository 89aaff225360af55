"""The Anthropic Messages adapter: parsing, passthrough, streams, and the official SDK's view.

Golden fixtures (tests/golden/*anthropic*) pin whole translations; these tests pin the
rules around them: which inputs are refused and with which ``param``, what a raw body
reports as features, that a same-protocol body keeps what Switchyard does not know and
is never mutated, that the stream decoder does not depend on chunking, and that the
``anthropic`` SDK's own types and stream accumulator read what the encoder writes.
The last section runs the real routes on loopback against a fake upstream.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from switchyard.sidecar.contract.config import (
    CompiledBinding,
    CompiledConfig,
    CompiledProfile,
    CompiledTier,
)
from switchyard.sidecar.translate import anthropic_messages as am
from switchyard.sidecar.translate.anthropic_messages import _wire as amw
from switchyard.sidecar.translate.anthropic_messages import egress as ame
from switchyard.sidecar.translate.anthropic_messages import ingress as ami
from switchyard.sidecar.translate.anthropic_messages import stream as ams
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import RequestError, UpstreamFormatError
from switchyard.sidecar.translate.sse import SSEDecoder

GOLDEN = Path(__file__).resolve().parents[3] / "golden"
SIG = "EqQBCkYIBxgCKkBzaWduYXR1cmU"


def tier(protocol: str = "anthropic-messages", **features: Any) -> CompiledTier:
    return CompiledTier(
        index=0,
        source="src",
        provider={"anthropic-messages": "anthropic", "openai-chat": "openai", "gemini": "gemini"}[protocol],
        protocol=protocol,
        base_url={"anthropic-messages": "https://api.anthropic.com", "openai-chat": "https://api.openai.com/v1",
                  "gemini": "https://generativelanguage.googleapis.com"}[protocol],
        model="claude-tier-model",
        auth={"anthropic-messages": "x-api-key", "openai-chat": "bearer", "gemini": "x-goog-api-key"}[protocol],
        credential="sk-tier-key",
        profile=CompiledProfile(name="p", protocol=protocol, features=features, on_unsupported={}),
    )


def body(**over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"model": "assistant", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    b.update(over)
    return b


# ================================================================== parse errors


@pytest.mark.parametrize(
    ("raw", "param", "words"),
    [
        ({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}, "model", "'model' is required"),
        (body(max_tokens=None), "max_tokens", "'max_tokens' is required"),
        (body(max_tokens="10"), "max_tokens", "integer"),
        (body(messages=[]), "messages", "non-empty array"),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages[0]", "user or assistant"),
        (body(messages=[{"role": "user"}]), "messages[0]", "content' is required"),
        (body(messages=[{"role": "user", "content": 5}]), "messages[0]", "string or an array"),
        (body(messages=[{"role": "user", "content": [{"text": "no type"}]}]), "messages[0]", "with a type"),
        (
            body(messages=[{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]),
            "messages[0].content[0]",
            "cannot appear in a user message",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]),
            "messages[0].content[0]",
            "file_id",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "tool_result"}]}]),
            "messages[0].content[0]",
            "tool_use_id",
        ),
        (body(thinking={"type": "sometimes"}), "thinking", "enabled, adaptive or disabled"),
        (body(thinking={"type": "enabled", "budget_tokens": "lots"}), "thinking", "positive integer"),
        (body(thinking={"type": "adaptive"}, output_config={"effort": "extreme"}), "output_config", "effort"),
        (body(tool_choice={"type": "maybe"}), "tool_choice", "auto, any, tool or none"),
        (body(tool_choice={"type": "tool"}), "tool_choice", "name"),
        (body(tools=[{"name": "f"}]), "tools", "input_schema"),
        (body(tools="f"), "tools", "must be an array"),
        (body(stop_sequences="END"), "stop_sequences", "array of strings"),
        (body(system=[{"type": "image"}]), "system", "text block"),
        (body(output_config={"format": {"type": "json_object"}}), "output_config", "json_schema"),
        (body(metadata={"user_id": 7}), "metadata", "user_id"),
        (body(temperature="hot"), "temperature", "number"),
    ],
)
def test_parse_errors_name_the_field(raw: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(RequestError) as info:
        ami.parse_request(raw)
    assert info.value.param == param
    assert words in info.value.message


def test_parse_everything_claude_code_sends() -> None:
    raw = body(
        stream=True,
        system=[{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}},
                                         {"type": "document", "source": {"type": "url", "url": "https://x/y.pdf"}, "citations": {"enabled": True}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "t", "signature": SIG},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "thinking", "thinking": "foreign", "signature": ""},
                {"type": "server_tool_use", "id": "srv", "name": "web_search", "input": {}},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                 "content": [{"type": "text", "text": "nope"}, {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}}]}]},
        ],
        tools=[{"name": "Read", "input_schema": {"type": "object"}, "eager_input_streaming": True},
               {"type": "web_search_20250305", "name": "web_search"}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        thinking={"type": "adaptive"},
        output_config={"effort": "xhigh", "task_budget": 5},
        context_management={"edits": []},
        metadata={"user_id": "u1"},
        stop_sequences=["END"],
        top_k=3,
    )
    req = ami.parse_request(raw)
    assert req.origin == "anthropic-messages" and req.stream is True and req.max_tokens == 100
    assert req.system == [n.Text("You are Claude Code.", {"type": "ephemeral"})]
    user, assistant, results = req.messages
    assert user.parts[0] == n.Text("look", {"type": "ephemeral"})
    assert user.parts[1] == n.Image(data="AA==", media_type="image/png")
    assert user.parts[2] == n.Document(url="https://x/y.pdf", media_type="application/pdf")
    assert assistant.parts == [
        n.Thinking("t", SIG, origin="anthropic-messages"),
        n.Thinking(redacted="opaque", origin="anthropic-messages"),
        n.Thinking("foreign", None, origin=None),  # an empty signature: not Anthropic's
        n.ToolCall("toolu_1", "Read", '{"path":"a"}'),
    ]
    (result,) = results.parts
    assert isinstance(result, n.ToolResult) and result.is_error and result.name == "Read"
    assert result.content == [n.Text("nope"), n.Image(url="https://x/i.png")]
    assert req.tools == [n.Tool("Read", None, {"type": "object"}, None)]
    assert req.tool_choice == n.ToolChoice("required") and req.parallel_tool_calls is False
    assert req.reasoning == n.Reasoning(effort="high", summary=True)
    assert req.user == "u1" and req.stop == ["END"] and req.top_k == 3
    # Everything without a neutral meaning is named, so a cross-protocol tier reports it.
    assert req.extras == {
        "context_management": {"edits": []},
        "output_config": {"task_budget": 5},
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "tools.eager_input_streaming": 1,
        "messages.server_tool_use": 1,
        "documents.citations": 1,
    }


def test_parse_thinking_variants_and_effort_alone() -> None:
    assert ami.parse_request(body(thinking={"type": "enabled", "budget_tokens": 4000})).reasoning == n.Reasoning(budget_tokens=4000, summary=True)
    assert ami.parse_request(body(thinking={"type": "disabled"})).reasoning == n.Reasoning(enabled=False)
    omitted = ami.parse_request(body(thinking={"type": "adaptive", "display": "omitted"})).reasoning
    assert omitted == n.Reasoning(summary=False)
    # Effort without thinking steers answer length, not thinking: an Anthropic-only field.
    alone = ami.parse_request(body(output_config={"effort": "low"}))
    assert alone.reasoning is None and alone.extras == {"output_config": {"effort": "low"}}


def test_parse_system_turns_and_structured_output() -> None:
    req = ami.parse_request(body(
        system="top",
        messages=[{"role": "user", "content": "a"}, {"role": "system", "content": "mid"}],
        output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}},
    ))
    # A system turn after a turn stays in place (issue 17: Claude Code sends one); it used
    # to be hoisted into the system prompt, which moved it ahead of the user's turn.
    assert [t.text for t in req.system] == ["top"]
    assert [(m.role, [p.text for p in m.parts]) for m in req.messages] == [("user", ["a"]), ("system", ["mid"])]
    first = ami.parse_request(body(messages=[{"role": "system", "content": "lead"}, {"role": "user", "content": "a"}]))
    assert [t.text for t in first.system] == ["lead"] and [m.role for m in first.messages] == ["user"]
    assert req.response_format == n.ResponseFormat("json_schema", {"type": "object"})
    legacy = ami.parse_request(body(output_format={"type": "json_schema", "schema": {"type": "object"}}))
    assert legacy.response_format is not None


# ================================================================ features_used


def test_features_used_reads_the_raw_body() -> None:
    raw = body(
        stream=True,
        system="s",
        tools=[{"name": "f", "input_schema": {"type": "object"}}],
        thinking={"type": "adaptive"},
        stop_sequences=["a", "b"],
        top_k=4,
        max_tokens=64000,
        output_config={"format": {"type": "json_schema", "schema": {}}},
        messages=[{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]},
            {"type": "document", "source": {}}]}],
    )
    assert ami.features_used(raw) == {
        "streaming": True, "tools": True, "systemPrompt": True, "vision": True, "documents": True,
        "reasoning": True, "structuredOutput": True, "stopSequences": 2, "topK": True, "maxOutputTokens": 64000,
    }
    assert ami.features_used(body(thinking={"type": "disabled"}, output_config={"effort": "low"})) == {"maxOutputTokens": 100}


# ============================================================ prepare_passthrough


def test_passthrough_keeps_unknown_fields_and_never_mutates() -> None:
    raw = body(
        context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
        container="c1",
        speed="fast",
        thinking={"type": "enabled", "budget_tokens": 5000},
        output_config={"effort": "low", "format": {"type": "json_schema", "schema": {}}},
        stop_sequences=["a", "b", "c"],
        messages=[
            {"role": "user", "content": [{"type": "image", "source": {}}, {"type": "text", "text": "q"},
                                         {"type": "future_block", "x": 1}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": SIG},
                                              {"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                          "content": [{"type": "image", "source": {}}, {"type": "text", "text": "r"}]}]},
        ],
    )
    before = copy.deepcopy(raw)
    out = ami.prepare_passthrough(raw, tier(), {"stopSequences": 2, "maxOutputTokens": 4000, "vision": None, "structuredOutput": None})
    assert raw == before, "the client's body must not change (fallback may translate it again)"
    assert out["model"] == "claude-tier-model"
    assert out["context_management"] == raw["context_management"] and out["container"] == "c1" and out["speed"] == "fast"
    assert out["stop_sequences"] == ["a", "b"] and out["max_tokens"] == 4000
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 3999}  # kept below the mapped max_tokens
    notes: list[tuple[str, str]] = []
    ami.prepare_passthrough(raw, tier(), {"maxOutputTokens": 4000}, notes)
    assert notes == [("reasoning", "map(3999)")]  # reported, not a silent budget cut
    ami.prepare_passthrough(raw, tier(), {"maxOutputTokens": 1000}, notes := [])
    assert notes == [("reasoning", "strip")]  # no room for the 1,024-token minimum
    ami.prepare_passthrough(body(max_tokens=8000, thinking={"type": "enabled", "budget_tokens": 5000}), tier(), {}, notes := [])
    assert notes == []  # a budget that fits is left alone
    assert out["output_config"] == {"effort": "low"}
    assert out["messages"][0]["content"] == [{"type": "text", "text": "q"}, {"type": "future_block", "x": 1}]
    assert out["messages"][2]["content"][0]["content"] == [{"type": "text", "text": "r"}]
    assert out["messages"][1] is raw["messages"][1]  # untouched turns are shared, not copied


def test_passthrough_strips_reasoning_and_foreign_thoughts() -> None:
    raw = body(
        thinking={"type": "enabled", "budget_tokens": 2000},
        max_tokens=9000,
        messages=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "from gpt", "signature": ""},
                                              {"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
        ],
    )
    notes: list[tuple[str, str]] = []
    out = ami.prepare_passthrough(raw, tier(), {}, notes)
    assert out["messages"][1]["content"] == [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]
    # Manual thinking cannot restart inside a tool loop whose turn lost its thinking block.
    assert "thinking" not in out
    assert notes == [("reasoning", "strip")]
    stripped = ami.prepare_passthrough(body(thinking={"type": "adaptive"}, output_config={"effort": "high"}), tier(), {"reasoning": None})
    assert "thinking" not in stripped and "output_config" not in stripped


def test_passthrough_call_forwards_beta_flags_never_client_credentials() -> None:
    call = ame.build_passthrough_call(
        {"model": "m", "stream": True},
        tier(),
        {"Anthropic-Beta": "context-management-2025-06-27", "anthropic-version": "2023-06-01"},
    )
    assert call.url == "https://api.anthropic.com/v1/messages" and call.stream
    assert call.headers["anthropic-beta"] == "context-management-2025-06-27"
    assert call.headers["x-api-key"] == "sk-tier-key"
    assert "authorization" not in {k.lower() for k in call.headers}
    assert am.ADAPTER.forward_headers == frozenset({"anthropic-version", "anthropic-beta"})


# ===================================================================== egress


def neutral(**over: Any) -> n.Request:
    base: dict[str, Any] = {"model": "a", "messages": [n.Message("user", [n.Text("hi")])], "origin": "openai-chat"}
    base.update(over)
    return n.Request(**base)


def built(req: n.Request, t: CompiledTier | None = None) -> dict[str, Any]:
    return orjson.loads(ame.build_call(req, t or tier()).body or b"{}")


def notes(req: n.Request, t: CompiledTier | None = None) -> list[tuple[str, str]]:
    """What the adapter changed on its own to fit the API (reported as degradations)."""
    return ame.build_call(req, t or tier()).notes


def test_egress_alternation_tool_results_first_and_ids() -> None:
    req = neutral(messages=[
        n.Message("user", [n.Text("a")]),
        n.Message("user", [n.Text("b")]),
        n.Message("assistant", [n.Thinking("mine?", origin="openai-chat"), n.ToolCall("functions.f:0", "f", "{}")]),
        n.Message("user", [n.Text("note")]),
        n.Message("user", [n.ToolResult("functions.f:0", [n.Text("r")])]),
    ])
    msgs = built(req)["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert [b["text"] for b in msgs[0]["content"]] == ["a", "b"]
    assert msgs[1]["content"] == [{"type": "tool_use", "id": "functions_f_0", "name": "f", "input": {}}]
    assert msgs[2]["content"][0] == {"type": "tool_result", "tool_use_id": "functions_f_0", "content": "r"}
    assert msgs[2]["content"][1] == {"type": "text", "text": "note"}


def test_egress_max_tokens_and_thinking_budget() -> None:
    assert built(neutral())["max_tokens"] == 8192
    assert built(neutral(), tier(maxOutputTokens=4096))["max_tokens"] == 4096
    assert built(neutral(), tier(maxOutputTokens=64000))["max_tokens"] == 8192
    b = built(neutral(max_tokens=500, reasoning=n.Reasoning(effort="low"), temperature=0.2, top_k=5, top_p=0.5))
    assert b["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert b["max_tokens"] == 2548  # raised: budget + the answer the client asked for
    assert "temperature" not in b and "top_k" not in b and "top_p" not in b  # refused with thinking on
    assert notes(neutral(max_tokens=500, reasoning=n.Reasoning(effort="low"), temperature=0.2, top_k=5, top_p=0.5)) == [
        ("maxOutputTokens", "map(2548)"), ("temperature", "strip"), ("topP", "strip"), ("topK", "strip"),
    ]
    capped = built(neutral(reasoning=n.Reasoning(effort="high")), tier(maxOutputTokens=16000))
    assert capped["max_tokens"] == 16000 and capped["thinking"]["budget_tokens"] == 15999
    assert notes(neutral(reasoning=n.Reasoning(effort="high")), tier(maxOutputTokens=16000)) == []  # no client number changed
    assert notes(neutral(reasoning=n.Reasoning(budget_tokens=20000)), tier(maxOutputTokens=16000)) == [("reasoning", "map(15999)")]
    assert notes(neutral(max_tokens=900, reasoning=n.Reasoning(effort="low")), tier(maxOutputTokens=1000)) == [
        ("maxOutputTokens", "map(1000)"), ("reasoning", "strip"),  # no room for the 1024-token minimum
    ]
    assert notes(neutral(max_tokens=500, temperature=0.2, top_k=5)) == []
    adaptive = built(neutral(reasoning=n.Reasoning(effort="minimal")), tier(reasoning="effort"))
    assert adaptive["thinking"] == {"type": "adaptive"} and adaptive["output_config"] == {"effort": "low"}
    assert built(neutral(reasoning=n.Reasoning(enabled=False)))["thinking"] == {"type": "disabled"}


def test_egress_forced_tools_leave_thinking_out() -> None:
    t = n.Tool("f", None, {"type": "object"})
    b = built(neutral(tools=[t], tool_choice=n.ToolChoice("required"), reasoning=n.Reasoning(effort="high")))
    assert b["tool_choice"] == {"type": "any"} and "thinking" not in b
    assert notes(neutral(tools=[t], tool_choice=n.ToolChoice("required"), reasoning=n.Reasoning(effort="high"))) == [
        ("reasoning", "strip"),
    ]
    so = built(neutral(response_format=n.ResponseFormat("json_object"), reasoning=n.Reasoning(effort="low")))
    assert so["tool_choice"]["name"] == amw.FORMAT_TOOL and "thinking" not in so
    with_tools = built(neutral(tools=[t], response_format=n.ResponseFormat("json_object")))
    assert [x["name"] for x in with_tools["tools"]] == ["f", amw.FORMAT_TOOL] and with_tools["tool_choice"] == {"type": "any"}
    with pytest.raises(RequestError, match="root is an object"):
        built(neutral(response_format=n.ResponseFormat("json_schema", {"type": "array"})))


def test_egress_sampling_and_stop_rules() -> None:
    b = built(neutral(temperature=1.7, top_p=0.3, top_k=9, stop=["END"], user="u", parallel_tool_calls=False,
                      tools=[n.Tool("f")]))
    assert b["temperature"] == 1.0 and "top_p" not in b and b["top_k"] == 9
    assert notes(neutral(temperature=1.7, top_p=0.3, top_k=9)) == [("temperature", "map(1)"), ("topP", "strip")]
    assert b["stop_sequences"] == ["END"] and b["metadata"] == {"user_id": "u"}
    assert b["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert b["tools"][0]["input_schema"] == {"type": "object", "properties": {}}
    with pytest.raises(RequestError) as info:
        built(neutral(stop=["\n"]))
    assert info.value.param == "stop" and "whitespace" in info.value.message


def test_egress_drops_thinking_anthropic_did_not_sign() -> None:
    req = neutral(messages=[
        n.Message("user", [n.Text("q")]),
        n.Message("assistant", [
            n.Thinking("ours", SIG, origin="anthropic-messages"),
            n.Thinking("unsigned", None, origin="anthropic-messages"),
            n.Thinking("gemini", "c2ln", origin="gemini"),
            n.Thinking(redacted="r", origin="openai-responses"),
            n.Text("answer"),
        ]),
        n.Message("user", [n.Text("more")]),
    ])
    assert built(req)["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "ours", "signature": SIG},
        {"type": "text", "text": "answer"},
    ]


def test_egress_same_origin_restores_extras_only_for_anthropic() -> None:
    req = ami.parse_request(body(
        service_tier="auto",
        tools=[{"type": "web_search_20250305", "name": "web_search"}],
        metadata={"user_id": "u"},
        output_config={"effort": "low"},
        messages=[{"role": "user", "content": [{"type": "search_result", "source": "s", "title": "t", "content": []}]},
                  {"role": "user", "content": "x"}],
    ))
    b = built(req)
    assert b["service_tier"] == "auto" and b["tools"] == [{"type": "web_search_20250305", "name": "web_search"}]
    assert b["output_config"] == {"effort": "low"} and b["metadata"] == {"user_id": "u"}
    assert "messages.search_result" not in b  # a report for other protocols, not a field


# ================================================================ responses in


def test_parse_response_maps_blocks_stop_reasons_and_usage() -> None:
    resp = ame.parse_response({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "thinking", "thinking": "t", "signature": SIG}, {"type": "text", "text": "x"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
                    {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5, "output_tokens": 7,
                  "output_tokens_details": {"thinking_tokens": 3}},
    })
    (choice,) = resp.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.parts == [n.Thinking("t", SIG, origin="anthropic-messages"), n.Text("x"), n.ToolCall("toolu_1", "f", '{"a":1}')]
    assert resp.usage == n.Usage(115, 7, 100, 5, 3)
    for stop, finish in [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
                         ("model_context_window_exceeded", "length"), ("refusal", "refusal"), ("pause_turn", "pause")]:
        r = ame.parse_response({"content": [{"type": "text", "text": "x"}], "stop_reason": stop})
        assert r.choices[0].finish_reason == finish
    with pytest.raises(UpstreamFormatError):
        ame.parse_response({"type": "error", "error": {"type": "api_error"}})


@pytest.mark.parametrize(
    ("status", "raw", "kind", "quota", "missing"),
    [
        (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}, "rate_limit_error", True, False),
        (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "overloaded_error", False, False),
        (404, {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-x"}}, "not_found_error", False, True),
        (400, {"type": "error", "error": {"type": "invalid_request_error",
                                          "message": "Your credit balance is too low to access the Anthropic API."}},
         "invalid_request_error", True, False),
    ],
)
def test_read_error(status: int, raw: dict[str, Any], kind: str, quota: bool, missing: bool) -> None:
    info = ame.read_error(status, orjson.dumps(raw), {})
    assert (info.kind, info.quota, info.model_not_found) == (kind, quota, missing)
    assert info.message == raw["error"]["message"]
    assert ame.read_error(502, b"<html>bad gateway</html>", {}).message == "<html>bad gateway</html>"


# ============================================================ stream decoder

FULL_STREAM = (
    GOLDEN / "anthropic-messages__anthropic-messages" / "thinking_tools_stream" / "upstream_stream.sse"
).read_bytes()


def decode(raw: bytes, cuts: list[int]) -> tuple[list[Any], bytes, bool]:
    d = ams.StreamDecoder()
    events: list[Any] = []
    raws = b""
    bounds = [0, *cuts, len(raw)]
    for a, b in zip(bounds, bounds[1:]):
        for item in d.feed(raw[a:b]):
            events.extend((type(e).__name__, e) for e in item.events)
            raws += item.raw
    d.close()
    return events, raws, d.complete


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_decoder_at_every_byte_split(newline: bytes) -> None:
    raw = FULL_STREAM.replace(b"\n", newline)
    whole, whole_raw, complete = decode(raw, [])
    assert complete and whole_raw == raw
    kinds = [k for k, _ in whole]
    assert kinds[:2] == ["StreamStart", "StreamUsage"] and kinds[-2:] == ["StreamFinish", "StreamUsage"]
    assert any(getattr(e, "origin", None) == amw.PROTOCOL and e.signature for k, e in whole), "the signature delta is decoded"
    for cut in range(1, len(raw)):
        events, _, done = decode(raw, [cut])
        assert (events, done) == (whole, True), f"split at byte {cut}"
    events, _, done = decode(raw, list(range(1, len(raw))))
    assert (events, done) == (whole, True), "one byte at a time"
    assert all(decode(raw, [cut])[1] == raw for cut in range(1, len(raw))), "raw bytes relayed unchanged"


def test_raw_bytes_survive_a_crlf_split_at_an_event_end() -> None:
    raw = FULL_STREAM.replace(b"\n", b"\r\n")
    cut = raw.index(b"\r\n\r\n") + 3
    assert decode(raw, [cut])[1] == raw


def test_decoder_complete_only_after_message_stop_and_reads_errors() -> None:
    cut = FULL_STREAM.index(b"event: message_stop")
    _, _, complete = decode(FULL_STREAM[:cut], [])
    assert not complete
    d = ams.StreamDecoder()
    (item,) = d.feed(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')
    assert item.events == [n.StreamError(529, "overloaded", "Overloaded")]
    (ping,) = d.feed(b'event: ping\ndata: {"type": "ping"}\n\n')
    assert ping.events == [] and not ping.terminal
    (bad,) = d.feed(b"event: content_block_delta\ndata: {not json\n\n")
    assert isinstance(bad.events[0], n.StreamError)


def test_decoder_turns_the_format_tool_into_text() -> None:
    raw = (GOLDEN / "openai-chat__anthropic-messages" / "json_mode_stream_cached" / "upstream_stream.sse").read_bytes()
    events, _, complete = decode(raw, [])
    assert complete
    assert "".join(e.text for k, e in events if k == "TextDelta") == '{"ok": true}'
    assert [e.reason for k, e in events if k == "StreamFinish"] == ["stop"]
    assert not any(k.startswith("ToolCall") for k, _ in events)


# ====================================================== encoder and the SDK


def sdk_client(payload: bytes, status: int = 200, content_type: str = "text/event-stream") -> anthropic.Anthropic:
    def respond(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": content_type}, content=payload)

    return anthropic.Anthropic(
        api_key="client-key", base_url="http://sidecar.test", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(respond)),
    )


def encode(events: list[n.Event]) -> bytes:
    enc = ams.StreamEncoder(alias="assistant", request=None)
    out = enc.start()
    for ev in events:
        out += enc.encode(ev)
    return out + enc.finish()


MIXED = [
    n.StreamStart("chatcmpl-1", "upstream-model"),
    n.ThinkingDelta("let me think"),  # a foreign thought: shown, never signed
    n.ThinkingDelta(" more", None, origin=amw.PROTOCOL),
    n.ThinkingDelta(signature=SIG, origin=amw.PROTOCOL),
    n.TextDelta("Calling tools."),
    n.ToolCallStart(0, "call_a", "get_weather"),
    n.ToolCallDelta(0, '{"city":'),
    n.ToolCallDelta(0, '"Paris"}'),
    n.ToolCallStart(1, "call_b", "get_time"),
    n.ToolCallDelta(1, '{"city":"Paris"}'),
    n.StreamFinish("stop"),  # Gemini says STOP after function calls
    n.StreamUsage(n.Usage(input_tokens=1200, output_tokens=40, cached_input_tokens=1000, cache_creation_tokens=50, reasoning_tokens=10)),
]


def test_encoder_stream_accumulates_in_the_official_sdk() -> None:
    payload = encode(MIXED)
    with sdk_client(payload).messages.stream(model="assistant", max_tokens=100, messages=[{"role": "user", "content": "x"}]) as s:
        events = [e.type for e in s]
        final = s.get_final_message()
    assert events.count("content_block_start") == 4 and events.count("content_block_stop") == 4
    thinking, text, weather, time = final.content
    assert thinking.type == "thinking" and thinking.thinking == "let me think more" and thinking.signature == SIG
    assert text.type == "text" and text.text == "Calling tools."
    assert weather.type == "tool_use" and weather.input == {"city": "Paris"} and weather.id == "call_a"
    assert time.type == "tool_use" and time.name == "get_time"
    assert final.stop_reason == "tool_use" and final.id == "msg_chatcmpl-1" and final.model == "upstream-model"
    assert final.usage.input_tokens == 150 and final.usage.cache_read_input_tokens == 1000
    assert final.usage.cache_creation_input_tokens == 50 and final.usage.output_tokens == 40


def test_encoder_block_indices_and_sequence() -> None:
    d = SSEDecoder()
    frames = [(e.event, json.loads(e.data)) for e in d.feed(encode(MIXED))]
    names = [f[0] for f in frames]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in frames)
    open_block = None
    for name, data in frames:
        if name == "content_block_start":
            assert open_block is None, "a block opened before the previous one closed"
            open_block = data["index"]
        elif name == "content_block_delta":
            assert data["index"] == open_block
        elif name == "content_block_stop":
            assert data["index"] == open_block
            open_block = None
    assert [d["index"] for n_, d in frames if n_ == "content_block_start"] == [0, 1, 2, 3]


def test_encoder_blanks_signatures_it_cannot_vouch_for() -> None:
    payload = encode([n.StreamStart("x", "m"), n.ThinkingDelta("t", signature="gemini-sig"), n.ThinkingDelta(redacted="enc"),
                      n.TextDelta("ok"), n.StreamFinish("stop", stop_sequence="END")])
    final = sdk_client(payload).messages.create(model="a", max_tokens=1, messages=[{"role": "user", "content": "x"}], stream=True)
    frames = [e.model_dump() for e in final]
    starts = [f["content_block"] for f in frames if f["type"] == "content_block_start"]
    assert starts == [{"type": "thinking", "thinking": "", "signature": ""}, {"type": "text", "text": "", "citations": None}]
    assert not any(f["type"] == "content_block_delta" and f["delta"]["type"] == "signature_delta" for f in frames)
    delta = next(f for f in frames if f["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "stop_sequence" and delta["delta"]["stop_sequence"] == "END"


def test_error_event_shape_and_the_sdk_raises_it() -> None:
    enc = ams.StreamEncoder(alias="a", request=None)
    head = enc.encode(n.StreamStart("x", "m")) + enc.encode(n.TextDelta("partial"))
    err = enc.error(529, "overloaded", "the upstream is overloaded")
    d = SSEDecoder()
    (frame,) = d.feed(err)
    assert frame.event == "error" and err.endswith(b"\n\n")
    assert json.loads(frame.data) == {"type": "error", "error": {"type": "overloaded_error", "message": "the upstream is overloaded"}}
    assert b"message_stop" not in err and b"message_delta" not in err
    with pytest.raises(anthropic.APIStatusError) as info:
        for _ in sdk_client(head + err).messages.create(model="a", max_tokens=1, messages=[{"role": "user", "content": "x"}], stream=True):
            pass
    assert info.value.body["error"]["type"] == "overloaded_error"
    # an unknown kind still renders a well-formed event
    assert b'"api_error"' in ams.StreamEncoder(alias="a", request=None).error(502, "no-such-kind", "m")


def test_render_response_validates_as_an_sdk_message() -> None:
    resp = n.Response(
        id="chatcmpl-9", model="upstream-model",
        choices=[n.Choice([n.Thinking("why", origin="openai-chat"), n.Text("It is "), n.Text("18C."),
                           n.ToolCall("call_1", "f", "not json")], "tool_calls")],
        usage=n.Usage(input_tokens=30, output_tokens=5, cached_input_tokens=20),
    )
    body_ = ami.render_response(resp, alias="assistant")
    msg = anthropic.types.Message.model_validate(body_)
    assert [b.type for b in msg.content] == ["thinking", "text", "text", "tool_use"]
    assert msg.content[0].signature == "" and msg.content[3].input == {"_raw": "not json"}
    assert msg.stop_reason == "tool_use" and msg.usage.input_tokens == 10 and msg.usage.cache_read_input_tokens == 20
    sdk = sdk_client(orjson.dumps(body_), content_type="application/json")
    assert sdk.messages.create(model="a", max_tokens=1, messages=[{"role": "user", "content": "x"}]).id == "msg_chatcmpl-9"


# ============================================================== count_tokens


def test_count_tokens_call_per_tier_protocol() -> None:
    from switchyard.sidecar.translate import gemini, openai_chat

    raw = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}], "system": "s"}
    call = ame.count_call(tier(), body=raw, client_headers={"anthropic-beta": "token-counting-2024-11-01"})
    assert call.url == "https://api.anthropic.com/v1/messages/count_tokens"
    assert orjson.loads(call.body or b"") == {**raw, "model": "claude-tier-model"}
    assert call.headers["anthropic-beta"] == "token-counting-2024-11-01" and call.headers["x-api-key"] == "sk-tier-key"
    assert openai_chat.ADAPTER.count_call(tier("openai-chat"), request=ami.count_request(raw)) is None, "no count endpoint"
    g = gemini.ADAPTER.count_call(tier("gemini"), request=ami.count_request(raw))
    assert g is not None
    assert g.url == "https://generativelanguage.googleapis.com/v1beta/models/claude-tier-model:countTokens"
    assert g.headers["x-goog-api-key"] == "sk-tier-key" and "anthropic-beta" not in g.headers
    inner = orjson.loads(g.body or b"")["generateContentRequest"]
    assert inner["model"] == "models/claude-tier-model" and inner["contents"][0]["parts"] == [{"text": "hi"}]
    assert inner["systemInstruction"]["parts"] == [{"text": "s"}]
    assert ami.render_count(gemini.read_count(b'{"totalTokens": 31}')[0]) == {"input_tokens": 31}


# ============================================== the real routes, on loopback


class FakeUpstream:
    """Records what reached it; answers like the Anthropic or OpenAI API."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def _record(self, request: web.Request) -> dict[str, Any]:
        data = await request.json()
        self.seen.append((request.path, dict(request.headers), data))
        return data

    async def messages(self, request: web.Request) -> web.StreamResponse:
        data = await self._record(request)
        if data["model"] == "busy-model":
            return web.json_response({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, status=529)
        if data.get("stream"):
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(0, len(FULL_STREAM), 97):  # arbitrary chunking
                await resp.write(FULL_STREAM[i : i + 97])
            return resp
        return web.json_response({
            "id": "msg_up", "type": "message", "role": "assistant", "model": "claude-tier-model",
            "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 1},
        })

    async def count(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"input_tokens": 42})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        chunks = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\": 1}"}}]}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}},
        ]
        for c in chunks:
            await resp.write(b"data: " + orjson.dumps({"id": "chatcmpl-x", "model": "gpt", **c}) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp


@pytest.fixture
async def gateway() -> Any:
    from switchyard.sidecar.app import build_api_app
    from switchyard.sidecar.state import Runtime

    fake = FakeUpstream()
    upstream = TestServer(fake.app())
    await upstream.start_server()
    base = str(upstream.make_url("")).rstrip("/")

    def t(protocol: str) -> CompiledTier:
        return tier(protocol).model_copy(update={"base_url": base + ("/v1" if protocol == "openai-chat" else "")})

    rt = Runtime()
    rt.install(CompiledConfig(bindings=[
        CompiledBinding(name="claude", aliases=["claude"], tiers=[t("anthropic-messages")]),
        CompiledBinding(name="gpt", aliases=["gpt"], tiers=[t("openai-chat")]),
        CompiledBinding(name="busy", aliases=["busy"], tiers=[t("anthropic-messages").model_copy(update={"model": "busy-model"})]),
    ]).with_version())
    sidecar = TestServer(build_api_app(rt))
    await sidecar.start_server()
    client = anthropic.AsyncAnthropic(api_key="client-key", base_url=str(sidecar.make_url("")).rstrip("/"), max_retries=0)
    yield client, fake
    await client.close()
    await sidecar.close()
    await rt.upstreams.close()
    await upstream.close()


async def test_messages_route_passthrough_keeps_beta_and_unknown_fields(gateway: Any) -> None:
    client, fake = gateway
    msg = await client.beta.messages.create(
        model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
        betas=["context-management-2025-06-27"], extra_body={"future_field": {"x": 1}},
    )
    assert msg.content[0].text == "hello"
    path, headers, sent = fake.seen[-1]
    assert path == "/v1/messages" and sent["model"] == "claude-tier-model" and sent["future_field"] == {"x": 1}
    assert headers["anthropic-beta"] == "context-management-2025-06-27"
    assert headers["x-api-key"] == "sk-tier-key"  # never the client's key


async def test_messages_route_cross_protocol_stream_in_the_sdk(gateway: Any) -> None:
    client, fake = gateway
    async with client.messages.stream(
        model="gpt", max_tokens=10, messages=[{"role": "user", "content": "call f"}],
        tools=[{"name": "f", "input_schema": {"type": "object"}}],
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].input == {"a": 1}
    assert final.usage.input_tokens == 9 and final.usage.output_tokens == 4
    assert fake.seen[-1][0] == "/v1/chat/completions"


async def test_count_tokens_route(gateway: Any) -> None:
    client, fake = gateway
    counted = await client.messages.count_tokens(model="claude", messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens == 42
    assert fake.seen[-1][0] == "/v1/messages/count_tokens" and fake.seen[-1][2]["model"] == "claude-tier-model"
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.count_tokens(model="gpt", messages=[{"role": "user", "content": "hi"}])
    assert "openai-chat" in info.value.message and "no token-counting endpoint" in info.value.message
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert all(path != "/v1/chat/completions" for path, _, _ in fake.seen), "no prompt sent to a generation endpoint"


async def test_messages_route_streams_anthropic_bytes_through(gateway: Any) -> None:
    client, fake = gateway
    response = await client.beta.messages.with_raw_response.create(
        model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True,
    )
    assert response.http_response.headers["x-switchyard-tier"] == "0"
    raw = await response.http_response.aread()
    assert raw == FULL_STREAM  # same protocol: the upstream's bytes, unchanged
    async with client.messages.stream(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "redacted_thinking", "text", "tool_use"]
    assert final.content[3].input == {"city": "Lyon"} and final.stop_reason == "tool_use"


async def test_upstream_overload_reaches_the_client_in_anthropic_shape(gateway: Any) -> None:
    client, _ = gateway
    with pytest.raises(anthropic.APIStatusError) as info:
        await client.messages.create(model="busy", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 529
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "overloaded_error"


# ============================================== adaptive thinking on budget-only models


@pytest.mark.parametrize("effort", [None, "low", "high"])
def test_adaptive_thinking_becomes_a_budget_where_the_profile_says_budget(effort: str | None) -> None:
    """Issue 17, defect 5: Claude Code sends thinking {type: adaptive}; it went unchanged to
    models whose profile says budget thinking, which refuse it with a 400."""
    from switchyard.sidecar.translate.common import effort_to_budget

    raw = body(max_tokens=64000, thinking={"type": "adaptive"}, **({"output_config": {"effort": effort}} if effort else {}))
    want = effort_to_budget(effort or "medium")
    notes: list[tuple[str, str]] = []
    out = ami.prepare_passthrough(raw, tier(reasoning="budget"), {}, notes)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": want}
    assert "effort" not in out.get("output_config", {})
    assert ("reasoning", f"map(budget {want})") in notes
    assert raw["thinking"] == {"type": "adaptive"}, "the client's body is not mutated"
    built = ame.build_body(ami.parse_request(raw), tier(reasoning="budget"))
    assert built["thinking"] == {"type": "enabled", "budget_tokens": want}
    # where the profile says effort (or says nothing), adaptive stays adaptive
    assert ami.prepare_passthrough(raw, tier(reasoning="effort"), {}, [])["thinking"] == {"type": "adaptive"}
    assert ami.prepare_passthrough(raw, tier(), {}, [])["thinking"] == {"type": "adaptive"}
    assert ame.build_body(ami.parse_request(raw), tier(reasoning="effort"))["thinking"] == {"type": "adaptive"}


def test_structured_output_with_reasoning_uses_the_native_format_where_the_model_has_it() -> None:
    """Issue 17, defect 6: structured output plus reasoning always went out as a forced tool,
    which turns thinking off (reported reasoning=strip), although builtin-anthropic says
    native structured output."""
    from switchyard.sidecar.translate import openai_chat

    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    req = openai_chat.ADAPTER.parse_request({
        "model": "a", "reasoning_effort": "high", "max_completion_tokens": 4000,
        "messages": [{"role": "user", "content": "Answer in JSON."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}},
    })
    call = ame.build_call(req, tier(reasoning="effort", structuredOutput=True))
    sent = orjson.loads(call.body or b"")
    assert sent["output_config"]["format"] == {"type": "json_schema", "schema": schema}
    assert "tools" not in sent and "tool_choice" not in sent
    assert sent["thinking"] == {"type": "adaptive"} and ("reasoning", "strip") not in call.notes
    # a model without native structured output still gets the forced tool (thinking off, said so)
    legacy = ame.build_call(req, tier(reasoning="budget", structuredOutput=False))
    body = orjson.loads(legacy.body or b"")
    assert body["tool_choice"]["name"] == amw.FORMAT_TOOL and ("reasoning", "strip") in legacy.notes
