"""Gemini thought signatures survive the neutral streaming path (issue 17, item 7).

On a Gemini -> Gemini stream that takes the neutral path (a structural profile edit), the
encoder dropped every thoughtSignature; Gemini 3 then refuses the next turn's unsigned
function call, and the sentinel has to stand in for a signature the model did send."""

from __future__ import annotations

import json

from switchyard.sidecar.translate import anthropic_messages, gemini
from switchyard.sidecar.translate import neutral as n
from switchyard.sidecar.translate.base import GuardedDecoder
from switchyard.sidecar.translate.sse import SSEDecoder

SIG = "c2lnbmF0dXJlLW9mLXRoZS1tb2RlbA=="


def upstream() -> bytes:
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me look.", "thoughtSignature": SIG}]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "ls", "args": {"path": "."}}, "thoughtSignature": SIG + "2"}]},
                         "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12}},
    ]
    return b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)


def events() -> list[n.Event]:
    dec = GuardedDecoder(gemini.ADAPTER.stream_decoder())
    return [ev for d in dec.feed(upstream()) + dec.close() for ev in d.events]


def client_parts(stream: bytes) -> list[dict]:
    return [p for ev in SSEDecoder().feed(stream) for c in json.loads(ev.data).get("candidates", []) for p in c.get("content", {}).get("parts", [])]


def test_signatures_reach_a_gemini_client_on_the_parts_they_came_with() -> None:
    enc = gemini.SSE_STREAM.stream_encoder(alias="a", request=None)
    out = enc.start() + b"".join(enc.encode(e) for e in events()) + enc.finish()
    parts = client_parts(out)
    text = next(p for p in parts if p.get("text") == "Let me look.")
    call = next(p for p in parts if "functionCall" in p)
    assert text.get("thoughtSignature") == SIG
    assert call.get("thoughtSignature") == SIG + "2" and call["functionCall"]["name"] == "ls"


def test_a_foreign_signature_never_reaches_a_gemini_client() -> None:
    foreign = [n.StreamStart("x", "m"), n.ThinkingDelta("", "anthropic-sig", choice=0, origin="anthropic-messages"),
               n.ToolCallStart(0, "c1", "ls"), n.ToolCallDelta(0, "{}"), n.StreamFinish("tool_calls")]
    enc = gemini.SSE_STREAM.stream_encoder(alias="a", request=None)
    out = enc.start() + b"".join(enc.encode(e) for e in foreign) + enc.finish()
    assert b"anthropic-sig" not in out
    enc = anthropic_messages.ADAPTER.stream_encoder(alias="a", request=None)
    assert SIG.encode() not in b"".join(enc.encode(e) for e in events()), "and Gemini's never reach another protocol"
