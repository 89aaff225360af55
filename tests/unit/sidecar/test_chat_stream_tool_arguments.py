"""A streamed tool call with no arguments reaches a Chat Completions client as "{}".

Issue 17, defect 1: Anthropic streams a call without input as `content_block_start`
plus one empty `input_json_delta`; the client's accumulated `arguments` was "" (the
non-streamed path gives "{}"), and clients that json.loads it failed."""

from __future__ import annotations

import json

from switchyard.sidecar.translate import anthropic_messages, neutral as n, openai_chat
from switchyard.sidecar.translate.base import GuardedDecoder
from switchyard.sidecar.translate.sse import SSEDecoder


def client_calls(stream: bytes) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for ev in SSEDecoder().feed(stream):
        if ev.data == "[DONE]":
            continue
        for choice in json.loads(ev.data)["choices"]:
            for c in choice["delta"].get("tool_calls", []):
                got = calls.setdefault(c["index"], {"name": "", "arguments": ""})
                got["name"] += c.get("function", {}).get("name", "") or ""
                got["arguments"] += c.get("function", {}).get("arguments", "") or ""
    return calls


def encode(events: list[n.Event]) -> bytes:
    enc = openai_chat.ADAPTER.stream_encoder(alias="a", request=None)
    return enc.start() + b"".join(enc.encode(e) for e in events) + enc.finish()


def test_a_call_without_arguments_is_an_empty_object() -> None:
    out = encode([n.StreamStart("m1", "m"), n.ToolCallStart(0, "call_1", "now"), n.ToolCallDelta(0, ""),
                  n.ToolCallStart(1, "call_2", "weather"), n.ToolCallDelta(1, '{"city":'), n.ToolCallDelta(1, '"Paris"}'),
                  n.StreamFinish("tool_calls")])
    calls = client_calls(out)
    assert calls[0] == {"name": "now", "arguments": "{}"}
    assert json.loads(calls[1]["arguments"]) == {"city": "Paris"}


def test_from_anthropics_own_stream_shape() -> None:
    sse = b"".join(
        b"event: " + kind.encode() + b"\ndata: " + json.dumps(data).encode() + b"\n\n"
        for kind, data in [
            ("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                                                                   "content": [], "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 0}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}}),
            ("message_stop", {"type": "message_stop"}),
        ]
    )
    dec = GuardedDecoder(anthropic_messages.ADAPTER.stream_decoder())
    events = [ev for d in dec.feed(sse) + dec.close() for ev in d.events]
    assert client_calls(encode(events))[0]["arguments"] == "{}"
