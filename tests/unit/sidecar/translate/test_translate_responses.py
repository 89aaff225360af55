"""The OpenAI Responses ingress adapter (``translate/openai_responses/``).

Four layers, each checked against something nobody here wrote:

- parsing: every input item kind into the neutral form; what cannot be translated is
  an extra (reported as ``unknownFields``) or a clear 400 naming the field;
- rendering: ``response`` objects validated against the official OpenAPI spec's
  ``Response`` schema (``$ref``s resolved) and parsed by the ``openai`` SDK's types;
- streaming: every event validated against its spec schema and the SDK's
  ``ResponseStreamEvent`` union, sequence numbers counted, and the whole stream fed to
  the SDK's own stream accumulator;
- end to end: the official ``openai`` SDK (``responses.create``, ``create(stream=True)``,
  ``responses.stream``) against a real sidecar whose only tier is an emulated OpenAI
  Chat Completions upstream, including a Codex-style function-calling round trip.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from aiohttp import web
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from switchyard.api.manifests import ResourceSet
from switchyard.api.models import AssistantBinding, ModelSource
from switchyard.compiler import compile_config
from switchyard.sidecar.http import routes
from switchyard.sidecar.app import Listen, Sidecar
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate import openai_responses as R
from switchyard.sidecar.translate.openai_responses import _wire as Rw
from switchyard.sidecar.translate.openai_responses import ingress as Ri
from openapi_spec import assert_openapi, schemas
from switchyard.sidecar.translate.base import RequestError, adapter_for
from switchyard.sidecar.translate.sse import SSEDecoder

# ===================================================================== spec helpers


def _spec() -> dict[str, Any]:
    return {"components": {"schemas": schemas()}}


def assert_valid(schema: str, obj: Any) -> None:
    assert_openapi(schema, obj)


@functools.cache
def _event_schemas() -> dict[str, str]:
    """Stream event type -> its schema name, from the spec's ResponseStreamEvent union."""
    schemas = _spec()["components"]["schemas"]
    out = {}
    for member in schemas["ResponseStreamEvent"]["anyOf"]:
        name = member["$ref"].rsplit("/", 1)[1]
        out[schemas[name]["properties"]["type"]["enum"][0]] = name
    return out


_SDK_EVENT = TypeAdapter(ResponseStreamEvent)


def sse(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    d = SSEDecoder()
    events = [(e.event, json.loads(e.data)) for e in d.feed(raw)]
    d.flush()
    assert not d.truncated
    return events


def check_stream(raw: bytes) -> list[dict[str, Any]]:
    """Validate a Responses SSE stream every way we can; return the event bodies."""
    events = sse(raw)
    assert events, "a stream with zero events"
    bodies = []
    for i, (name, body) in enumerate(events):
        assert name == body["type"], "the SSE event name must repeat the data's type"
        assert body["sequence_number"] == i, "sequence numbers count from 0 without gaps"
        assert_valid(_event_schemas()[body["type"]], body)
        _SDK_EVENT.validate_python(body)
        bodies.append(body)
    assert bodies[0]["type"] == "response.created"
    assert bodies[1]["type"] == "response.in_progress"
    ids = {b["response"]["id"] for b in bodies if "response" in b}
    assert len(ids) == 1, "one response id for the whole stream"
    # The SDK's own accumulator (what client.responses.stream() runs) must accept it.
    from openai.lib.streaming.responses._responses import ResponseStreamState

    state: Any = ResponseStreamState(input_tools=openai.omit, text_format=openai.omit)
    for body in bodies:
        state.handle_event(_SDK_EVENT.validate_python(body))
    return bodies


def encode_all(events: list[n.Event], request: n.Request | None = None, *, error: tuple[int, str, str] | None = None) -> bytes:
    enc = R.ADAPTER.stream_encoder(alias="alias", request=request)
    out = enc.start()
    for ev in events:
        out += enc.encode(ev)
    return out + (enc.error(*error) if error else enc.finish())


def render(resp: n.Response, request: n.Request | None = None) -> dict[str, Any]:
    body = Ri.render_response(resp, alias="alias", request=request)
    assert_valid("Response", body)
    Response.model_validate(body)
    return body


# ========================================================================= parsing


def parse(body: dict[str, Any]) -> n.Request:
    return Ri.parse_request({"model": "alias", **body})


def test_string_input_and_instructions() -> None:
    req = parse({"input": "hi", "instructions": "be brief", "max_output_tokens": 50, "temperature": 0.5, "top_p": 0.9})
    assert req.messages == [n.Message("user", [n.Text("hi")])]
    assert req.system == [n.Text("be brief")]
    assert (req.max_tokens, req.temperature, req.top_p) == (50, 0.5, 0.9)
    assert req.origin == "openai-responses" and req.extras == {}


def test_message_items_every_role_and_content_kind() -> None:
    req = parse(
        {
            "input": [
                {"type": "message", "role": "system", "content": "sys"},
                {"role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
                        {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "auto"},
                        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
                        {"type": "input_file", "file_url": "https://x/b.pdf"},
                    ],
                },
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "seen", "annotations": []}]},
                {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            ]
        }
    )
    assert req.system == [n.Text("sys"), n.Text("dev")]
    user, assistant = req.messages
    assert user.parts == [
        n.Text("look"),
        n.Image(url="https://x/cat.png", detail="low"),
        n.Image(data="iVBO", media_type="image/png", detail="auto"),
        n.Document(data="JVBE", media_type="application/pdf", title="a.pdf"),
        n.Document(url="https://x/b.pdf"),
    ]
    assert assistant == n.Message("assistant", [n.Text("seen"), n.Text("no")]), "consecutive assistant items form one turn"
    assert Ri.features_used({"model": "m", "input": [{"role": "developer", "content": "x"}, {"role": "user", "content": [{"type": "input_image", "image_url": "https://x"}, {"type": "input_file", "file_url": "https://y"}]}]}) == {
        "systemPrompt": True,
        "vision": True,
        "documents": True,
    }


def test_function_call_round_trip_items() -> None:
    req = parse(
        {
            "input": [
                {"role": "user", "content": "weather?"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "checking"}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}', "status": "completed"},
                {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": ""},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "noon"}, {"type": "input_image", "image_url": "https://x/clock.png"}]},
                {"role": "user", "content": "thanks"},
            ]
        }
    )
    assert [m.role for m in req.messages] == ["user", "assistant", "user", "user"]
    assert req.messages[1].parts == [
        n.Text("checking"),
        n.ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
        n.ToolCall("call_2", "get_time", "{}"),
    ]
    assert req.messages[2].parts == [
        n.ToolResult("call_1", [n.Text("18C")], name="get_weather"),
        n.ToolResult("call_2", [n.Text("noon"), n.Image(url="https://x/clock.png")], name="get_time"),
    ], "tool outputs of one turn travel together, named after their call"


def test_reasoning_items_are_thinking_other_protocols_drop() -> None:
    req = parse(
        {
            "input": [
                {"role": "user", "content": "q"},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "a"}, {"type": "summary_text", "text": "b"}], "encrypted_content": "gAAAopaque"},
                {"type": "reasoning", "id": "rs_2", "summary": [], "content": [{"type": "reasoning_text", "text": "raw"}]},
            ]
        }
    )
    assert req.messages[1].parts == [
        n.Thinking(text="a\n\nb", redacted="gAAAopaque", origin="openai-responses"),
        n.Thinking(text="raw", origin="openai-responses"),
    ]


def test_signed_thinking_round_trips_through_encrypted_content() -> None:
    """A thinking tier's signature goes out in encrypted_content and comes back intact."""
    out = render(n.Response("x", "m", [n.Choice([n.Thinking("step", signature="sig==", origin="anthropic-messages"), n.Text("ok")], "stop")]))
    item = out["output"][0]
    assert item["type"] == "reasoning" and item["encrypted_content"].startswith(Rw.BLOB_PREFIX)
    back = parse({"input": [{"role": "user", "content": "q"}, item, out["output"][1]]})
    assert back.messages[1].parts[0] == n.Thinking(text="step", signature="sig==", origin="anthropic-messages")
    # a tampered blob is opaque reasoning of this protocol, never a forged origin
    bad = parse({"input": [{"role": "user", "content": "q"}, {**item, "encrypted_content": Rw.BLOB_PREFIX + "%%%"}]})
    assert bad.messages[1].parts[0].origin == "openai-responses"


def test_tools_hosted_tools_are_reported_extras() -> None:
    body = {
        "input": "x",
        "tools": [
            {"type": "function", "name": "shell", "description": "run", "parameters": {"type": "object"}, "strict": False},
            {"type": "web_search"},
            {"type": "file_search", "vector_store_ids": ["vs_1"]},
            {"type": "local_shell"},
            {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
        ],
        "tool_choice": "required",
        "parallel_tool_calls": True,
    }
    req = parse(body)
    assert req.tools == [n.Tool("shell", "run", {"type": "object"}, False)]
    assert req.tool_choice == n.ToolChoice("required") and req.parallel_tool_calls is True
    assert sorted(req.extras) == ["tools.custom", "tools.file_search", "tools.local_shell", "tools.web_search"]
    assert Ri.features_used({"model": "m", **body}) == {"tools": True, "parallelToolCalls": True}
    assert Ri.features_used({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}) == {}, "hosted tools are not function calling"


@pytest.mark.parametrize(
    ("choice", "neutral", "extras"),
    [
        ("auto", n.ToolChoice("auto"), []),
        ("none", n.ToolChoice("none"), []),
        ({"type": "function", "name": "f"}, n.ToolChoice("tool", "f"), []),
        ({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "f"}]}, n.ToolChoice("required"), ["tool_choice.allowed_tools"]),
        ({"type": "web_search_preview"}, None, ["tool_choice"]),
    ],
)
def test_tool_choice(choice: Any, neutral: n.ToolChoice | None, extras: list[str]) -> None:
    req = parse({"input": "x", "tools": [{"type": "function", "name": "f"}], "tool_choice": choice})
    assert req.tool_choice == neutral
    assert sorted(req.extras) == extras


@pytest.mark.parametrize(
    ("reasoning", "neutral"),
    [
        ({"effort": "medium", "summary": "auto"}, n.Reasoning(effort="medium", summary=True)),
        ({"effort": "xhigh"}, n.Reasoning(effort="high")),
        ({"effort": "minimal"}, n.Reasoning(effort="minimal")),
        ({"effort": "none"}, n.Reasoning(enabled=False)),
        ({"summary": "detailed"}, n.Reasoning(summary=True)),
    ],
)
def test_reasoning_controls(reasoning: dict[str, Any], neutral: n.Reasoning) -> None:
    assert parse({"input": "x", "reasoning": reasoning}).reasoning == neutral
    used = Ri.features_used({"model": "m", "input": "x", "reasoning": reasoning})
    assert used.get("reasoning", False) is (neutral.enabled)


def test_text_format_is_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = parse({"input": "x", "text": {"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}, "verbosity": "low"}})
    assert req.response_format == n.ResponseFormat("json_schema", schema, "out", True)
    assert req.extras == {"text.verbosity": "low"}, "verbosity has no neutral meaning: reported"
    assert parse({"input": "x", "text": {"format": {"type": "json_object"}}}).response_format == n.ResponseFormat("json_object")
    assert parse({"input": "x", "text": {"format": {"type": "text"}}}).response_format is None
    assert Ri.features_used({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "o", "schema": {}}}}) == {"structuredOutput": True}
    assert Ri.features_used({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}) == {"jsonMode": True}


def test_identity_metadata_and_stream() -> None:
    req = parse({"input": "x", "user": "u1", "metadata": {"k": "v"}, "stream": True})
    assert (req.user, req.metadata, req.stream, req.stream_usage) == ("u1", {"k": "v"}, True, True)
    assert parse({"input": "x", "user": "u1", "safety_identifier": "s1"}).user == "s1"
    assert Ri.request_streams({"stream": True}) and not Ri.request_streams({"stream": "yes"})
    assert Ri.request_model({"model": "a"}) == "a" and Ri.request_model({}) is None
    assert Ri.features_used({"model": "m", "input": "x", "stream": True, "max_output_tokens": 99}) == {"streaming": True, "maxOutputTokens": 99}


def test_extras_are_exactly_what_cannot_be_translated() -> None:
    honoured = {"store": False, "truncation": "disabled", "service_tier": "auto", "include": ["reasoning.encrypted_content"], "background": False, "stream_options": {"include_obfuscation": False}}
    assert parse({"input": "x", **honoured}).extras == {}
    assert parse({"input": "x", "store": True}).extras == {}, "store is honoured: the sidecar keeps responses"
    req = parse(
        {
            "input": "x",
            "truncation": "auto",
            "service_tier": "flex",
            "include": ["reasoning.encrypted_content", "message.output_text.logprobs"],
            "prompt_cache_key": "thread-1",
            "client_metadata": {"originator": "codex"},
            "top_logprobs": 3,
            "max_tool_calls": 4,
            "some_future_field": 1,
        }
    )
    assert req.extras == {
        "truncation": "auto",
        "service_tier": "flex",
        "include": ["message.output_text.logprobs"],
        "prompt_cache_key": "thread-1",
        "client_metadata": {"originator": "codex"},
        "top_logprobs": 3,
        "max_tool_calls": 4,
        "some_future_field": 1,
    }


def test_codex_request_reports_only_what_it_loses() -> None:
    """The request Codex CLI sends (real-clients.md): streamed, store false, hosted web
    search, encrypted reasoning, prompt_cache_key, client_metadata."""
    body = {
        "model": "codex-alias",
        "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix the bug"}]},
        ],
        "tools": [
            {"type": "function", "name": "shell", "description": "Runs a shell command", "strict": False, "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}, "required": ["command"], "additionalProperties": False}},
            {"type": "function", "name": "update_plan", "description": "plan", "strict": False, "parameters": {"type": "object", "properties": {}}},
            {"type": "web_search"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019a-thread",
        "client_metadata": {"x-codex-installation-id": "abc"},
    }
    req = Ri.parse_request(body)
    assert sorted(req.extras) == ["client_metadata", "prompt_cache_key", "tools.web_search"]
    assert [t.name for t in req.tools] == ["shell", "update_plan"]
    assert [m.role for m in req.messages] == ["user", "user"]
    assert req.system == [n.Text("You are Codex."), n.Text("<permissions>")]


@pytest.mark.parametrize(
    ("field_", "value"),
    [("conversation", "conv_1"), ("prompt", {"id": "pmpt_1"}), ("background", True)],  # previous_response_id: the sidecar's store
)
def test_server_side_state_is_refused_naming_the_field(field_: str, value: Any) -> None:
    with pytest.raises(RequestError) as err:
        parse({"input": "x", field_: value})
    assert err.value.param == field_
    assert field_ in err.value.message and "stored" in err.value.message


def test_item_reference_and_uploaded_files_are_refused() -> None:
    with pytest.raises(RequestError, match="item_reference"):
        parse({"input": [{"type": "item_reference", "id": "msg_1"}]})
    with pytest.raises(RequestError, match="file_id"):
        parse({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1", "detail": "auto"}]}]})
    with pytest.raises(RequestError, match="file_id"):
        parse({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]})


def test_items_only_hosted_tools_make_are_reported_and_left_out() -> None:
    req = parse({"input": [{"role": "user", "content": "q"}, {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}}]})
    assert len(req.messages) == 1
    assert list(req.extras) == ["input.web_search_call"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": [{"type": "message", "role": "tool", "content": "x"}]}, "input"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input"),
        ({"model": "m", "input": [{"role": "developer", "content": [{"type": "input_image", "image_url": "https://x"}]}]}, "input"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools"),
        ({"model": "m", "input": "x", "reasoning": {"effort": "max"}}, "reasoning"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}, "text"),
        ({"model": "m", "input": "x", "max_output_tokens": "many"}, "max_output_tokens"),
    ],
)
def test_invalid_bodies_name_their_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as err:
        Ri.parse_request(body)
    assert err.value.param is not None and err.value.param.split("[")[0] == param


def test_parse_never_mutates_its_input() -> None:
    body = {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "x"}]}], "tools": [{"type": "web_search"}], "store": True}
    snapshot = json.dumps(body, sort_keys=True)
    Ri.parse_request(body)
    assert json.dumps(body, sort_keys=True) == snapshot


def test_the_adapter_has_both_faces() -> None:
    adapter = adapter_for("openai-responses")
    assert adapter is R.ADAPTER and adapter.protocol == "openai-responses"
    assert adapter.count_call(None) is None  # no token-count endpoint
    assert adapter.count_request is None and adapter.render_count is None


def test_routes_are_in_the_one_table_once() -> None:
    paths = [(r.method, r.path) for r in routes.api_routes() if "responses" in r.path]
    assert sorted(paths) == [
        ("DELETE", "/v1/responses/{response_id}"),
        ("GET", "/v1/responses/{response_id}"),
        ("GET", "/v1/responses/{response_id}/input_items"),
        ("POST", "/responses"),
        ("POST", "/v1/responses"),
        ("POST", "/v1/responses/{response_id}/cancel"),
    ]


# ======================================================================= rendering


def test_render_text_with_usage() -> None:
    out = render(n.Response("chatcmpl-1", "up-model", [n.Choice([n.Text("Hel"), n.Text("lo")], "stop")], n.Usage(10, 3, cached_input_tokens=4, reasoning_tokens=1), created=1700000000))
    assert out["id"].startswith("resp_") and out["object"] == "response" and out["status"] == "completed"
    assert out["model"] == "up-model" and out["created_at"] == 1700000000
    [msg] = out["output"]
    assert msg["type"] == "message" and msg["role"] == "assistant" and msg["id"].startswith("msg_")
    assert msg["content"] == [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]
    assert out["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": 13,
    }
    assert Response.model_validate(out).output_text == "Hello"


def test_usage_is_always_present() -> None:
    """The Vercel AI SDK refuses a final response without usage: zero when unreported."""
    zero = {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0}
    assert render(n.Response("x", "m", [n.Choice([n.Text("hi")], "stop")]))["usage"] == zero
    events = check_stream(encode_all([n.TextDelta("hi"), n.StreamFinish("stop")]))
    assert events[-1]["response"]["usage"] == zero


def test_render_reasoning_text_and_calls_in_order() -> None:
    parts: list[n.Part] = [
        n.Thinking("think", origin="openai-chat"),
        n.Text("Let me call."),
        n.ToolCall("call_1", "f", '{"a":1}'),
        n.ToolCall("call_2", "g", ""),
    ]
    out = render(n.Response("x", "m", [n.Choice(parts, "tool_calls")]))
    assert [i["type"] for i in out["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert out["output"][0]["summary"] == [{"type": "summary_text", "text": "think"}]
    assert "encrypted_content" not in out["output"][0], "unsigned thinking has nothing to carry"
    calls = out["output"][2:]
    assert [(c["call_id"], c["name"], c["arguments"], c["status"]) for c in calls] == [("call_1", "f", '{"a":1}', "completed"), ("call_2", "g", "{}", "completed")]
    assert all(c["id"].startswith("fc_") for c in calls)


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_render_incomplete(finish: n.FinishReason, reason: str) -> None:
    out = render(n.Response("x", "m", [n.Choice([n.Text("cut")], finish)]))
    assert out["status"] == "incomplete" and out["incomplete_details"] == {"reason": reason}
    assert out["output"][-1]["status"] == "incomplete"
    assert "completed_at" not in out


def test_render_refusal() -> None:
    out = render(n.Response("x", "m", [n.Choice([n.Text("I can't help with that.")], "refusal")]))
    assert out["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]


def test_render_echoes_the_request_when_given() -> None:
    req = parse(
        {
            "input": "x",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
            "tool_choice": {"type": "function", "name": "f"},
            "parallel_tool_calls": False,
            "temperature": 0.3,
            "top_p": 0.8,
            "max_output_tokens": 100,
            "reasoning": {"effort": "low", "summary": "auto"},
            "text": {"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}, "strict": True}},
            "metadata": {"k": "v"},
            "user": "u",
        }
    )
    out = render(n.Response("x", "m", [n.Choice([n.Text("{}")], "stop")]), req)
    assert out["tools"] == [{"type": "function", "name": "f", "description": None, "parameters": {"type": "object"}, "strict": True}]
    assert out["tool_choice"] == {"type": "function", "name": "f"}
    assert (out["parallel_tool_calls"], out["temperature"], out["top_p"], out["max_output_tokens"]) == (False, 0.3, 0.8, 100)
    assert out["reasoning"] == {"effort": "low", "summary": "auto"}
    assert out["text"] == {"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}, "strict": True}}
    assert (out["metadata"], out["user"]) == ({"k": "v"}, "u")


# ======================================================================= streaming


def test_stream_text() -> None:
    events = check_stream(encode_all([n.StreamStart("up", "up-model"), n.TextDelta("Hel"), n.TextDelta(""), n.TextDelta("lo"), n.StreamFinish("stop"), n.StreamUsage(n.Usage(5, 2))]))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["model"] == "up-model"
    assert done["usage"]["total_tokens"] == 7
    assert done["output"][0]["content"][0]["text"] == "Hello"
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []


def test_stream_tool_calls() -> None:
    events = check_stream(
        encode_all(
            [
                n.StreamStart("up", "m"),
                n.TextDelta("Calling."),
                n.ToolCallStart(0, "call_a", "f"),
                n.ToolCallDelta(0, '{"x":'),
                n.ToolCallDelta(0, "1}"),
                n.ToolCallStart(1, "call_b", "g"),
                n.ToolCallDelta(1, "{}"),
                n.StreamFinish("tool_calls"),
            ]
        )
    )
    kinds = [(e["type"], e.get("output_index")) for e in events]
    assert kinds[2:] == [
        ("response.output_item.added", 0),
        ("response.content_part.added", 0),
        ("response.output_text.delta", 0),
        ("response.output_text.done", 0),
        ("response.content_part.done", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.function_call_arguments.delta", 1),
        ("response.function_call_arguments.delta", 1),
        ("response.function_call_arguments.done", 1),
        ("response.output_item.done", 1),
        ("response.output_item.added", 2),
        ("response.function_call_arguments.delta", 2),
        ("response.function_call_arguments.done", 2),
        ("response.output_item.done", 2),
        ("response.completed", None),
    ]
    added, done = events[8]["item"], events[12]["item"]
    assert added["id"] == done["id"] and added["status"] == "in_progress" and done["status"] == "completed"
    assert (done["call_id"], done["name"], done["arguments"]) == ("call_a", "f", '{"x":1}')
    assert events[11]["arguments"] == '{"x":1}' and events[11]["name"] == "f"
    final = events[-1]["response"]["output"]
    assert [o["type"] for o in final] == ["message", "function_call", "function_call"]


def test_stream_reasoning_summary_then_text() -> None:
    events = check_stream(
        encode_all(
            [
                n.StreamStart("up", "m"),
                n.ThinkingDelta("Let me "),
                n.ThinkingDelta("think."),
                n.ThinkingDelta(signature="sig"),
                n.ThinkingDelta(redacted="opaque"),
                n.TextDelta("Answer."),
                n.StreamFinish("stop"),
            ]
        )
    )
    types = [e["type"] for e in events]
    assert types[2:10] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",  # the redacted block: an item of its own
    ]
    first = events[8]["item"]
    assert first["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    assert first["encrypted_content"].startswith(Rw.BLOB_PREFIX)
    final = events[-1]["response"]["output"]
    assert [o["type"] for o in final] == ["reasoning", "reasoning", "message"]
    assert final[1]["summary"] == [] and final[1]["encrypted_content"].startswith(Rw.BLOB_PREFIX)


def test_stream_incomplete_on_length() -> None:
    events = check_stream(encode_all([n.StreamStart("up", "m"), n.TextDelta("cut sh"), n.StreamFinish("length"), n.StreamUsage(n.Usage(3, 16))]))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["item"]["status"] == "incomplete"
    assert not any(e["type"] == "response.completed" for e in events)


def test_stream_error_after_content_is_failed_never_completed() -> None:
    raw = encode_all([n.StreamStart("up", "m"), n.TextDelta("partial"), n.ToolCallStart(0, "c", "f"), n.ToolCallDelta(0, '{"a"')], error=(502, "upstream", "the upstream connection broke mid-stream"))
    events = check_stream(raw)
    last = events[-1]
    assert events[-2] == {"type": "error", "sequence_number": last["sequence_number"] - 1, "code": "server_error", "message": "the upstream connection broke mid-stream", "param": None}
    assert last["type"] == "response.failed"
    assert last["response"]["status"] == "failed"
    assert last["response"]["error"] == {"code": "server_error", "message": "the upstream connection broke mid-stream"}
    assert [o["status"] for o in last["response"]["output"]] == ["completed", "incomplete"], "the cut call is not passed off as finished"
    assert not any(e["type"] in ("response.completed", "response.incomplete") for e in events)
    assert not any(e["type"] == "response.output_item.done" and e["item"]["type"] == "function_call" for e in events)


def test_stream_rate_limit_error_code() -> None:
    events = check_stream(encode_all([n.TextDelta("x")], error=(429, "rate_limited", "slow down")))
    assert events[-1]["response"]["error"]["code"] == "rate_limit_exceeded"


def test_stream_without_stream_start_and_synthesized() -> None:
    """The pipeline's synthesized stream (a full answer re-chunked) streams the same."""
    from switchyard.sidecar.pipeline.attempt import synthesize_events

    answer = n.Response("x", "m", [n.Choice([n.Thinking("t"), n.Text("hi"), n.ToolCall("c1", "f", "{}")], "tool_calls")], n.Usage(1, 2))
    events = check_stream(encode_all(synthesize_events(answer)))
    assert [o["type"] for o in events[-1]["response"]["output"]] == ["reasoning", "message", "function_call"]
    events = check_stream(encode_all([n.TextDelta("no start event")]))
    assert events[-1]["response"]["model"] == "alias"


def test_stream_echoes_the_request() -> None:
    req = parse({"input": "x", "tools": [{"type": "function", "name": "f"}], "temperature": 0.1, "stream": True})
    events = check_stream(encode_all([n.TextDelta("x"), n.StreamFinish("stop")], req))
    for e in (events[0], events[-1]):
        assert e["response"]["temperature"] == 0.1
        assert [t["name"] for t in e["response"]["tools"]] == ["f"]


# ================================================================ end to end (SDK)


@dataclass
class Reply:
    """One scripted answer of the emulated Chat Completions upstream."""

    text: str = ""
    reasoning: str = ""
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, arguments)
    finish: str = "stop"
    usage: dict[str, Any] = field(default_factory=lambda: {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
    broken: bool = False  # stream: stop after the content, with no finish and no [DONE]

    def whole(self, model: str) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.reasoning:
            msg["reasoning_content"] = self.reasoning
        if self.calls:
            msg["tool_calls"] = [{"id": i, "type": "function", "function": {"name": nm, "arguments": a}} for i, nm, a in self.calls]
        return {"id": "chatcmpl-emu", "object": "chat.completion", "created": 1700000000, "model": model, "choices": [{"index": 0, "message": msg, "finish_reason": self.finish}], "usage": self.usage}

    def chunks(self, model: str) -> list[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"id": "chatcmpl-emu", "object": "chat.completion.chunk", "created": 1700000000, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        out = [chunk({"role": "assistant", "content": ""})]
        if self.reasoning:
            half = len(self.reasoning) // 2
            out += [chunk({"reasoning_content": self.reasoning[:half]}), chunk({"reasoning_content": self.reasoning[half:]})]
        if self.text:
            half = len(self.text) // 2
            out += [chunk({"content": self.text[:half]}), chunk({"content": self.text[half:]})]
        for k, (cid, name, args) in enumerate(self.calls):
            out.append(chunk({"tool_calls": [{"index": k, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}]}))
            out.append(chunk({"tool_calls": [{"index": k, "function": {"arguments": args}}]}))
        if self.broken:
            return out
        out.append(chunk({}, self.finish))
        out.append({"id": "chatcmpl-emu", "object": "chat.completion.chunk", "created": 1700000000, "model": model, "choices": [], "usage": self.usage})
        return out


class ChatUpstream:
    """A small OpenAI Chat Completions emulator: scripted replies, recorded requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.replies: list[Reply] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        reply = self.replies.pop(0)
        if not body.get("stream"):
            return web.json_response(reply.whole(body["model"]))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for c in reply.chunks(body["model"]):
            await resp.write(b"data: " + json.dumps(c).encode() + b"\n\n")
        if not reply.broken:
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


@dataclass
class Gateway:
    client: openai.AsyncOpenAI
    upstream: ChatUpstream


def _resources(upstream_url: str) -> ResourceSet:
    source = ModelSource.model_validate(
        {
            "apiVersion": "switchyard.dev/v1alpha1",
            "kind": "ModelSource",
            "metadata": {"name": "emu"},
            "spec": {"provider": "openai", "baseURL": f"{upstream_url}/v1", "credentialRef": {"env": "EMU_KEY"}, "defaultModel": "emu-model"},
        }
    )
    binding = AssistantBinding.model_validate(
        {
            "apiVersion": "switchyard.dev/v1alpha1",
            "kind": "AssistantBinding",
            "metadata": {"name": "codex"},
            "spec": {"aliases": ["codex-alias"], "primary": {"sourceRef": {"name": "emu"}, "model": "emu-model"}},
        }
    )
    return ResourceSet(sources=[source], bindings=[binding])


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    upstream = ChatUpstream()
    up_app = web.Application()
    up_app.router.add_post("/v1/chat/completions", upstream.handle)
    up_runner = web.AppRunner(up_app, access_log=None)
    await up_runner.setup()
    site = web.TCPSite(up_runner, "127.0.0.1", 0)
    await site.start()
    up_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    result = compile_config(_resources(f"http://127.0.0.1:{up_port}"), standalone=True, environ={"EMU_KEY": "sk-emu-secret"})
    assert all(t.resolvable for rep in result.reports.values() for t in rep.tiers)
    sidecar = Sidecar(listen=Listen(port=0, admin_port=0), drain_seconds=1.0)
    sidecar.load(result.config)
    api_port, _ = await sidecar.start()
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{api_port}/v1", api_key="sk-client", max_retries=0, timeout=20)
    try:
        yield Gateway(client, upstream)
    finally:
        await client.close()
        await sidecar.stop()
        await up_runner.cleanup()


async def test_e2e_create(gateway: Gateway) -> None:
    gateway.upstream.replies.append(Reply(text="Hello from chat.", usage={"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13, "prompt_tokens_details": {"cached_tokens": 3}}))
    raw = await gateway.client.responses.with_raw_response.create(model="codex-alias", instructions="Be brief.", input="Say hello", max_output_tokens=40, store=False)
    resp = raw.parse()
    assert isinstance(resp, Response)
    assert resp.status == "completed" and resp.output_text == "Hello from chat."
    assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.input_tokens_details.cached_tokens) == (9, 4, 3)
    assert_valid("Response", json.loads(raw.http_response.content))
    assert raw.headers["x-switchyard-binding"] == "codex" and raw.headers["x-switchyard-model"] == "emu-model"
    assert "x-switchyard-degraded" not in raw.headers, "store: false is honoured, not degraded"
    [sent] = gateway.upstream.requests
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    assert sent["model"] == "emu-model" and sent["max_completion_tokens"] == 40
    assert gateway.upstream.headers[0]["Authorization"] == "Bearer sk-emu-secret"


async def test_e2e_create_stream(gateway: Gateway) -> None:
    gateway.upstream.replies.append(Reply(text="Streaming works.", reasoning="Think first."))
    stream = await gateway.client.responses.create(model="codex-alias", input="go", stream=True, reasoning={"effort": "low", "summary": "auto"})
    events = [ev async for ev in stream]
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert (text, summary) == ("Streaming works.", "Think first.")
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "Streaming works." and final.usage is not None and final.usage.total_tokens == 18
    assert gateway.upstream.requests[0]["reasoning_effort"] == "low"


async def test_e2e_stream_helper(gateway: Gateway) -> None:
    gateway.upstream.replies.append(Reply(text="Via the helper."))
    async with gateway.client.responses.stream(model="codex-alias", input=[{"role": "user", "content": "hi"}]) as stream:
        deltas = [ev.delta async for ev in stream if ev.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == "Via the helper."
    assert final.output_text == "Via the helper." and final.status == "completed"


async def test_e2e_codex_function_call_round_trip(gateway: Gateway) -> None:
    """Two turns the way Codex runs them: streamed, store false, hosted web_search among
    the tools, output items collected from response.output_item.done and sent back
    with the function's output."""
    up = gateway.upstream
    up.replies.append(Reply(reasoning="Need to list files.", calls=[("call_ls", "shell", '{"command":["ls"]}')], finish="tool_calls"))
    up.replies.append(Reply(text="There are two files."))
    tools: list[Any] = [
        {"type": "function", "name": "shell", "description": "Runs a shell command", "strict": False, "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}, "required": ["command"]}},
        {"type": "web_search"},
    ]
    history: list[Any] = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sandbox: read-only"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "what is here?"}]},
    ]
    common: dict[str, Any] = dict(
        model="codex-alias",
        instructions="You are Codex.",
        tools=tools,
        tool_choice="auto",
        parallel_tool_calls=False,
        reasoning={"effort": "medium", "summary": "auto"},
        store=False,
        include=["reasoning.encrypted_content"],
        prompt_cache_key="thread-1",
        extra_body={"client_metadata": {"originator": "codex_exec"}},
    )

    raw = await gateway.client.responses.with_raw_response.create(input=history, stream=True, **common)
    assert raw.headers["x-switchyard-degraded"] == "unknownFields(client_metadata,prompt_cache_key,tools.web_search)=strip"
    stream = raw.parse()
    items = [ev.item.model_dump(exclude_none=True) async for ev in stream if ev.type == "response.output_item.done"]
    assert [i["type"] for i in items] == ["reasoning", "function_call"]
    call = items[1]
    assert (call["call_id"], call["name"], call["arguments"]) == ("call_ls", "shell", '{"command":["ls"]}')
    first = up.requests[0]
    assert [t["function"]["name"] for t in first["tools"]] == ["shell"]
    assert "client_metadata" not in first and "prompt_cache_key" not in first

    history += items + [{"type": "function_call_output", "call_id": call["call_id"], "output": "a.txt\nb.txt"}]
    stream2 = await gateway.client.responses.create(input=history, stream=True, **common)
    events = [ev async for ev in stream2]
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "There are two files."  # type: ignore[union-attr]
    second = up.requests[1]
    assert second["messages"] == [
        {"role": "system", "content": "You are Codex.\n\nsandbox: read-only"},
        {"role": "user", "content": "what is here?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_ls", "type": "function", "function": {"name": "shell", "arguments": '{"command":["ls"]}'}}]},
        {"role": "tool", "tool_call_id": "call_ls", "content": "a.txt\nb.txt"},
    ]


async def test_e2e_an_unknown_previous_response_id_is_a_clear_404(gateway: Gateway) -> None:
    """The sidecar keeps its own responses now (tests/integration/test_responses_state.py);
    an id it does not hold is a 404 saying so, and nothing reaches a tier."""
    with pytest.raises(openai.NotFoundError) as err:
        await gateway.client.responses.create(model="codex-alias", input="again", previous_response_id="resp_abc")
    assert err.value.param == "previous_response_id" and err.value.code == "previous_response_not_found"
    assert "full conversation" in err.value.message
    assert gateway.upstream.requests == [], "nothing reaches a tier"


async def test_e2e_stored_responses_are_a_clear_404(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        await gateway.client.responses.retrieve("resp_abc")
    assert "not stored" in err.value.message and err.value.code == "response_not_stored"


async def test_e2e_broken_stream_ends_with_response_failed(gateway: Gateway) -> None:
    gateway.upstream.replies.append(Reply(text="Half an answ", broken=True))
    stream = await gateway.client.responses.create(model="codex-alias", input="go", stream=True)
    events = [ev async for ev in stream]
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1].response.error is not None and events[-1].response.error.code == "server_error"  # type: ignore[union-attr]
    assert not any(e.type in ("response.completed", "response.incomplete") for e in events)
