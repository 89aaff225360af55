"""What more than one of the Responses modules reads (``ingress``, ``egress``, ``stream``).

The shapes of a ``response`` object and its output items (``message``, ``reasoning``,
``function_call``), which ``ingress.render_response`` builds for a whole answer and
``stream.StreamEncoder`` for each snapshot and item event; the ``switchyard.v1.`` blob
that carries a thinking signature through ``encrypted_content`` (``_blob`` when
rendering, ``_unblob`` when parsing the next turn); ``IngressOnly``, raised by the faces
this protocol does not have.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from .. import neutral as n
from ..common import now

PROTOCOL = "openai-responses"
BLOB_PREFIX = "switchyard.v1."

# Neutral finish reasons that make a response "incomplete", with the API's reason.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class IngressOnly(NotImplementedError):
    """Raised by the egress faces: no upstream speaks the Responses API in Switchyard."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: openai-responses is an ingress-only protocol (no CapabilityProfile protocol "
            "speaks it upstream); requests must cross to a tier through the neutral form"
        )


def _blob(thinking_origin: str | None, signature: str | None, redacted: str | None) -> str:
    raw = orjson.dumps({"o": thinking_origin, "s": signature, "r": redacted})
    return BLOB_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unblob(value: str) -> dict[str, Any] | None:
    """A ``switchyard.v1.`` blob's fields, or None when the value is not one of ours."""
    if not value.startswith(BLOB_PREFIX):
        return None
    body = value[len(BLOB_PREFIX) :]
    try:
        obj = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _echo(req: n.Request | None) -> dict[str, Any]:
    """The request parameters a ``response`` object repeats back."""
    if req is None:
        return {
            "instructions": None,
            "tools": [],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "temperature": None,
            "top_p": None,
            "max_output_tokens": None,
            "reasoning": {"effort": None, "summary": None},
            "text": {"format": {"type": "text"}},
            "metadata": {},
        }
    tc = req.tool_choice
    rf = req.response_format
    fmt: dict[str, Any] = {"type": "text"}
    if rf is not None and rf.type == "json_object":
        fmt = {"type": "json_object"}
    elif rf is not None and rf.type == "json_schema":
        fmt = {"type": "json_schema", "name": rf.name or "response", "schema": rf.schema or {}, "strict": rf.strict}
    r = req.reasoning
    effort = None if r is None else ("none" if not r.enabled else r.effort)
    out: dict[str, Any] = {
        "instructions": None,  # the neutral form folds instructions into the system prompt
        "tools": [
            {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters, "strict": t.strict}
            for t in req.tools
        ],
        "tool_choice": "auto" if tc is None else ({"type": "function", "name": tc.name} if tc.mode == "tool" else tc.mode),
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_output_tokens": req.max_tokens,
        "reasoning": {"effort": effort, "summary": "auto" if r is not None and r.summary else None},
        "text": {"format": fmt},
        "metadata": dict(req.metadata or {}),
    }
    if req.user is not None:
        out["user"] = req.user
    return out


def _usage(u: n.Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_input_tokens, "cache_write_tokens": u.cache_creation_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def _response(
    *,
    rid: str,
    created_at: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    echo: dict[str, Any],
    usage: n.Usage | None = None,
    incomplete: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": model,
        "output": output,
        **echo,
    }
    if status == "completed":
        body["completed_at"] = now()
    if usage is not None:
        body["usage"] = _usage(usage)
    return body


def _message_item(mid: str, text: str, status: str, refusal: bool = False) -> dict[str, Any]:
    part: dict[str, Any] = (
        {"type": "refusal", "refusal": text} if refusal else {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    )
    return {"id": mid, "type": "message", "status": status, "role": "assistant", "content": [part]}


def _reasoning_item(rid: str, text: str, blob: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": rid, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}] if text else []}
    if blob is not None:
        item["encrypted_content"] = blob
    return item


def _call_item(fid: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": fid, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments}
