"""What more than one of the Chat Completions modules reads (``ingress``, ``egress``,
``stream``): the protocol's name, the finish-reason tables, and usage in both
directions (``usage`` of a whole answer and of a stream's last chunk have one shape).
"""

from __future__ import annotations

from typing import Any

from .. import neutral as n

PROTOCOL = "openai-chat"

FINISH_IN = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
FINISH_OUT = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "pause": "stop",
    "refusal": "content_filter",
    "error": "stop",
    None: None,
}


def _usage_out(u: n.Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _usage_in(u: Any) -> n.Usage | None:
    if not isinstance(u, dict):
        return None
    pd = u.get("prompt_tokens_details") or {}
    cd = u.get("completion_tokens_details") or {}
    return n.Usage(
        input_tokens=int(u.get("prompt_tokens") or 0),
        output_tokens=int(u.get("completion_tokens") or 0),
        cached_input_tokens=int((pd.get("cached_tokens") if isinstance(pd, dict) else 0) or 0),
        reasoning_tokens=int((cd.get("reasoning_tokens") if isinstance(cd, dict) else 0) or 0),
    )
