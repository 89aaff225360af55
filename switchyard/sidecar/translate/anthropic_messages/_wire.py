"""What more than one of the Anthropic modules reads (``ingress``, ``egress``, ``stream``).

The stop-reason tables and usage in both directions (Anthropic's ``input_tokens``
excludes cache reads and writes: see the package docstring), the ``msg_`` id of an
answer, the name of the reserved structured-output tool (written by ``egress``, read
back by ``egress`` and the stream decoder), and the smallest thinking budget Anthropic
takes (``ingress`` fits a passthrough body to it, ``egress`` a neutral request).
"""

from __future__ import annotations

from typing import Any

from .. import neutral as n
from ..common import new_id

PROTOCOL = "anthropic-messages"

# The reserved tool that carries structured output (response_format) to Anthropic.
FORMAT_TOOL = "switchyard_structured_output"
MIN_THINKING_BUDGET = 1024

STOP_IN: dict[str, n.FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
    "pause_turn": "pause",
}
STOP_OUT: dict[str | None, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
    "pause": "pause_turn",
    "error": "end_turn",
    None: "end_turn",
}


def _usage_out(u: n.Usage | None) -> dict[str, Any]:
    if u is None:
        return {"input_tokens": 0, "output_tokens": 0}
    out: dict[str, Any] = {
        "input_tokens": max(0, u.input_tokens - u.cached_input_tokens - u.cache_creation_tokens),
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_creation_tokens,
        "cache_read_input_tokens": u.cached_input_tokens,
    }
    if u.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": u.reasoning_tokens}
    return out


def _stop_out(reason: n.FinishReason | None, stop_sequence: str | None, called_tools: bool) -> str:
    if reason == "stop" and stop_sequence:
        return "stop_sequence"
    if called_tools and reason in ("stop", None):
        return "tool_use"  # Gemini says STOP after function calls; Claude Code waits for tool_use
    return STOP_OUT.get(reason, "end_turn")


def _message_id(upstream_id: str) -> str:
    if upstream_id.startswith("msg_"):
        return upstream_id
    return f"msg_{upstream_id}" if upstream_id else new_id("msg_")


def _usage_in(u: Any) -> n.Usage | None:
    if not isinstance(u, dict):
        return None
    cached = int(u.get("cache_read_input_tokens") or 0)
    created = int(u.get("cache_creation_input_tokens") or 0)
    details = u.get("output_tokens_details")
    return n.Usage(
        input_tokens=int(u.get("input_tokens") or 0) + cached + created,
        output_tokens=int(u.get("output_tokens") or 0),
        cached_input_tokens=cached,
        cache_creation_tokens=created,
        reasoning_tokens=int((details.get("thinking_tokens") if isinstance(details, dict) else 0) or 0),
    )


def _finish_in(stop_reason: Any, only_format_tool: bool) -> n.FinishReason | None:
    if stop_reason == "tool_use" and only_format_tool:
        return "stop"  # the structured-output tool: the answer is its JSON text
    return STOP_IN.get(stop_reason) if isinstance(stop_reason, str) else None
