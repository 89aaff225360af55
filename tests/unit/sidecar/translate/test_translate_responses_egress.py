"""The OpenAI Responses adapter's egress face: a tier whose protocol is ``openai-responses``.

Checked against something nobody here wrote where it can be: every body ``build_call``
makes (the golden cases' and this file's) validates against the official OpenAPI spec's
``CreateResponse`` schema; upstream answers and stream events used here are shaped as
the spec and OpenAI send them. Plus what the spec cannot say: what the live API refuses
(strict function tools by default, ``max_output_tokens`` below 16, reasoning item ids
with ``store: false``), the stream decoder's completeness rule, and the same-protocol
passthrough that keeps everything it does not know.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from openapi_spec import assert_openapi
from switchyard.sidecar.contract.config import CompiledProfile, CompiledTier
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import GuardedDecoder, RequestError, UpstreamFormatError, adapter_for
from switchyard.sidecar.translate.sse import SSEDecoder

R = adapter_for("openai-responses")
GOLDEN = Path(__file__).resolve().parents[3] / "golden"


def tier(features: dict[str, Any] | None = None, **kw: Any) -> CompiledTier:
    data: dict[str, Any] = {
        "index": 0, "source": "resp", "provider": "openai", "protocol": "openai-responses",
        "base_url": "https://api.openai.com/v1", "model": "gpt-5.4", "auth": "bearer", "credential": "sk-test",
        "profile": CompiledProfile(name="p", protocol="openai-responses", features=features or {}, on_unsupported={}),
    }
    data.update(kw)
    return CompiledTier(**data)


ITEM_SCHEMA = {"message": "EasyInputMessage", "function_call": "FunctionToolCall", "function_call_output": "FunctionCallOutputItemParam", "reasoning": "ReasoningItem"}


def assert_create_response(body: dict[str, Any]) -> None:
    """The spec's CreateResponse, each input item checked against its own schema, for two
    known gaps of the spec: its ``InputItem`` is a ``oneOf`` in which a user message with
    a content list matches two branches (``EasyInputMessage`` and ``InputMessage``), so
    no such message validates as a whole; and it marks a reasoning item's ``id``
    required, while the API takes reasoning items without one (Codex sends them so, with
    ``store: false``, where an id makes the API look the item up and answer 404): checked
    with a placeholder id."""
    items = body.get("input")
    if isinstance(items, list):
        for item in items:
            kind = item.get("type", "message")
            if kind == "reasoning":
                item = {"id": "rs_placeholder", **item}
            if kind in ITEM_SCHEMA:
                assert_openapi(ITEM_SCHEMA[kind], item)
        body = {**body, "input": "checked item by item"}
    assert_openapi("CreateResponse", body)


def body_of(req: n.Request, t: CompiledTier | None = None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    call = R.build_call(req, t or tier())
    assert call.url == "https://api.openai.com/v1/responses" and call.method == "POST"
    assert call.headers["Authorization"] == "Bearer sk-test"
    body = orjson.loads(call.body or b"")
    assert_create_response(body)
    return body, call.notes


def req(*messages: n.Message, **kw: Any) -> n.Request:
    return n.Request(model="alias", messages=list(messages), **kw)


def user(*parts: n.Part) -> n.Message:
    return n.Message("user", list(parts))


def assistant(*parts: n.Part) -> n.Message:
    return n.Message("assistant", list(parts))


# ===================================================================== build_call


@pytest.mark.parametrize("case", sorted(GOLDEN.glob("*__openai-responses/*")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_upstream_bodies_are_valid_create_response_requests(case: Path) -> None:
    assert_create_response(json.loads((case / "upstream_request.json").read_text()))


def test_conversation_items_in_order() -> None:
    r = req(
        user(n.Text("look"), n.Image(url="https://x/cat.png", detail="low"), n.Document(data="JVBER", media_type="application/pdf", title="a.pdf")),
        assistant(n.Text("Calling."), n.ToolCall("call_1", "grep", '{"q":"x"}'), n.ToolCall("call_2", "ls", "")),
        user(n.ToolResult("call_1", [n.Text("found")]), n.ToolResult("call_2", [n.Text("shot:"), n.Image(data="iVBOR", media_type="image/png")])),
        n.Message("system", [n.Text("Be brief from now on.")]),
        user(n.Text("and?")),
        system=[n.Text("You are terse."), n.Text("Really.")],
    )
    body, _ = body_of(r)
    assert body["instructions"] == "You are terse.\n\nReally."
    kinds = [(i["type"], i.get("role")) for i in body["input"]]
    assert kinds == [
        ("message", "user"), ("message", "assistant"), ("function_call", None), ("function_call", None),
        ("function_call_output", None), ("function_call_output", None), ("message", "system"), ("message", "user"),
    ]
    first = body["input"][0]["content"]
    assert first[1] == {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"}
    assert first[2] == {"type": "input_file", "file_data": "data:application/pdf;base64,JVBER", "filename": "a.pdf"}
    assert body["input"][3]["arguments"] == "{}"  # an empty argument text is no JSON
    assert body["input"][4]["output"] == "found"
    assert body["input"][5]["output"] == [
        {"type": "input_text", "text": "shot:"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "auto"},
    ]
    assert body["store"] is False and "stream" not in body and "include" not in body


def test_tools_are_not_strict_unless_asked() -> None:
    """Function tools default to strict on this API: a chat-style schema would be refused."""
    r = req(user(n.Text("x")), tools=[n.Tool("a", None, {"type": "object", "properties": {"q": {"type": "string"}}}), n.Tool("b", "B", None, True)],
            tool_choice=n.ToolChoice("tool", "b"), parallel_tool_calls=False)
    body, _ = body_of(r)
    assert body["tools"] == [
        {"type": "function", "name": "a", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}, "strict": False},
        {"type": "function", "name": "b", "parameters": {"type": "object", "properties": {}}, "strict": True, "description": "B"},
    ]
    assert body["tool_choice"] == {"type": "function", "name": "b"} and body["parallel_tool_calls"] is False


@pytest.mark.parametrize(("asked", "sent", "notes"), [(500, 500, []), (16, 16, []), (5, 16, [("maxOutputTokens", "map(16)")])])
def test_max_output_tokens_has_a_floor_of_16(asked: int, sent: int, notes: list[Any]) -> None:
    body, got = body_of(req(user(n.Text("x")), max_tokens=asked))
    assert body["max_output_tokens"] == sent and got == notes


def test_what_this_api_lacks_is_dropped_and_said() -> None:
    r = req(user(n.Text("x")), stop=["END"], n=2, seed=7, top_k=40, logprobs=True, temperature=3.5, top_p=0.5)
    body, notes = body_of(r)
    assert not {"stop", "n", "seed", "top_k", "logprobs"} & set(body)
    assert body["temperature"] == 2.0 and body["top_p"] == 0.5
    assert sorted(notes) == sorted([("stopSequences", "strip"), ("multipleChoices", "strip"), ("seed", "strip"), ("topK", "strip"), ("logprobs", "strip")])


@pytest.mark.parametrize(("reasoning", "expect"), [
    (n.Reasoning(effort="high"), {"effort": "high"}),
    (n.Reasoning(budget_tokens=20000, summary=True), {"effort": "high", "summary": "auto"}),
    (n.Reasoning(enabled=False), {"effort": "none"}),
])
def test_reasoning_controls(reasoning: n.Reasoning, expect: dict[str, Any]) -> None:
    body, _ = body_of(req(user(n.Text("x")), reasoning=reasoning))
    assert body["reasoning"] == expect
    assert ("include" in body) == reasoning.enabled


def test_encrypted_content_is_asked_for_when_the_model_reasons() -> None:
    body, _ = body_of(req(user(n.Text("x"))), tier({"reasoning": "effort"}))
    assert body["include"] == ["reasoning.encrypted_content"]
    body, _ = body_of(req(user(n.Text("x"))), tier({"reasoning": "none"}))
    assert "include" not in body  # models that do not reason refuse it


def test_reasoning_items_only_from_this_protocol_and_without_ids() -> None:
    r = req(
        user(n.Text("q")),
        assistant(
            n.Thinking("anthropic thought", signature="sig", origin="anthropic-messages"),
            n.Thinking(redacted="opaque-anthropic", origin="anthropic-messages"),
            n.Thinking("plain text thought", origin="openai-chat"),
            n.Thinking("summary", origin="openai-responses"),
            n.Thinking(redacted="gAAAA-enc", origin="openai-responses"),
            n.ToolCall("c", "f", "{}"),
        ),
        user(n.ToolResult("c", [n.Text("ok")])),
    )
    body, _ = body_of(r)
    reasoning = [i for i in body["input"] if i["type"] == "reasoning"]
    assert reasoning == [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "summary"}], "encrypted_content": "gAAAA-enc"}]
    assert body["include"] == ["reasoning.encrypted_content"]


def test_structured_output_and_json_mode() -> None:
    rf = n.ResponseFormat("json_schema", {"type": "object"}, "thing", True)
    body, _ = body_of(req(user(n.Text("x")), response_format=rf))
    assert body["text"] == {"format": {"type": "json_schema", "name": "thing", "schema": {"type": "object"}, "strict": True}}
    body, _ = body_of(req(user(n.Text("x")), response_format=n.ResponseFormat("json_object")))
    assert body["text"] == {"format": {"type": "json_object"}}


def test_a_responses_clients_extras_go_back_where_they_were() -> None:
    parsed = adapter_for("openai-responses").parse_request({
        "model": "alias", "input": "hi", "store": True, "prompt_cache_key": "k", "include": ["reasoning.encrypted_content", "web_search_call.action.sources"],
        "tools": [{"type": "web_search"}, {"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "text": {"verbosity": "low"}, "reasoning": {"effort": "low"}, "metadata": {"a": "b"}, "safety_identifier": "u1",
    })
    body, notes = body_of(parsed)
    # store is the sidecar's own on the neutral path (pipeline/conversation.py): the tier keeps nothing
    assert body["store"] is False and body["prompt_cache_key"] == "k"
    assert body["include"] == ["reasoning.encrypted_content", "web_search_call.action.sources"]
    assert [t["type"] for t in body["tools"]] == ["function", "web_search"]
    assert body["text"] == {"verbosity": "low"} and body["metadata"] == {"a": "b"} and body["safety_identifier"] == "u1"
    assert notes == []


def test_build_call_never_mutates_its_request() -> None:
    r = req(user(n.Text("x")), tools=[n.Tool("a")], extras={"tools.web_search": [{"type": "web_search"}]}, origin="openai-responses")
    before = repr(r)
    R.build_call(r, tier())
    R.build_call(r, tier())
    assert repr(r) == before


# ===================================================================== parse_response


def _resp(output: list[dict[str, Any]], status: str = "completed", **kw: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 1767225600, "status": status, "model": "gpt-5.4", "output": output, **kw}


def test_parse_text_calls_reasoning_and_usage() -> None:
    out = R.parse_response(_resp([
        {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "a"}, {"type": "summary_text", "text": "b"}], "encrypted_content": "ENC"},
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed", "content": [{"type": "output_text", "text": "Hi", "annotations": []}]},
        {"id": "fc_1", "type": "function_call", "call_id": "call_9", "name": "f", "arguments": '{"x":1}', "status": "completed"},
        {"id": "ws_1", "type": "web_search_call", "status": "completed"},
    ], usage={"input_tokens": 100, "input_tokens_details": {"cached_tokens": 80}, "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 20}, "total_tokens": 130}))
    (choice,) = out.choices
    assert choice.parts == [
        n.Thinking("a\n\nb", origin="openai-responses"),
        n.Thinking(redacted="ENC", origin="openai-responses"),
        n.Text("Hi"),
        n.ToolCall("call_9", "f", '{"x":1}'),
    ]
    assert choice.finish_reason == "tool_calls"
    assert out.usage == n.Usage(input_tokens=100, output_tokens=30, cached_input_tokens=80, reasoning_tokens=20)
    assert (out.id, out.model, out.created) == ("resp_1", "gpt-5.4", 1767225600)


@pytest.mark.parametrize(("status", "details", "finish"), [
    ("incomplete", {"reason": "max_output_tokens"}, "length"),
    ("incomplete", {"reason": "content_filter"}, "content_filter"),
    ("failed", None, "error"),
    ("completed", None, "stop"),
])
def test_status_is_the_finish_reason(status: str, details: Any, finish: str) -> None:
    msg = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "t"}]}
    assert R.parse_response(_resp([msg], status, incomplete_details=details)).choices[0].finish_reason == finish


def test_refusal() -> None:
    msg = {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}
    (choice,) = R.parse_response(_resp([msg])).choices
    assert choice.parts == [n.Text("No.")] and choice.finish_reason == "refusal"


def test_not_a_response_object() -> None:
    with pytest.raises(UpstreamFormatError):
        R.parse_response({"choices": []})


def test_responses_client_gets_the_encrypted_content_as_it_came() -> None:
    ingress = adapter_for("openai-responses")
    answer = R.parse_response(_resp([{"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}], "encrypted_content": "gAAAA-real"}]))
    (item,) = ingress.render_response(answer, alias="a")["output"]
    assert item["summary"] == [{"type": "summary_text", "text": "s"}] and item["encrypted_content"] == "gAAAA-real"
    again = ingress.parse_request({"model": "a", "input": [{"type": "reasoning", "summary": item["summary"], "encrypted_content": item["encrypted_content"]}]})
    body, _ = body_of(again)
    assert body["input"] == [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}], "encrypted_content": "gAAAA-real"}]


# ===================================================================== read_error


@pytest.mark.parametrize(("status", "body", "check"), [
    (429, {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}, lambda i: i.kind == "requests" and not i.quota),
    (429, {"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}}, lambda i: i.quota),
    (404, {"error": {"message": "The model `x` does not exist", "type": "invalid_request_error", "code": "model_not_found"}}, lambda i: i.model_not_found),
    (401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}}, lambda i: i.auth),
    (502, "<html>bad gateway</html>", lambda i: "bad gateway" in i.message),
])
def test_read_error(status: int, body: Any, check: Any) -> None:
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    assert check(R.read_error(status, raw, {}))


# ===================================================================== stream decoder


def ev(kind: str, **fields: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"


def decode(raw: bytes) -> tuple[list[n.Event], Any]:
    d = R.stream_decoder()
    out = [e for x in d.feed(raw) for e in x.events] + [e for x in d.close() for e in x.events]
    return out, d


CREATED = ev("response.created", sequence_number=0, response=_resp([], "in_progress"))


def test_stream_complete_only_after_its_final_event() -> None:
    body = CREATED + ev("response.output_text.delta", output_index=0, content_index=0, delta="Hi")
    events, d = decode(body)
    assert events == [n.StreamStart("resp_1", "gpt-5.4"), n.TextDelta("Hi")] and d.complete is False
    usage = {"input_tokens": 5, "output_tokens": 1, "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}
    events, d = decode(body + ev("response.completed", response=_resp([], usage=usage)))
    assert events[-2:] == [n.StreamFinish("stop"), n.StreamUsage(n.Usage(5, 1))] and d.complete is True
    events, d = decode(body + ev("response.incomplete", response=_resp([], "incomplete", incomplete_details={"reason": "max_output_tokens"})))
    assert events[-1] == n.StreamFinish("length") and d.complete is True


@pytest.mark.parametrize(("tail", "status"), [
    (ev("response.failed", response=_resp([], "failed", error={"code": "server_error", "message": "boom"})), 502),
    (ev("error", code="rate_limit_exceeded", message="slow down", param=None), 429),
])
def test_stream_failures_are_errors_never_complete(tail: bytes, status: int) -> None:
    events, d = decode(CREATED + tail)
    assert isinstance(events[-1], n.StreamError) and events[-1].status == status and d.complete is False


def test_stream_calls_reasoning_and_whole_items() -> None:
    fc = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f", "arguments": ""}
    raw = (
        CREATED
        + ev("response.output_item.added", output_index=0, item={"id": "rs_1", "type": "reasoning", "summary": []})
        + ev("response.reasoning_summary_text.delta", output_index=0, summary_index=0, delta="one")
        + ev("response.reasoning_summary_text.delta", output_index=0, summary_index=1, delta="two")
        + ev("response.output_item.done", output_index=0, item={"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "ENC"})
        + ev("response.output_item.added", output_index=1, item=fc)
        + ev("response.function_call_arguments.delta", output_index=1, delta='{"a":')
        + ev("response.function_call_arguments.delta", output_index=1, delta="1}")
        + ev("response.output_item.done", output_index=1, item={**fc, "arguments": '{"a":1}'})
        # a server that sends a call and a message whole, with no deltas
        + ev("response.output_item.done", output_index=2, item={**fc, "call_id": "call_2", "arguments": "{}"})
        + ev("response.output_item.done", output_index=3, item={"type": "message", "content": [{"type": "output_text", "text": "whole"}]})
        + ev("response.completed", response=_resp([]))
    )
    events, d = decode(raw)
    P = "openai-responses"
    assert events == [
        n.StreamStart("resp_1", "gpt-5.4"),
        n.ThinkingDelta("one", origin=P), n.ThinkingDelta("\n\n", origin=P), n.ThinkingDelta("two", origin=P),
        n.ThinkingDelta(redacted="ENC", origin=P),
        n.ToolCallStart(0, "call_1", "f"), n.ToolCallDelta(0, '{"a":'), n.ToolCallDelta(0, "1}"),
        n.ToolCallStart(1, "call_2", "f"), n.ToolCallDelta(1, "{}"),
        n.TextDelta("whole"),
        n.StreamFinish("tool_calls"),
    ]
    assert d.complete


def test_stream_keeps_raw_bytes_for_relay() -> None:
    raw = CREATED + ev("response.output_text.delta", output_index=0, delta="x") + ev("response.completed", response=_resp([]))
    d = R.stream_decoder()
    decoded = d.feed(raw)
    assert b"".join(x.raw for x in decoded) == raw and decoded[-1].terminal


def test_malformed_event_is_a_stream_error_with_nothing_to_relay() -> None:
    (x,) = GuardedDecoder(R.stream_decoder()).feed(b"event: response.output_text.delta\ndata: {nope\n\n")
    assert isinstance(x.events[0], n.StreamError) and x.raw == b""


# ===================================================================== same protocol


def test_passthrough_keeps_what_it_does_not_know() -> None:
    body = {
        "model": "alias", "store": False, "include": ["reasoning.encrypted_content"], "previous_response_id": "resp_prev",
        "input": [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"}, {"role": "user", "content": "hi"}],
        "tools": [{"type": "web_search"}], "future_field": {"x": 1}, "stream": True,
    }
    snapshot = json.dumps(body, sort_keys=True)
    out = R.prepare_passthrough(body, tier(), {})
    assert out == {**body, "model": "gpt-5.4"}
    assert json.dumps(body, sort_keys=True) == snapshot  # the client's body is not touched
    call = R.build_passthrough_call(out, tier(), {})
    assert call.url.endswith("/v1/responses") and call.stream and orjson.loads(call.body or b"") == out


def test_passthrough_leaves_out_thinking_another_tier_made() -> None:
    """Codex on a chain Anthropic -> OpenAI Responses: turn 1 served by Anthropic hands
    Codex its signed thinking in a switchyard blob; turn 2 falls back to the Responses
    tier, which could not decrypt it (OpenAI would refuse the request)."""
    ingress = adapter_for("openai-responses")
    turn1 = ingress.render_response(n.Response("m", "claude", [n.Choice([n.Thinking("t", signature="sig", origin="anthropic-messages"), n.Text("hi")], "stop")]), alias="a")
    blob_item = {k: v for k, v in turn1["output"][0].items() if k != "id"}
    assert blob_item["encrypted_content"].startswith("switchyard.v1.")
    ours = {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-openai"}
    body = {"model": "a", "input": [{"role": "user", "content": "q"}, blob_item, ours, {"role": "user", "content": "more"}]}
    out = R.prepare_passthrough(body, tier(), {})
    assert out["input"] == [{"role": "user", "content": "q"}, ours, {"role": "user", "content": "more"}]
    assert len(body["input"]) == 4  # the client's body is not touched


def test_passthrough_edits() -> None:
    body = {
        "model": "alias", "instructions": "sys", "max_output_tokens": 9000, "parallel_tool_calls": True,
        "reasoning": {"effort": "high"}, "include": ["reasoning.encrypted_content", "message.output_text.logprobs"], "top_logprobs": 3,
        "text": {"format": {"type": "json_object"}, "verbosity": "low"},
        "input": [
            {"role": "developer", "content": "dev"},
            {"role": "user", "content": [{"type": "input_text", "text": "t"}, {"type": "input_image", "image_url": "https://x/i.png"}]},
            {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image", "image_url": "https://x/j.png"}]},
        ],
    }
    edits = {"maxOutputTokens": 4096, "parallelToolCalls": None, "reasoning": None, "jsonMode": None, "logprobs": None, "vision": None, "systemPrompt": None}
    out = R.prepare_passthrough(body, tier(), edits)
    assert out["max_output_tokens"] == 4096 and "parallel_tool_calls" not in out and "reasoning" not in out
    assert out["include"] == [] and "top_logprobs" not in out and out["text"] == {"verbosity": "low"}
    assert "instructions" not in out
    assert out["input"] == [
        {"role": "user", "content": [{"type": "input_text", "text": "t"}]},
        {"type": "function_call_output", "call_id": "c", "output": []},
    ]


@pytest.mark.parametrize(("body", "ok"), [
    ({"model": "m", "input": "hi"}, True),
    ({"model": "m", "input": [{"role": "user", "content": "hi"}]}, True),
    ({"model": "m", "previous_response_id": "resp_1"}, True),  # a Responses tier serves it
    ({"model": "m"}, False),
    ({"input": "hi"}, False),
    ({"model": "m", "input": 3}, False),
    ({"model": "m", "input": ["x"]}, False),
])
def test_check_request(body: dict[str, Any], ok: bool) -> None:
    if ok:
        R.check_request(body)
    else:
        with pytest.raises(RequestError):
            R.check_request(body)


def test_a_fresh_encoder_ends_a_relayed_stream_without_opening_another_response() -> None:
    """A same-protocol stream broken after content: the pipeline ends it with a fresh
    encoder's error, after the tier's own response.created was relayed."""
    enc = adapter_for("openai-responses").stream_encoder(alias="a", request=None)
    kinds = [e.event for e in SSEDecoder().feed(enc.start() + enc.error(502, "upstream", "the upstream connection broke"))]
    assert kinds == ["error", "response.failed"]
