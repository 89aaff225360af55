"""An adapter's quick ``verdict`` on a whole answer agrees with its full ``parse_response``.

The same-protocol path relays an upstream's bytes unchanged and reads only the verdict
(content? finish? usage?) off its JSON (issue 18); what it decides must be exactly what
the full parse would have decided, so an empty or broken answer is never relayed as a
success (promise 2). Checked on every golden upstream answer and on mutants of them.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import EGRESS, FUZZ, golden_json, json_values, mutants
from switchyard.sidecar.translate.base import UpstreamFormatError, Verdict, adapter_for, judge, response_verdict

# What attempt._whole catches around the parse (a malformed answer: the tier failed).
PARSE_ERRORS = (orjson.JSONDecodeError, UpstreamFormatError, ValueError, TypeError, AttributeError)
QUICK = [p for p in EGRESS if adapter_for(p).verdict is not None]

# The answer each protocol's simulator gives (the bench's and the demo's): the quick path
# must take it, or the verdict saves nothing.
USUAL = {
    "openai-chat": {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello", "refusal": None},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    },
    "anthropic-messages": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1},
    },
    "gemini": {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
        "modelVersion": "m", "responseId": "r1",
    },
}


def full(adapter: Any, body: dict[str, Any]) -> Verdict | str:
    try:
        return response_verdict(adapter.parse_response(body))
    except PARSE_ERRORS:
        return "malformed"


def quick(adapter: Any, body: dict[str, Any]) -> Verdict | str | None:
    try:
        return adapter.verdict(body)
    except PARSE_ERRORS:
        return "malformed"


def test_every_protocol_a_sidecar_relays_unchanged_on_its_hot_path_has_a_quick_verdict() -> None:
    # Responses is left to the full parse: its answers are stored by default (store=true),
    # which needs the parsed answer anyway.
    assert QUICK == ["openai-chat", "anthropic-messages", "gemini"]


@pytest.mark.parametrize("protocol", QUICK)
def test_the_usual_answer_takes_the_quick_path_and_agrees(protocol: str) -> None:
    adapter = adapter_for(protocol)
    body = USUAL[protocol]
    v = adapter.verdict(body)
    assert v is not None and v.content is True and v.finish == "stop" and v.usage is not None
    assert v == full(adapter, body)


@pytest.mark.parametrize("protocol", QUICK)
def test_quick_verdicts_agree_with_the_full_parse_on_every_golden_answer(protocol: str) -> None:
    adapter = adapter_for(protocol)
    seeds = golden_json("upstream_response.json", egress=protocol)
    assert seeds
    taken = 0
    for body in seeds:
        v = quick(adapter, body)
        if v is not None:
            taken += 1
            assert v == full(adapter, body), body
        assert judge(adapter, body) == full(adapter, body)
    assert taken, "no golden answer took the quick path"


@pytest.mark.parametrize("protocol", QUICK)
def test_quick_verdicts_agree_with_the_full_parse_on_mutants(protocol: str) -> None:
    adapter = adapter_for(protocol)
    seeds = golden_json("upstream_response.json", egress=protocol) + [USUAL[protocol]]

    @FUZZ
    @given(body=st.one_of(mutants(seeds), st.dictionaries(st.text(max_size=10), json_values(10), max_size=5)))
    def run(body: Any) -> None:
        try:
            body = orjson.loads(orjson.dumps(body))
        except orjson.JSONEncodeError:
            return
        if not isinstance(body, dict):
            return
        v = quick(adapter, body)
        if v is not None:
            assert v == full(adapter, body)

    run()


@pytest.mark.parametrize(
    ("protocol", "body", "content", "finish"),
    [
        ("openai-chat", {"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]}, False, "stop"),
        ("openai-chat", {"choices": [{"message": {"content": None}, "finish_reason": "length"}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 9}}, False, "length"),
        ("openai-chat", {"choices": []}, False, None),
        ("anthropic-messages", {"content": [{"type": "thinking", "thinking": "only thoughts"}], "stop_reason": "end_turn"},
         False, "stop"),
        ("anthropic-messages", {"content": [], "stop_reason": "max_tokens"}, False, "length"),
        ("gemini", {"candidates": [{"content": {"parts": [{"text": "x", "thought": True}]}, "finishReason": "STOP"}]},
         False, "stop"),
        ("gemini", {"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS"}]},
         False, "length"),
    ],
)
def test_answers_without_content_are_told_as_such(protocol: str, body: dict[str, Any], content: bool, finish: str | None) -> None:
    adapter = adapter_for(protocol)
    v = judge(adapter, body)
    assert (v.content, v.finish) == (content, finish)
    assert v == full(adapter, body)
