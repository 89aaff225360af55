"""The soak (bench/soak.py), short: ~20 s of mixed traffic against the real sidecar
process while the simulated upstreams flap and the config is replaced. Nothing may be
lost, RSS may not grow past the bound, SIGTERM must drain. The classifier that decides
"lost" is itself tested first, on answers that must count as lost."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("switchyard_soak", REPO / "bench" / "soak.py")
assert _spec is not None and _spec.loader is not None
soak = importlib.util.module_from_spec(_spec)
sys.modules["switchyard_soak"] = soak
_spec.loader.exec_module(soak)

LOST, CONTENT, ERR = soak.LOST, soak.CONTENT, soak.PROTOCOL_ERROR


@pytest.mark.parametrize(
    ("ingress", "stream", "status", "ctype", "raw", "expected"),
    [
        # whole answers
        ("openai-chat", False, 200, "application/json", b'{"choices":[{"message":{"content":"hi"}}]}', CONTENT),
        ("openai-chat", False, 200, "application/json", b'{"choices":[{"message":{"content":""}}]}', LOST),
        ("openai-chat", False, 200, "application/json", b"", LOST),
        ("openai-chat", False, 503, "application/json", b'{"error":{"message":"x","type":"server_error"}}', ERR),
        ("openai-chat", False, 500, "text/plain", b"500 Internal Server Error\n\nServer got itself in trouble", LOST),
        ("anthropic-messages", False, 429, "application/json", b'{"type":"error","error":{"type":"rate_limit_error","message":"x"}}', ERR),
        ("anthropic-messages", False, 429, "application/json", b'{"error":{"message":"x","type":"y"}}', LOST),  # OpenAI shape
        ("gemini", False, 503, "application/json", b'{"error":{"code":503,"message":"x","status":"UNAVAILABLE"}}', ERR),
        ("gemini", False, 200, "application/json", b'{"candidates":[{"content":{"parts":[]}}]}', LOST),
        # streams
        ("openai-chat", True, 200, "text/event-stream", b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n', CONTENT),
        ("openai-chat", True, 200, "text/event-stream", b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n', LOST),
        ("openai-chat", True, 200, "text/event-stream", b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: {"err', LOST),
        ("openai-chat", True, 200, "text/event-stream", b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: {"error":{"message":"x"}}\n\n', ERR),
        ("openai-chat", True, 200, "text/event-stream",
         b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: {"error":{"message":"x"}}\n\ndata: [DONE]\n\n', LOST),
        ("openai-chat", True, 200, "text/event-stream", b"data: [DONE]\n\n", LOST),
        ("openai-chat", True, 200, "text/event-stream", b"", LOST),
        ("anthropic-messages", True, 200, "text/event-stream",
         b'event: content_block_delta\ndata: {"delta":{"type":"text_delta","text":"hi"}}\n\nevent: message_stop\ndata: {}\n\n', CONTENT),
        ("anthropic-messages", True, 200, "text/event-stream",
         b'event: content_block_delta\ndata: {"delta":{"type":"text_delta","text":"hi"}}\n\nevent: error\ndata: {"type":"error"}\n\n', ERR),
        ("gemini", True, 200, "text/event-stream", b'data: {"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}\r\n\r\n', LOST),
        ("gemini", True, 200, "text/event-stream",
         b'data: {"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}]}\r\n\r\n', CONTENT),
        ("openai-responses", True, 200, "text/event-stream",
         b'data: {"type":"response.output_text.delta","delta":"hi"}\n\ndata: {"type":"response.completed"}\n\n', CONTENT),
        ("openai-responses", True, 200, "text/event-stream",
         b'data: {"type":"response.output_text.delta","delta":"hi"}\n\ndata: {"type":"error"}\n\ndata: {"type":"response.failed"}\n\n', ERR),
        ("openai-chat", True, 200, "application/json", b'{"choices":[{"message":{"content":"hi"}}]}', LOST),
    ],
)
def test_the_classifier_counts_what_must_be_lost(ingress: str, stream: bool, status: int, ctype: str, raw: bytes, expected: str) -> None:
    cls, why = soak.classify(soak.Call(ingress, stream, "chat"), status, ctype, raw)
    assert cls == expected, why


def test_a_malformed_request_answered_200_is_lost() -> None:
    call = soak.Call("openai-chat", False, "chat", bad=True)
    assert soak.classify(call, 200, "application/json", b'{"choices":[{"message":{"content":"hi"}}]}')[0] == LOST
    assert soak.classify(call, 400, "application/json", b'{"error":{"message":"x","type":"invalid_request_error"}}')[0] == ERR


@pytest.mark.slow
async def test_short_soak_loses_nothing() -> None:
    opts = soak.Options(duration=20, concurrency=8, fault_every=1.5, config_every=2.5, warmup=4, rss_bound_mb=25, quiet=True)
    res = await soak.run(opts)
    summary = res.summary()
    assert res.sent > 200, summary
    assert res.lost_count == 0, summary["lost_examples"]
    assert res.classes[CONTENT] > 0 and res.classes[ERR] > 0, summary
    assert sum(res.transitions.values()) > 0, "the faults never moved a breaker"
    assert res.config_swaps["put"] >= 2 and res.config_swaps["sighup"] >= 2, summary
    assert res.rss_end_mb - res.rss_start_mb <= opts.rss_bound_mb, summary["rss_mb"]
    assert res.drain_exit == 0, summary["drain"]
    assert not res.sidecar_errors, res.sidecar_errors
